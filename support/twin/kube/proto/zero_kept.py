"""Lists, per Kubernetes protobuf message, the JSON fields whose zero value is
still written in Kubernetes JSON: pointer fields (`*int32`, `*bool`, ...) and
fields without `omitempty`. Read from the Go types (types.go and siblings) of
k8s.io/api and k8s.io/apimachinery; see regen.sh. Output: one line per message,
`<full message name> <json field> ...`."""
import re
import sys

out = {}
for path in sys.argv[1:]:
    rel = path.split("k8s.io/", 1)[1]
    package = "k8s.io." + re.sub(r"/[^/]*\.go$", "", rel).replace("/", ".")
    struct = None
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^type (\w+) struct \{", line)
        if m:
            struct = m.group(1)
            continue
        if struct and line.startswith("}"):
            struct = None
            continue
        m = struct and re.match(r'^\t(\w+)\s+(\S+)\s+`json:"([^"]*)"', line)
        if not m:
            continue
        go_type, tag = m.group(2), m.group(3).split(",")
        if not tag[0] or tag[0] == "-":
            continue
        if go_type.startswith("*") or "omitempty" not in tag[1:]:
            out.setdefault(package + "." + struct, []).append(tag[0])
for message in sorted(out):
    print(message, " ".join(out[message]))
