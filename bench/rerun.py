#!/usr/bin/env python3
"""The nightly rerun at a million tenants: `dbprov run --resume` over a results file of
1 000 000 rows that are all done, against a sandbox that holds their 1 000 000 workspaces.
Not part of the tests.

It first creates the million through dbprov itself (--no-preflight, no rate limit,
--concurrency 64), which writes the results file, then measures, each on a copy of it:
  all done    the same input again: peak RSS, wall time, requests the sandbox saw (none);
  10 new      ten new tenants at the end of the input: the same, and the requests (one
              list of a million names, ten creates);
  10 new, 1st the ten new tenants at the start (every _row moves: the file is rewritten).
Peak RSS is GNU time's %M (/usr/bin/time) for dbprov alone; each case runs --runs times
and prints the median and the range.

Usage: python3 bench/rerun.py [--rows N] [--runs N] [--bin PATH] [--make-with PATH]
  --bin measures another build (say, an older commit's) and skips `cargo build`;
  --make-with creates the million with that build (default: the one measured).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import job  # noqa: E402


def tenants(path, names):
    with open(path, "w") as f:
        f.write("name,connectionType,datasourceName,datamartName\n")
        for name in names:
            f.write(f"{name},DATASOURCE,postgres-main,\n")


def measure(binary, sandbox, key_file, input_csv, results, work):
    """Peak RSS (KiB), seconds, exit code and the sandbox's request and workspace counts
    added, of one `run --resume` on a fresh copy of `results`."""
    copy = os.path.join(work, "copy.results.csv")
    shutil.copyfile(results, copy)
    before = sandbox.get("/_sandbox/stats")
    with tempfile.NamedTemporaryFile("r") as report:
        started = time.monotonic()
        proc = subprocess.run(
            [job.TIME, "-o", report.name, "-f", "%M", binary, "run", input_csv, "--resume",
             "-o", copy, "--base-url", sandbox.url, "--api-key-file", key_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.monotonic() - started
        rss = int(report.read().split()[-1])
    after = sandbox.get("/_sandbox/stats")
    if proc.returncode != 0:
        sys.exit(f"run --resume exited {proc.returncode}: {proc.stderr[-2000:]}")
    return (rss, elapsed, after["requests_total"] - before["requests_total"],
            after["workspaces"] - before["workspaces"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bin")
    parser.add_argument("--make-with")
    args = parser.parse_args()
    if args.bin:
        job.BIN = os.path.abspath(args.bin)
    else:
        job.build()
    maker = os.path.abspath(args.make_with) if args.make_with else job.BIN
    n = args.rows
    with tempfile.TemporaryDirectory() as work, job.Sandbox() as sandbox:
        key_file = os.path.join(work, "key")
        with open(key_file, "w") as f:
            f.write(sandbox.key)
        os.chmod(key_file, 0o600)
        names = [f"night-{i:07d}" for i in range(n)]
        input_csv = os.path.join(work, "tenants.csv")
        tenants(input_csv, names)
        results = os.path.join(work, "tenants.results.csv")
        started = time.monotonic()
        subprocess.run([maker, "run", input_csv, "-o", results, "--base-url", sandbox.url,
                        "--api-key-file", key_file, "--no-preflight", "--rate", "unlimited",
                        "--concurrency", "64"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        print(f"made {n} workspaces and their results in {time.monotonic() - started:.0f} s")
        new = [f"new-{i:02d}" for i in range(10)]
        at_end = os.path.join(work, "at-end.csv")
        tenants(at_end, names + new)
        at_start = os.path.join(work, "at-start.csv")
        tenants(at_start, new + names)
        for label, input_path, expected in [("all done", input_csv, (0, 0)),
                                            ("10 new at the end", at_end, (11, 10)),
                                            ("10 new at the start", at_start, (11, 10))]:
            runs = []
            for _ in range(args.runs):
                rss, elapsed, requests, made = measure(job.BIN, sandbox, key_file, input_path,
                                                       results, work)
                if (requests, made) != expected and made != 0:
                    print(f"  ({label}: {requests} requests, {made} created)")
                runs.append((rss, elapsed, requests, made))
                # The new ones exist now: the next run of this case must find them new again.
                for name in new:
                    subprocess.run(["curl", "-s", "-o", "/dev/null", "-X", "DELETE",
                                    f"{sandbox.url}/api/v2/workspace?name={name}",
                                    "-H", f"Authorization: Bearer {sandbox.key}"], check=True)
            rss = [r[0] / 1024 for r in runs]
            secs = [r[1] for r in runs]
            print(f"{label:20} peak RSS {statistics.median(rss):.1f} MiB "
                  f"({min(rss):.1f}-{max(rss):.1f}), {statistics.median(secs):.2f} s "
                  f"({min(secs):.2f}-{max(secs):.2f}); requests {runs[0][2]}, "
                  f"created {runs[0][3]} (expected {expected[0]} and {expected[1]})")


if __name__ == "__main__":
    main()
