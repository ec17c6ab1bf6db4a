#!/bin/bash
# What the rewrite into input order costs at the end of a run: a million rows at
# concurrency 32 (they finish out of order), once to a results file (rewritten in input
# order at the end) and once to stdout (left in completion order), each against a fresh
# sandbox. GNU time reports peak RSS and wall time. Usage: bash bench/order.sh [BIN] [ROWS]
set -e
B=$(realpath "${1:-target/release/dbprov}")
N=${2:-1000000}
W=$(mktemp -d)
cd $W
python3 -c "
print('name,connectionType,datasourceName')
for i in range($N): print(f'org-{i:07d},DATASOURCE,postgres-main')
" > org.csv
for out in org.res.csv -; do
  $B sandbox --listen 127.0.0.1:0 > sb.out 2>/dev/null &
  SB=$!
  while [ ! -s sb.out ] || [ $(wc -l < sb.out) -lt 2 ]; do sleep 0.1; done
  URL=$(sed -n 1p sb.out); KEY=$(sed -n 2p sb.out)
  echo "$KEY" > key; chmod 600 key
  /usr/bin/time -f "-o $out: %M KiB %e s" $B run org.csv -o $out --base-url $URL --api-key-file key \
    --rate unlimited --concurrency 32 --no-preflight --progress never -q > stdout.csv 2> err.txt || true
  tail -1 err.txt
  kill $SB; wait $SB 2>/dev/null || true; rm -f sb.out
done
python3 - <<'PY'
import csv
def order(path):
    rows = [int(r["_row"]) for r in csv.DictReader(open(path, newline=""))]
    return len(rows), sum(1 for a, b in zip(rows, rows[1:]) if b < a)
print("results file: %d rows, %d out of order" % order("org.res.csv"))
print("stdout:       %d rows, %d out of order" % order("stdout.csv"))
PY
rm -rf $W
