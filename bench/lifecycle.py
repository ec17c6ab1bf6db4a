#!/usr/bin/env python3
"""Requests a run spends when half of its tenants exist already: `dbprov run` over 10 000 rows
of which 5 000 exist, with and without the preflight list, with --on-exists skip and update.
Each scenario gets a fresh `dbprov sandbox` (loopback), into which a first run creates the
5 000; the figures count only what the measured run sent, by method, from the sandbox's own
request log (`GET /_sandbox/requests`), not from what dbprov says.

Usage: python3 bench/lifecycle.py [--bin PATH]
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


def write_inputs(work):
    """existing.csv: the even rows; all.csv: every row, existing and new interleaved."""
    existing, every = os.path.join(work, "existing.csv"), os.path.join(work, "all.csv")
    header = "name,connectionType,datasourceName\n"
    with open(existing, "w") as e, open(every, "w") as a:
        e.write(header)
        a.write(header)
        for i in range(ROWS):
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


def scenario(work, existing, every, name, *flags):
    with job.Sandbox() as sandbox:
        code, _ = run(sandbox, work, existing, os.path.join(work, f"{name}-setup.csv"),
                      "--no-preflight")
        assert code == 0, f"setting up {name}: exit {code}"
        before = len(sandbox.get("/_sandbox/requests"))
        out = os.path.join(work, f"{name}.csv")
        code, elapsed = run(sandbox, work, every, out, *flags)
        log = sandbox.get("/_sandbox/requests")[before:]
        methods = collections.Counter(r["method"] for r in log)
        workspaces = sandbox.get("/_sandbox/stats")["workspaces"]
    counts = statuses(out)
    print(f"| {name} | `{' '.join(flags) or '(defaults)'}` | {code} | {len(log)} | "
          f"{methods['GET']} / {methods['POST']} / {methods['PUT']} | "
          f"{', '.join(f'{n} {s}' for s, n in sorted(counts.items()))} | {workspaces} | "
          f"{elapsed:.1f} s |", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=job.BIN)
    job.BIN = parser.parse_args().bin
    with tempfile.TemporaryDirectory() as work:
        existing, every = write_inputs(work)
        print("| scenario | flags | exit | requests | GET / POST / PUT | statuses | workspaces after | elapsed |")
        print("|---|---|---|---|---|---|---|---|")
        scenario(work, existing, every, "preflight", )
        scenario(work, existing, every, "no preflight", "--no-preflight")
        scenario(work, existing, every, "preflight, update", "--on-exists", "update")
        scenario(work, existing, every, "no preflight, update", "--no-preflight",
                 "--on-exists", "update")


if __name__ == "__main__":
    main()
