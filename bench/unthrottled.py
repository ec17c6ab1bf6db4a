#!/usr/bin/env python3
"""Unthrottled throughput of two dbprov builds, alternating, against one sandbox build.

Each run is `dbprov run` of 10 000 rows with `--rate unlimited --concurrency 64` against a
fresh `dbprov sandbox` with no latency; a run lasts 0.3-0.7 s, so the figure is noisy and
the script alternates the builds and prints every run and the median. The sandbox shares
the two cores with the job, so it is taken from one build for both (`--sandbox-from`): a
slower sandbox would otherwise pass for a slower job.

Usage: python3 bench/unthrottled.py NEW_BIN OLD_BIN [--sandbox-from new|old] [--runs N]
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import job  # noqa: E402  (the sandbox and CSV helpers of the other benchmarks)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("new")
    parser.add_argument("old")
    parser.add_argument("--sandbox-from", choices=["new", "old"], default="old")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    bins = {"new": os.path.abspath(args.new), "old": os.path.abspath(args.old)}
    rates = {"new": [], "old": []}
    with tempfile.TemporaryDirectory() as work:
        input_csv = os.path.join(work, "fast.csv")
        job.tenants(input_csv, job.ROWS, "fast")
        for _ in range(args.runs):
            for name in ["new", "old"]:
                job.BIN = bins[args.sandbox_from]
                with job.Sandbox() as sandbox:
                    job.BIN = bins[name]
                    elapsed = job.run_job(sandbox, work, input_csv, "--rate", "unlimited",
                                          "--concurrency", "64")
                rates[name].append(job.ROWS / elapsed)
    print(f"sandbox from {args.sandbox_from}; rows/s per run, then the median:")
    for name, xs in rates.items():
        runs = " ".join(f"{x:.0f}" for x in xs)
        print(f"  {name}: {runs}; median {sorted(xs)[len(xs) // 2]:.0f}")


if __name__ == "__main__":
    main()
