#!/usr/bin/env bash
# Bounded fuzzing of the parsers that read requests (edge/): path normalization with
# route matching, header classification, token extraction and route files. Each
# target runs FUZZ_SECONDS (default 30) from the corpus committed in fuzz/corpus/;
# new inputs go to a temporary folder, so the checkout stays clean. A crash stops
# the script with the input saved under fuzz/artifacts/<target>/: make it a
# regression test. Needs the nightly toolchain (on the machine image) and
# cargo-fuzz (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
targets=(path_route headers credentials route_file)

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "!! no nightly toolchain: fuzzing skipped (the same properties run as proptests on stable)" >&2
    exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

echo "==> cargo fuzz build"
build_log=$(mktemp)
if ! cargo +nightly fuzz build --fuzz-dir fuzz >"$build_log" 2>&1; then
    cat "$build_log" >&2
    exit 1
fi
rm -f "$build_log"
for target in "${targets[@]}"; do
    scratch=$(mktemp -d)
    echo "==> fuzz $target (${seconds}s)"
    if ! cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$scratch" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>"$scratch.log"; then
        tail -n 40 "$scratch.log" >&2
        echo "!! fuzz target $target failed; the input is under fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^stat::number_of_executed_units' "$scratch.log" | sed "s/^/   $target /" || true
    rm -rf "$scratch" "$scratch.log"
done
