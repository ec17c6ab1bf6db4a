#!/usr/bin/env python3
"""Requests a run spends when half of its tenants exist already: `dbprov run` over 10 000 rows
of which 5 000 exist, with and without the preflight list, with --on-exists skip and update.
Each scenario gets a fresh `dbprov sandbox` (loopback), into which a first run creates the
5 000; the figures count only what the measured run sent, by method, from the sandbox's own
request log (`GET /_sandbox/requests`), not from what dbprov says.

Then the time it saves under a rate limit: the same shape scaled down (1 000 rows, 500 of
which exist) against `--rate-limit 100/10s` with the draft6 headers, with and without the list.

Usage: python3 bench/lifecycle.py [--bin PATH] [--only counts|limited]
"""

import argparse
import collections
import csv
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import job  # noqa: E402  (the sandbox and CSV helpers of the other benchmarks)

ROWS = 10_000


def write_inputs(work, rows=ROWS):
    """existing.csv: the even rows; all.csv: every row, existing and new interleaved."""
    existing, every = os.path.join(work, "existing.csv"), os.path.join(work, "all.csv")
    header = "name,connectionType,datasourceName\n"
    with open(existing, "w") as e, open(every, "w") as a:
        e.write(header)
        a.write(header)
        for i in range(rows):
            line = f"tenant-{i:06d},DATASOURCE,postgres-main\n"
            a.write(line)
            if i % 2 == 0:
                e.write(line)
    return existing, every


def run(sandbox, work, input_csv, out, *flags):
    key = os.path.join(work, "key")
    with open(key, "w") as f:
        f.write(sandbox.key)
    started = time.monotonic()
    code = subprocess.run(
        [job.BIN, "run", input_csv, "-o", out, "--base-url", sandbox.url, "--api-key-file", key,
         "--rate", "unlimited", "--progress", "never", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return code, time.monotonic() - started


def statuses(path):
    with open(path, newline="") as f:
        return collections.Counter(row["_status"] for row in csv.DictReader(f))


def scenario(work, existing, every, name, *flags, sandbox_flags=()):
    stem = "".join(c if c.isalnum() else "-" for c in name)
    with job.Sandbox(*sandbox_flags) as sandbox:
        code, _ = run(sandbox, work, existing, os.path.join(work, f"{stem}-setup.csv"),
                      "--no-preflight")
        assert code == 0, f"setting up {name}: exit {code}"
        before = len(sandbox.get("/_sandbox/requests"))
        out = os.path.join(work, f"{stem}.csv")
        code, elapsed = run(sandbox, work, every, out, *flags)
        log = sandbox.get("/_sandbox/requests")[before:]
        methods = collections.Counter(r["method"] for r in log)
        limited = sum(1 for r in log if r["status"] == 429)
        workspaces = sandbox.get("/_sandbox/stats")["workspaces"]
    counts = statuses(out)
    print(f"| {name} | `{' '.join(flags) or '(defaults)'}` | {code} | {len(log)} | "
          f"{methods['GET']} / {methods['POST']} / {methods['PUT']} | {limited} | "
          f"{', '.join(f'{n} {s}' for s, n in sorted(counts.items()))} | {workspaces} | "
          f"{elapsed:.1f} s |", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=job.BIN)
    parser.add_argument("--only", choices=["counts", "limited"])
    args = parser.parse_args()
    job.BIN = args.bin
    header = ("| scenario | flags | exit | requests | GET / POST / PUT | 429s | statuses | workspaces after | elapsed |\n"
              "|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        if args.only in (None, "counts"):
            existing, every = write_inputs(work)
            print(header)
            scenario(work, existing, every, "preflight")
            scenario(work, existing, every, "no preflight", "--no-preflight")
            scenario(work, existing, every, "preflight, update", "--on-exists", "update")
            scenario(work, existing, every, "no preflight, update", "--no-preflight",
                     "--on-exists", "update")
        if args.only in (None, "limited"):
            existing, every = write_inputs(work, 1000)
            print(header)
            limit = ("--rate-limit", "100/10s")
            scenario(work, existing, every, "preflight, 100/10s", sandbox_flags=limit)
            scenario(work, existing, every, "no preflight, 100/10s", "--no-preflight",
                     sandbox_flags=limit)


if __name__ == "__main__":
    main()
