#!/usr/bin/env python3
"""chainsniff over many capture files on a Dask cluster.

One task per capture file writes its partial analysis (`chainsniff analyze --partial`; a ring
buffer's files each `--after` the one before, so that a handshake crossing a file boundary is
whole), a tree of tasks merges them in capture order (`chainsniff merge --partial`), and one
last merge writes the report. The report is the one `chainsniff analyze CAPTURE...` writes on
one machine, byte for byte (see docs/scale.md for the limits of a ring buffer cut into files).

    python3 contrib/dask_chainsniff.py --local-workers 2 --workdir /shared/work \\
        /shared/captures/*.pcap -- --trust root.pem --format json -o report.json

    python3 contrib/dask_chainsniff.py --scheduler tcp://scheduler:8786 --workdir /shared/work \\
        --chainsniff /opt/chainsniff/bin/chainsniff /shared/captures/*.pcap -- -o report.txt

Every worker runs the `chainsniff` binary given (the same version everywhere: partials of
another format version are refused) and sees the captures and the work directory at the same
paths (shared storage). Options before `--` are this script's; reading options for every
task (`--keylog`, `--client`, `--max-flows`, ...) are given with `--read-arg`; the options
after `--` are those of the report (`chainsniff merge --help`).

A capture that cannot be read fails its own task only: its partial names it with the error,
the report lists it with a `not_analyzed` warning, and this script exits with status 2 after
writing the report.
"""

import argparse
import json
import os
import subprocess
import sys
import uuid

from dask.distributed import Client, LocalCluster


def plan(chainsniff, captures):
    """The groups of captures that are read as one capture (a ring buffer's files)."""
    out = subprocess.run(
        [chainsniff, "plan", *captures], check=True, capture_output=True, text=True
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line]


def analyze(chainsniff, capture, after, out, read_args):
    """One capture's partial analysis; returns the partial and the error lines (none, or the
    one of a capture that cannot be read)."""
    cmd = [chainsniff, "analyze", "--partial", out, "-q", *read_args]
    if after is not None:
        cmd += ["--after", after]
    cmd.append(capture)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode == 0:
        return out, []
    if done.returncode == 2 and os.path.exists(out):
        # The capture is unreadable: the partial names it with the error.
        return out, [done.stderr.strip()]
    raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


def merge(chainsniff, parts, out):
    """Partials merged in order into one partial again (a step of the tree reduction)."""
    paths = [p for p, _ in parts]
    errors = [e for _, part_errors in parts for e in part_errors]
    done = subprocess.run(
        [chainsniff, "merge", "--partial", out, *paths], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"chainsniff merge: {done.stderr.strip()}")
    return out, errors


def run(
    client,
    chainsniff,
    captures,
    workdir,
    read_args,
    report_args,
    fan_in=8,
    keep_partials=False,
):
    """Analyzes `captures` on the cluster behind `client` and writes the report as
    `report_args` say. Returns the exit status: chainsniff's, or 2 when a capture failed."""
    os.makedirs(workdir, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]

    def part_path(kind, i):
        return os.path.join(workdir, f"{run_id}-{kind}-{i:06d}.part")

    level = []
    for group in plan(chainsniff, captures):
        for j, capture in enumerate(group):
            after = group[j - 1] if j > 0 else None
            out = part_path("analyze", len(level))
            level.append(
                client.submit(
                    analyze, chainsniff, capture, after, out, read_args, pure=False
                )
            )
    depth = 0
    while len(level) > 1:
        depth += 1
        level = [
            client.submit(
                merge,
                chainsniff,
                level[i : i + fan_in],
                part_path(f"merge{depth}", i // fan_in),
                pure=False,
            )
            for i in range(0, len(level), fan_in)
        ]
    final, errors = level[0].result()
    for e in errors:
        print(e, file=sys.stderr)
    status = subprocess.run([chainsniff, "merge", *report_args, final]).returncode
    if not keep_partials:
        for name in os.listdir(workdir):
            if name.startswith(run_id + "-"):
                os.remove(os.path.join(workdir, name))
    return status if status != 0 else (2 if errors else 0)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    report_args = []
    if "--" in argv:
        at = argv.index("--")
        argv, report_args = argv[:at], argv[at + 1 :]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--scheduler", help="address of a running Dask scheduler")
    where.add_argument(
        "--local-workers", type=int, help="start a local cluster of this many workers"
    )
    p.add_argument("--workdir", required=True, help="shared directory for the partials")
    p.add_argument("--chainsniff", default="chainsniff", help="the chainsniff binary")
    p.add_argument("--fan-in", type=int, default=8, help="partials per merge task")
    p.add_argument(
        "--keep-partials",
        action="store_true",
        help="leave the partials in the work directory (they are removed by default)",
    )
    p.add_argument(
        "--read-arg",
        action="append",
        default=[],
        help="an option for every analysis task (e.g. --read-arg=--keylog=/shared/keys.log)",
    )
    p.add_argument("captures", nargs="+")
    args = p.parse_args(argv)
    if args.scheduler:
        client = Client(args.scheduler)
        cluster = None
    else:
        cluster = LocalCluster(
            n_workers=args.local_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    try:
        return run(
            client,
            args.chainsniff,
            args.captures,
            args.workdir,
            args.read_arg,
            report_args,
            args.fan_in,
            args.keep_partials,
        )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    sys.exit(main())
