#!/usr/bin/env bash
# Shows that a change leaves every report byte-identical: builds REV (default: HEAD) in a
# temporary worktree, runs it and the working tree's binary (or, given NEW, that revision's) on
# every bundled capture (with and without its key log) and on a generated benchmark capture, in
# every format, and diffs.
#
#   tests/same-reports.sh [REV] [SIZE] [NEW]   e.g. tests/same-reports.sh main~3 50MiB main
set -euo pipefail
cd "$(dirname "$0")/.."
REV="${1:-HEAD}"
SIZE="${2:-30MiB}"
NEW_REV="${3:-}"
WORK="$(mktemp -d)"
trap 'git worktree remove --force "$WORK/base" >/dev/null 2>&1 || true; git worktree remove --force "$WORK/new" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
git worktree add --detach "$WORK/base" "$REV" >/dev/null
(cd "$WORK/base" && CARGO_TARGET_DIR="$WORK/target-base" cargo build --release --quiet --bins --example gen-bench)
if [ -n "$NEW_REV" ]; then
    git worktree add --detach "$WORK/new" "$NEW_REV" >/dev/null
    (cd "$WORK/new" && CARGO_TARGET_DIR="$WORK/target-new" cargo build --release --quiet)
    NEW="$WORK/target-new/release/chainsniff"
else
    cargo build --release --quiet --bin chainsniff
    NEW=./target/release/chainsniff
fi
OLD="$WORK/target-base/release/chainsniff"
"$WORK/target-base/release/examples/gen-bench" --size "$SIZE" --seed 1 --out "$WORK/bench.pcap" 2>/dev/null
inputs=()
for c in captures/*.pcap captures/*.pcapng "$WORK/bench.pcap"; do
    inputs+=("$c")
done
status=0
n=0
for c in "${inputs[@]}"; do
    keylogs=("")
    [ -f "${c%.*}.keylog" ] && keylogs+=("--keylog=${c%.*}.keylog")
    for k in "${keylogs[@]}"; do
        for f in text markdown html json jsonl; do
            args=(analyze "$c" --trust captures/pki/root.pem -f "$f" --color never -q)
            [ -n "$k" ] && args+=("$k")
            "$OLD" "${args[@]}" > "$WORK/out-old" 2>&1 || true
            "$NEW" "${args[@]}" > "$WORK/out-new" 2>&1 || true
            n=$((n + 1))
            if ! cmp -s "$WORK/out-old" "$WORK/out-new"; then
                echo "DIFFERENT: $c $k -f $f"
                { diff "$WORK/out-old" "$WORK/out-new" || true; } | head -20 || true
                status=1
            fi
        done
    done
done
echo "$n reports of ${NEW_REV:-the working tree} compared against $REV: $([ $status = 0 ] && echo 'all identical' || echo 'differences above')"
exit $status
