#!/usr/bin/env bash
# The whole-process benchmark: generates captures of several sizes (examples/gen-bench.rs, with
# their truth), reads each once into the page cache, then times `chainsniff analyze` on it (best of
# RUNS), checks its answer against the truth, and reports throughput (MB/s, packets/s) and peak RSS.
# With tshark installed it also times the equivalent tshark job on the 2GiB capture (or on the
# sizes listed in TSHARK_SIZES) and prints the ratio.
#
#   benches/run.sh                     200MiB 2GiB 8GiB
#   benches/run.sh 200MiB              one size
#   CHAINSNIFF_BENCH_DIR=/data benches/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${CHAINSNIFF_BENCH_DIR:-/tmp/chainsniff-bench}"
RUNS="${RUNS:-3}"
TSHARK_SIZES="${TSHARK_SIZES:-2GiB}"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(200MiB 2GiB 8GiB)
mkdir -p "$DIR"
cargo build --release --quiet --example gen-bench
cargo build --release --quiet
BIN=./target/release/chainsniff

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
echo "chainsniff: $($BIN --version)"
printf '%-8s %10s %10s %9s %10s %12s %9s  %s\n' size bytes frames seconds MB/s packets/s RSS_MB answer
for size in "${SIZES[@]}"; do
    f="$DIR/bench-$size.pcap"
    if [ ! -f "$f" ] || [ ! -f "$f.truth.json" ]; then
        ./target/release/examples/gen-bench --size "$size" --seed 1 --out "$f" 2>/dev/null
    fi
    cat "$f" > /dev/null # into the page cache
    best=""
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f '%e %M' -o "$DIR/time.txt" \
            "$BIN" analyze "$f" --trust captures/pki/root.pem -o "$DIR/report-$size.txt"
        read -r secs rss_kb < "$DIR/time.txt"
        if [ -z "$best" ] || awk "BEGIN {exit !($secs < $best)}"; then best=$secs; best_rss=$rss_kb; fi
    done
    python3 - "$f" "$DIR/report-$size.txt" "$best" "$best_rss" "$size" <<'PY'
import json, re, sys
pcap, report, secs, rss_kb, size = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
truth = json.load(open(pcap + ".truth.json"))
text = open(report).read()
got = {k: int(v) for v, k in re.findall(r"(\d+) (\w+)", re.search(r"handshakes: (.*)", text).group(1))}
ok = got == truth["status"] and f"{truth['frames']} frames" in text.splitlines()[0]
secs = max(secs, 0.01)
print(f"{size:<8} {truth['bytes']:>10} {truth['frames']:>10} {secs:>9.2f} {truth['bytes'] / secs / 1e6:>10.0f} "
      f"{truth['frames'] / secs:>12.0f} {rss_kb / 1024:>9.0f}  {'matches the truth' if ok else 'WRONG: ' + str(got) + ' vs ' + str(truth['status'])}")
if not ok:
    sys.exit(1)
PY
    if command -v tshark >/dev/null && [[ " $TSHARK_SIZES " == *" $size "* ]]; then
        /usr/bin/time -f '%e %M' -o "$DIR/tshark-time.txt" \
            tshark -r "$f" -Y 'tls.handshake.type==11' -T fields -e frame.number \
            -e tls.handshake.certificate > "$DIR/tshark-$size.txt" 2>/dev/null
        read -r tsecs trss < "$DIR/tshark-time.txt"
        certs=$(wc -l < "$DIR/tshark-$size.txt")
        echo "tshark $size: ${tsecs} s, ${certs} Certificate messages, peak RSS $((trss / 1024)) MB; chainsniff is $(awk "BEGIN {printf \"%.0f\", $tsecs / $best}")x faster"
    fi
done
