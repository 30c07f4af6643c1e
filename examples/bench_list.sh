#!/usr/bin/env bash
# The officers' list on SQLite: 64 clients of examples/load.rs open one project each in the benchmark loops
# (72 projects with their events, deadlines and mails), then GET /api/v1/projects is timed COUNT times.
#   bash examples/bench_list.sh [count]     (needs curl and jq)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-50}"
source examples/common/load_bench.sh

work=$(mktemp -d)
trap 'kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null; rm -rf "$work"' EXIT
bench_loops "$work/workflows"
unset DATABASE_URL
add_user "$work/data" 'pluie fine sur la rade de brest' bench@bench.invalid officer
start_serve "$work/data" "$work/workflows" "$work/serve.log"
"$target/examples/load" --url "$SERVE_URL" --email bench@bench.invalid \
  --password 'pluie fine sur la rade de brest' --seconds 2 --clients 64 \
  --database "sqlite://$work/data/incubator.sqlite3" >/dev/null
token=$(curl -fs -X POST "$SERVE_URL/api/v1/auth/token" -H 'content-type: application/json' \
  -d '{"email":"bench@bench.invalid","password":"pluie fine sur la rade de brest"}' | jq -r .token)
projects=$(curl -fs "$SERVE_URL/api/v1/projects" -H "authorization: Bearer $token" | jq length)
times=$(for _ in $(seq 1 "$count"); do
  curl -fs -o /dev/null -w '%{time_total}\n' "$SERVE_URL/api/v1/projects" -H "authorization: Bearer $token"
done | sort -n)
echo "$times" | awk -v n="$count" -v p="$projects" '
  { t[NR] = $1 * 1000 }
  END { printf "GET /api/v1/projects, %d projects, %d times: median %.1f ms, slowest %.1f ms\n", p, n, t[int((n + 1) / 2)], t[n] }'

