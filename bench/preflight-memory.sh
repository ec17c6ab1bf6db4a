#!/bin/bash
# Peak RSS of the preflight list against a large organisation: a sandbox filled with a
# million workspaces (a first run), then a 1 000-row run with and without the list.
# GNU time (/usr/bin/time) reports the peaks. Usage: bash bench/preflight-memory.sh [BIN]
set -e
B=$(realpath "${1:-target/release/dbprov}")
W=$(mktemp -d)
cd $W
$B sandbox --listen 127.0.0.1:0 > sb.out 2>/dev/null &
SB=$!
sleep 0.5
URL=$(sed -n 1p sb.out); KEY=$(sed -n 2p sb.out)
echo "$KEY" > key; chmod 600 key
python3 -c "
print('name,connectionType,datasourceName')
for i in range(1000000): print(f'org-{i:07d},DATASOURCE,postgres-main')
" > org.csv
python3 -c "
print('name,connectionType,datasourceName')
for i in range(1000): print(f'new-{i:04d},DATASOURCE,postgres-main')
" > small.csv
/usr/bin/time -f "fill: %M KiB %e s" $B run org.csv -o org.res.csv --base-url $URL --api-key-file key --rate unlimited --concurrency 32 --no-preflight --progress never -q 2>&1 | tail -1
/usr/bin/time -f "1k rows vs 1M org, preflight: %M KiB %e s" $B run small.csv -o small.res.csv --base-url $URL --api-key-file key --rate unlimited --progress never -q --summary-json s.json 2>&1 | tail -1
python3 -c "import json;d=json.load(open('s.json'));print('listed', d['listed_workspaces'], 'list_requests', d['list_requests'], d['by_status'])"
/usr/bin/time -f "1k rows vs 1M org, --no-preflight: %M KiB %e s" $B run small.csv -o small2.res.csv --base-url $URL --api-key-file key --rate unlimited --progress never -q --no-preflight 2>&1 | tail -1
kill $SB
rm -rf $W
