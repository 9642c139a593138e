#!/usr/bin/env bash
# The whole-process benchmark: generates captures of several sizes (examples/gen-bench.rs, with
# their truth), reads each once into the page cache, then times `chainsniff analyze` on it (best of
# RUNS), checks its answer against the truth, and reports throughput (MB/s, packets/s) and peak RSS.
# Beside it, the floor (examples/floor.rs: the pcap record headers, Ethernet/VLAN, IP and TCP
# headers and a byte counter per flow, nothing else) is timed on the same file (best of RUNS), its
# packet count checked against the truth, and chainsniff's time printed as a multiple of it.
# chainsniff is also timed with `--threads 1` (its TCP connections followed on the reading thread
# only; best of RUNS), and the two reports must be byte-identical.
# With tshark installed it also times the equivalent tshark job on the 2GiB capture (or on the
# sizes listed in TSHARK_SIZES) and prints both ratios.
#
# A size is dense (gen-bench's default: a TLS handshake every 16 kB) or, with the suffix
# `-sparse`, span-port-like (gen-bench --sparse: mostly bulk data, 26 TLS 1.2 handshakes per MB).
#
#   benches/run.sh                     200MiB 2GiB 8GiB 1GiB-sparse
#   benches/run.sh 200MiB              one size, dense
#   benches/run.sh 200MiB 1GiB-sparse  a dense size and a sparse one
#   SPARSE=1 benches/run.sh 200MiB     each size given, dense and sparse (200MiB, 200MiB-sparse)
#   RUNS=5 TSHARK_SIZES="200MiB 1GiB-sparse" benches/run.sh 200MiB 1GiB-sparse
#   CHAINSNIFF_BENCH_DIR=/data benches/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${CHAINSNIFF_BENCH_DIR:-/tmp/chainsniff-bench}"
RUNS="${RUNS:-3}"
TSHARK_SIZES="${TSHARK_SIZES:-2GiB}"
SIZES=()
for size in "$@"; do
    SIZES+=("$size")
    if [ "${SPARSE:-0}" = 1 ] && [[ "$size" != *-sparse ]]; then SIZES+=("$size-sparse"); fi
done
[ ${#SIZES[@]} -gt 0 ] || SIZES=(200MiB 2GiB 8GiB 1GiB-sparse)
mkdir -p "$DIR"
cargo build --release --quiet --example gen-bench --example floor
cargo build --release --quiet
BIN=./target/release/chainsniff
FLOOR=./target/release/examples/floor

# timed OUT CMD...: runs CMD with its standard output in OUT (standard error shown only if it
# fails); sets secs (wall clock, ns resolution) and rss_kb (peak RSS, from /usr/bin/time).
timed() {
    local out=$1 t0 t1
    shift
    t0=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$DIR/time.txt" "$@" > "$out" 2> "$DIR/stderr.txt" ||
        { cat "$DIR/stderr.txt" >&2; return 1; }
    t1=$(date +%s%N)
    secs=$(awk "BEGIN {printf \"%.3f\", ($t1 - $t0) / 1e9}")
    rss_kb=$(tail -n 1 "$DIR/time.txt")
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "chainsniff: $($BIN --version)"
printf '%-14s %10s %10s %9s %6s %10s %9s %9s %8s %8s  %s\n' \
    size bytes frames seconds MB/s packets/s RSS_MB 1thread_s floor_s x_floor answer
for size in "${SIZES[@]}"; do
    f="$DIR/bench-$size.pcap"
    gen=(--size "${size%-sparse}")
    [[ "$size" == *-sparse ]] && gen+=(--sparse)
    if [ ! -f "$f" ] || [ ! -f "$f.truth.json" ]; then
        ./target/release/examples/gen-bench "${gen[@]}" --seed 1 --out "$f" 2>/dev/null
    fi
    cat "$f" > /dev/null # into the page cache
    floor_best=""
    for _ in $(seq "$RUNS"); do
        timed "$DIR/floor-$size.txt" "$FLOOR" "$f"
        if [ -z "$floor_best" ] || awk "BEGIN {exit !($secs < $floor_best)}"; then floor_best=$secs; fi
    done
    best=""
    for _ in $(seq "$RUNS"); do
        timed /dev/null "$BIN" analyze "$f" --trust captures/pki/root.pem -o "$DIR/report-$size.txt"
        if [ -z "$best" ] || awk "BEGIN {exit !($secs < $best)}"; then best=$secs; best_rss=$rss_kb; fi
    done
    one_best=""
    for _ in $(seq "$RUNS"); do
        timed /dev/null "$BIN" analyze "$f" --trust captures/pki/root.pem --threads 1 \
            -o "$DIR/report-$size-1thread.txt"
        if [ -z "$one_best" ] || awk "BEGIN {exit !($secs < $one_best)}"; then one_best=$secs; fi
    done
    same=0
    cmp -s "$DIR/report-$size.txt" "$DIR/report-$size-1thread.txt" && same=1
    python3 - "$f" "$DIR/report-$size.txt" "$best" "$best_rss" "$size" "$floor_best" "$DIR/floor-$size.txt" "$one_best" "$same" <<'PY'
import json, re, sys
pcap, report, secs, rss_kb, size, floor, floor_out, one, same = sys.argv[1:10]
secs, rss_kb, floor, one = float(secs), int(rss_kb), float(floor), float(one)
truth = json.load(open(pcap + ".truth.json"))
text = open(report).read()
got = {k: int(v) for v, k in re.findall(r"(\d+) (\w+)", re.search(r"handshakes: (.*)", text).group(1))}
# The header: "chainsniff ... - 1 capture, N TLS handshakes ...", then "[0] PATH: pcap, N frames, ...".
ok = got == truth["status"] and f"{truth['frames']} frames" in "\n".join(text.splitlines()[:3])
floor_packets = int(open(floor_out).read().split()[0])
floor_ok = floor_packets == truth["frames"]
secs, floor = max(secs, 0.001), max(floor, 0.001)
answer = "matches the truth" if ok else "WRONG: " + str(got) + " vs " + str(truth["status"])
if not floor_ok:
    answer += f"; floor WRONG: {floor_packets} packets vs {truth['frames']} frames"
answer += ", same report on 1 thread" if same == "1" else "; --threads 1 report DIFFERS"
print(f"{size:<14} {truth['bytes']:>10} {truth['frames']:>10} {secs:>9.2f} {truth['bytes'] / secs / 1e6:>6.0f} "
      f"{truth['frames'] / secs:>10.0f} {rss_kb / 1024:>9.0f} {one:>9.2f} {floor:>8.3f} {secs / floor:>8.1f}  {answer}")
if not (ok and floor_ok and same == "1"):
    sys.exit(1)
PY
    if command -v tshark >/dev/null && [[ " $TSHARK_SIZES " == *" $size "* ]]; then
        timed "$DIR/tshark-$size.txt" tshark -r "$f" -Y 'tls.handshake.type==11' -T fields \
            -e frame.number -e tls.handshake.certificate
        certs=$(wc -l < "$DIR/tshark-$size.txt")
        echo "tshark $size: ${secs} s, ${certs} Certificate messages, peak RSS $((rss_kb / 1024)) MB;" \
            "chainsniff is $(awk "BEGIN {printf \"%.0f\", $secs / $best}")x faster than tshark" \
            "and $(awk "BEGIN {printf \"%.1f\", $best / $floor_best}")x the floor;" \
            "tshark is $(awk "BEGIN {printf \"%.0f\", $secs / $floor_best}")x the floor"
    fi
done
