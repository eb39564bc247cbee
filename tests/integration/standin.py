#!/usr/bin/env python3
"""A recording stand-in for a tool that cannot run here (terraform, kind, helm,
docker). Installed under the tool's name on PATH by a test, it appends one JSON
line per invocation to $STANDIN_RECORD (tool, args, cwd, the environment that
matters, the contents of files passed with -f/--values/--config), then behaves
as the first rule of $STANDIN_RULES (a JSON list) that matches says:

  {"tool": "terraform", "when": ["apply", "istiod"],   # substrings of the joined args
   "stdout": ["line", ...], "stderr": [...],
   "stdout_file": "path",                              # its contents too, if it exists
   "emit": "terraform-json",                           # or Terraform's -json lines for its -targets
   "run": "shell command",                             # its real effect, if any
   "exit": 0}

Without a matching rule it prints nothing and exits 0.
"""
import json
import os
import subprocess
import sys
import time

ENV_PREFIXES = ("TF_", "KUBECONFIG", "HELM_", "KIND_", "DOCKER_", "AWS_REGION", "AWS_ENDPOINT_URL")
FILE_FLAGS = ("-f", "--values", "--config", "--kubeconfig")


def files_passed(args):
    out = {}
    for i, a in enumerate(args):
        for flag in FILE_FLAGS:
            path = None
            if a == flag and i + 1 < len(args):
                path = args[i + 1]
            elif a.startswith(flag + "="):
                path = a[len(flag) + 1:]
            if path and os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    out[path] = f.read()
    return out


def terraform_json(args):
    """What `terraform apply|destroy -json` prints for the -targets it got."""
    destroy = "destroy" in args
    targets = [a[len("-target="):] for a in args if a.startswith("-target=")] or ["module.everything_else"]
    op, verb, done = ("destroy", "Destroying...", "Destruction complete after 1s") if destroy else (
        "apply", "Creating...", "Creation complete after 1s")
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def msg(kind, message, **extra):
        m = {"@level": "info", "@message": message, "@module": "terraform.ui", "@timestamp": ts, "type": kind}
        m.update(extra)
        print(json.dumps(m), flush=True)

    msg("version", "Terraform 1.11.4", terraform="1.11.4", ui="1.2")
    for t in targets:
        msg("planned_change", f"{t}: Plan to {'delete' if destroy else 'create'}",
            change={"resource": {"addr": t}, "action": "delete" if destroy else "create"})
    n = len(targets)
    msg("change_summary", f"Plan: {0 if destroy else n} to add, 0 to change, {n if destroy else 0} to destroy.",
        changes={"add": 0 if destroy else n, "change": 0, "remove": n if destroy else 0, "operation": "plan"})
    for t in targets:
        hook = {"resource": {"addr": t}, "action": "delete" if destroy else "create"}
        msg("apply_start", f"{t}: {verb}", hook=hook)
        msg("apply_complete", f"{t}: {done}", hook=dict(hook, elapsed_seconds=1))
    msg("change_summary",
        f"{'Destroy' if destroy else 'Apply'} complete! Resources: {0 if destroy else n} added, 0 changed, {n if destroy else 0} destroyed.",
        changes={"add": 0 if destroy else n, "change": 0, "remove": n if destroy else 0, "operation": op})


def main():
    tool = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    record = {
        "tool": tool,
        "args": args,
        "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)},
        "files": files_passed(args),
    }
    with open(os.environ["STANDIN_RECORD"], "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    rules = []
    if os.environ.get("STANDIN_RULES"):
        with open(os.environ["STANDIN_RULES"], encoding="utf-8") as f:
            rules = json.load(f)
    joined = " ".join(args)
    for rule in rules:
        if rule.get("tool") == tool and all(w in joined for w in rule.get("when", [])):
            for line in rule.get("stdout", []):
                print(line, flush=True)
            if rule.get("stdout_file") and os.path.isfile(rule["stdout_file"]):
                with open(rule["stdout_file"], encoding="utf-8") as f:
                    sys.stdout.write(f.read())
                    sys.stdout.flush()
            for line in rule.get("stderr", []):
                print(line, file=sys.stderr, flush=True)
            if rule.get("emit") == "terraform-json":
                terraform_json(args)
            if rule.get("run"):
                done = subprocess.run(["bash", "-c", rule["run"]], stdout=sys.stderr)
                if done.returncode != 0:
                    print(f"stand-in effect failed with {done.returncode}", file=sys.stderr)
                    sys.exit(99)
            sys.exit(rule.get("exit", 0))
    sys.exit(0)


if __name__ == "__main__":
    main()
