#!/usr/bin/env python3
"""How much of the API's window dbprov fills: `dbprov run --rate 1000/s` against `dbprov
sandbox --rate-limit N/W` on loopback, so that only the pacer decides. Not part of the tests.

For each scenario it prints the elapsed time beside the ideal, their ratio (ideal / elapsed:
1.0 fills every window), the 429s as a share of the requests the sandbox counted, and the
rows that did not end `created`. The ideal is `(ceil(rows / N) - 1) * W`: every window
filled, the last one at its start.

Scenarios (the sandbox's windows start with it; each scenario gets a fresh sandbox):
  one-400   one process, 400 rows, 25 per 2 s
  one-100   one process, 100 rows, 25 per 6 s
  shards    4 shards (--shard I/4) of one 400-row input, started together, one 25 per 2 s
Each runs with draft6 headers and again with none (a 429 with Retry-After only), and each
with the job's preflight list and without it (--no-preflight). The window counts the list
too, so the script prints a second ideal that counts one list per process.

Usage: python3 bench/window.py [--only one-400,one-100,shards] [--headers draft6,none]
                               [--preflight on,off] [--offset F] [--bin PATH]
  --offset F starts the jobs F windows after the sandbox (default 0: at a window's start).
"""

import argparse
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import job  # noqa: E402
import pacing  # noqa: E402

SCENARIOS = {
    # name: (processes, rows, limit, window in seconds)
    "one-400": (1, 400, 25, 2),
    "one-100": (1, 100, 25, 6),
    "shards": (4, 400, 25, 2),
}


def scenario(work, name, headers, preflight, offset):
    processes, rows, limit, window = SCENARIOS[name]
    input_csv = os.path.join(work, f"{name}-{headers}.csv")
    job.tenants(input_csv, rows, name)
    flags = ["--rate", "1000/s", *([] if preflight else ["--no-preflight"])]
    with job.Sandbox("--rate-limit", f"{limit}/{window}s",
                     "--rate-limit-headers", headers) as sandbox:
        # The sandbox's windows start with it: a job may meet one at any point.
        time.sleep(offset * window)
        procs = [pacing.start(sandbox, work, input_csv, f"{name}-{headers}-{preflight}-{i}",
                              *flags,
                              *(["--shard", f"{i}/{processes}"] if processes > 1 else []))
                 for i in range(processes)]
        ends = [pacing.finish(proc, started) for proc, started, _ in procs]
        stats = sandbox.get("/_sandbox/stats")
    first = min(started for _, started, _ in procs)
    elapsed = max(started + took for (_, started, _), (_, took) in zip(procs, ends)) - first
    failed = sum(pacing.failed_rows(out) for _, _, out in procs)
    requests = stats["requests_total"]
    refused = stats["faults_injected"]["rate_limited"]
    ideal = (math.ceil(rows / limit) - 1) * window
    # The preflight list is a request the window counts too: one per process.
    needed = rows + (processes if preflight else 0)
    ideal_all = (math.ceil(needed / limit) - 1) * window
    print(f"{name:8} {headers:6} {'list' if preflight else 'no list':7} from {offset:.2f} W: "
          f"{processes} x "
          f"{rows // processes} rows, {limit}/{window}s: exits {[code for code, _ in ends]}, "
          f"{failed} failed; elapsed {elapsed:.1f} s; ideal {ideal} s, ratio "
          f"{ideal / elapsed:.2f}; with the lists {ideal_all} s, ratio {ideal_all / elapsed:.2f}; "
          f"429s {refused} of {requests} = {100 * refused / requests:.1f} %", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--headers", default="draft6,none")
    parser.add_argument("--offset", type=float, default=0.0,
                        help="start the jobs this fraction of a window after the sandbox")
    parser.add_argument("--preflight", default="on,off",
                        help="on: the job's default list before sending; off: --no-preflight")
    parser.add_argument("--bin", help="the dbprov to measure (no build); default: this tree's")
    args = parser.parse_args()
    if args.bin:
        job.BIN = os.path.abspath(args.bin)
    else:
        job.build()
    with tempfile.TemporaryDirectory() as work:
        for headers in args.headers.split(","):
            for preflight in args.preflight.split(","):
                for name in args.only.split(","):
                    scenario(work, name, headers, preflight == "on", args.offset)


if __name__ == "__main__":
    main()
