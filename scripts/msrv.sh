#!/usr/bin/env bash
# The declared minimum Rust version (`rust-version` in Cargo.toml) is true:
#  1. no locked dependency declares a newer one (cargo metadata);
#  2. clippy's incompatible_msrv lint (on in `cargo clippy`) keeps our own code off
#     newer std APIs;
#  3. with --build, the workspace builds and its unit tests pass on exactly that
#     toolchain, when rustup has it (this machine image ships it beside stable).
set -euo pipefail
cd "$(dirname "$0")/.."

declared=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
echo "==> MSRV ${declared}: locked dependencies"
# Not --offline: a fresh machine has not fetched the crates of other platforms yet.
cargo metadata --format-version 1 --locked -q | python3 -c '
import json, sys
declared = tuple(int(x) for x in sys.argv[1].split("."))
meta = json.load(sys.stdin)
resolved = {node["id"] for node in meta["resolve"]["nodes"]}
def version(text):
    parts = [int(x) for x in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))
newer = sorted(
    (p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p["id"] in resolved and p.get("rust_version") and version(p["rust_version"]) > version(sys.argv[1])
)
for name, ver, needs in newer:
    print(f"!! {name} {ver} needs Rust {needs}", file=sys.stderr)
sys.exit(1 if newer else 0)
' "$declared"

if [[ "${1:-}" == "--build" ]]; then
    toolchain="${declared}"
    [[ "$toolchain" =~ ^[0-9]+\.[0-9]+$ ]] && toolchain="${toolchain}.0"
    if ! rustup toolchain list | grep -q "^${toolchain}-"; then
        echo "!! toolchain ${toolchain} is not installed: rustup toolchain install ${toolchain}" >&2
        exit 1
    fi
    echo "==> cargo +${toolchain} test --workspace --lib"
    cargo "+${toolchain}" test --workspace --locked --lib
fi
echo "MSRV ${declared}: ok"
