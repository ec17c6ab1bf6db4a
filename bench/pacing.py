#!/usr/bin/env python3
"""Pacing benchmarks: `dbprov run` against `dbprov sandbox --rate-limit` on loopback. Not part
of the tests. Each figure is a ratio:

  1. window 100/10s with draft6 headers, 1 000 rows, --rate 1000/s: rows failed, 429s as a
     share of requests, elapsed as a multiple of the limit's ideal (rows / (100 per 10 s));
  2. the same window without headers (a 429 with Retry-After only): rows failed, 429s as a
     share of requests, throughput as a share of the limit;
  3. --rate-limit 4/s, every dbprov option at its default, 200 rows: rows failed;
  4. 4 shards of 1 000 rows behind one 100/10s limit, started together: rows failed, their
     throughput together (rows / the last shard's elapsed) as a share of the limit;
  5. the issue's second measurement: --rate-limit 50/s (draft6), --rate 200/s, 3 000 rows:
     429s as a share of requests;
  6. the issue's third: 51 rows against a port where nothing listens, --rate unlimited:
     elapsed until dbprov stops, and its exit code.

The limit's ideal for N rows is N / (limit / window): what the API allows on average. A job
that starts at the beginning of a fixed window can beat it by up to one window (the last
window's requests go at its start), so a ratio a little below 1 is possible.

Usage: python3 bench/pacing.py [--only headers,no-headers,defaults,shards,fast,unreachable]
                              [--bin PATH]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import job  # noqa: E402  (the sandbox and CSV helpers of the other benchmarks)

LIMIT, WINDOW = 100, 10.0
ROWS = 1000


def start(sandbox, work, input_csv, name, *flags):
    """Starts one `dbprov run`; returns the process, its start time and its results path."""
    # Written once per sandbox, before any process that reads it starts.
    key_file = os.path.join(work, f"key-{sandbox.url.rsplit(':', 1)[1]}")
    if not os.path.exists(key_file):
        with open(key_file, "w") as f:
            f.write(sandbox.key)
    out = os.path.join(work, f"{name}.results.csv")
    proc = subprocess.Popen(
        [job.BIN, "run", input_csv, "-o", out, "--base-url", sandbox.url,
         "--api-key-file", key_file, "--summary-json", out + ".json", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, time.monotonic(), out


def finish(proc, started):
    code = proc.wait()
    return code, time.monotonic() - started


def failed_rows(results):
    with open(results) as f:
        lines = f.read().splitlines()[1:]
    return sum(1 for line in lines if line.split(",")[1] != "created")


def limited_run(work, name, rows, sandbox_flags, job_flags):
    """One job of `rows` rows against a sandbox started with `sandbox_flags`: its exit code,
    elapsed seconds, the requests and 429s the sandbox counted, and the rows not created."""
    input_csv = os.path.join(work, f"{name}.csv")
    job.tenants(input_csv, rows, name)
    with job.Sandbox(*sandbox_flags) as sandbox:
        proc, started, out = start(sandbox, work, input_csv, name, *job_flags)
        code, elapsed = finish(proc, started)
        stats = sandbox.get("/_sandbox/stats")
    requests = stats["requests_total"]
    refused = stats["faults_injected"]["rate_limited"]
    return code, elapsed, requests, refused, failed_rows(out)


def window_run(work, name, headers):
    return limited_run(work, name, ROWS,
                       ["--rate-limit", f"{LIMIT}/{int(WINDOW)}s", "--rate-limit-headers", headers],
                       ["--rate", "1000/s"])


def bench_headers(work):
    code, elapsed, requests, refused, failed = window_run(work, "headers", "draft6")
    ideal = ROWS / (LIMIT / WINDOW)
    print(f"1. 100/10s with draft6 headers, {ROWS} rows, --rate 1000/s: exit {code}, "
          f"{failed} failed; 429s {refused} of {requests} requests = {refused / requests:.4f} "
          f"(target <= 0.01); elapsed {elapsed:.1f} s = {elapsed / ideal:.3f} of the ideal "
          f"{ideal:.0f} s (target <= 1.05)")


def bench_no_headers(work):
    code, elapsed, requests, refused, failed = window_run(work, "bare", "none")
    throughput = ROWS / elapsed
    print(f"2. 100/10s without headers (Retry-After only), {ROWS} rows, --rate 1000/s: "
          f"exit {code}, {failed} failed; 429s {refused} of {requests} requests = "
          f"{refused / requests:.4f} (target <= 0.10); throughput {throughput:.2f}/s = "
          f"{throughput / (LIMIT / WINDOW):.3f} of the limit (target >= 0.85)")


def bench_defaults(work):
    rows = 200
    code, elapsed, requests, refused, failed = limited_run(
        work, "defaults", rows, ["--rate-limit", "4/s"], [])
    print(f"3. --rate-limit 4/s, every option at its default, {rows} rows: exit {code}, "
          f"{failed} failed (target 0); 429s {refused} of {requests} requests; "
          f"{rows / elapsed:.2f} rows/s = {rows / elapsed / 4:.3f} of the limit in {elapsed:.1f} s")


def bench_shards(work, shards=4):
    input_csv = os.path.join(work, "shards.csv")
    job.tenants(input_csv, ROWS, "shard")
    with job.Sandbox("--rate-limit", f"{LIMIT}/{int(WINDOW)}s") as sandbox:
        procs = [start(sandbox, work, input_csv, f"shard-{i}", "--rate", "1000/s",
                       "--shard", f"{i}/{shards}") for i in range(shards)]
        ends = [finish(proc, started) for proc, started, _ in procs]
        stats = sandbox.get("/_sandbox/stats")
    failed = sum(failed_rows(out) for _, _, out in procs)
    elapsed = max(e for _, e in ends)
    requests = stats["requests_total"]
    refused = stats["faults_injected"]["rate_limited"]
    throughput = ROWS / elapsed
    print(f"4. {shards} shards, one 100/10s limit (draft6), {ROWS} rows: exits "
          f"{[c for c, _ in ends]}, {failed} failed; 429s {refused} of {requests} requests; "
          f"together {throughput:.2f}/s = {throughput / (LIMIT / WINDOW):.3f} of the limit "
          f"(target >= 0.9)")


def bench_fast_window(work, rows=3000):
    code, elapsed, requests, refused, failed = limited_run(
        work, "fast", rows, ["--rate-limit", "50/s"], ["--rate", "200/s"])
    print(f"5. --rate-limit 50/s (draft6), --rate 200/s, {rows} rows: exit {code}, "
          f"{failed} failed; 429s {refused} of {requests} requests = "
          f"{refused / requests:.4f}; {rows / elapsed:.2f} rows/s = {rows / elapsed / 50:.3f} "
          f"of the limit")


def bench_unreachable(work, rows=51):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    input_csv = os.path.join(work, "nowhere.csv")
    job.tenants(input_csv, rows, "nowhere")
    key_file = os.path.join(work, "key")
    with open(key_file, "w") as f:
        f.write("k")
    started = time.monotonic()
    code = subprocess.run(
        [job.BIN, "run", input_csv, "-o", os.path.join(work, "nowhere.results.csv"),
         "--base-url", f"http://127.0.0.1:{port}", "--api-key-file", key_file,
         "--rate", "unlimited"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    elapsed = time.monotonic() - started
    print(f"6. {rows} rows, nothing listening, --rate unlimited: exit {code} after {elapsed:.1f} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only",
                        default="headers,no-headers,defaults,shards,fast,unreachable")
    parser.add_argument("--bin", help="the dbprov to measure (no build); default: this tree's")
    args = parser.parse_args()
    if args.bin:
        job.BIN = os.path.abspath(args.bin)
    else:
        job.build()
    only = args.only.split(",")
    with tempfile.TemporaryDirectory() as work:
        for name, bench in [("headers", bench_headers), ("no-headers", bench_no_headers),
                            ("defaults", bench_defaults), ("shards", bench_shards),
                            ("fast", bench_fast_window), ("unreachable", bench_unreachable)]:
            if name in only:
                bench(work)


if __name__ == "__main__":
    main()
