#!/usr/bin/env bash
# Rebuilds the two facts files beside this script from Kubernetes' own sources:
#   k8s-v0.32.4.binpb        a FileDescriptorSet (source info, i.e. comments, stripped) compiled
#                            by protox 0.10 from k8s.io/api v0.32.4 `*/v1/generated.proto` and the
#                            k8s.io/apimachinery v0.32.4 files they import;
#   zero-kept-v0.32.4.txt    per message, the JSON fields whose zero value Kubernetes JSON keeps
#                            (pointer or non-omitempty Go fields), read from the Go types.
# Usage: regen.sh API_GIT_DIR APIMACHINERY_GIT_DIR   (bare clones of kubernetes/api, kubernetes/apimachinery)
set -euo pipefail
tag=v0.32.4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for repo in api apimachinery; do
  git_dir=$1; shift
  git --git-dir="$git_dir" ls-tree -r --name-only "$tag" \
    | grep -E 'generated\.proto$|(^[a-z]+/v1/|^pkg/apis/meta/v1/)[a-z_]*\.go$' \
    | grep -v -E '_test|zz_generated|generated\.pb|register|doc\.go|conversion|helper|validation|deepcopy|swagger' \
    | while read -r f; do
        mkdir -p "$work/k8s.io/$repo/$(dirname "$f")"
        git --git-dir="$git_dir" show "$tag:$f" > "$work/k8s.io/$repo/$f"
      done
done
mkdir -p "$work/gen/src"
cat > "$work/gen/Cargo.toml" <<'TOML'
[package]
name = "pbgen"
version = "0.0.0"
edition = "2021"
[dependencies]
protox = "0.10"
prost = "0.14"
TOML
cat > "$work/gen/src/main.rs" <<'RS'
use prost::Message;
fn main() {
    let mut args = std::env::args().skip(1);
    let (root, out) = (args.next().unwrap(), args.next().unwrap());
    let files: Vec<String> = args.collect();
    let mut set = protox::compile(&files, [&root]).expect("compile");
    for f in &mut set.file {
        f.source_code_info = None;
    }
    std::fs::write(&out, set.encode_to_vec()).unwrap();
}
RS
(cd "$work/k8s.io/.." && files=$(find k8s.io/api -path '*/v1/generated.proto' | sort) \
  && cargo run -q --manifest-path "$work/gen/Cargo.toml" -- . "$here/k8s-$tag.binpb" $files)
python3 "$here/zero_kept.py" $(find "$work/k8s.io" -name '*.go' | sort) > "$here/zero-kept-$tag.txt"
