#!/usr/bin/env bash
# Mail delivery's own rate on SQLite: 64 clients of examples/load.rs build a backlog (one mail per
# transition), then the pending count is read twice, SECONDS apart, with the server otherwise idle.
#   bash examples/bench_drain.sh [seconds]     (needs the sqlite3 command: Debian's sqlite3 package)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-8}"
source examples/common/load_bench.sh

work=$(mktemp -d)
trap 'kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null; rm -rf "$work"' EXIT
bench_loops "$work/workflows"
unset DATABASE_URL
add_user "$work/data" 'pluie fine sur la rade de brest' bench@bench.invalid officer
start_serve "$work/data" "$work/workflows" "$work/serve.log"
"$target/examples/load" --url "$SERVE_URL" --email bench@bench.invalid \
  --password 'pluie fine sur la rade de brest' --seconds 4 --clients 64 \
  --database "sqlite://$work/data/incubator.sqlite3" >/dev/null
pending() { sqlite3 "$work/data/incubator.sqlite3" "SELECT count(*) FROM outbox WHERE status = 'pending'"; }
first=$(pending)
sleep "$seconds"
last=$(pending)
echo "pending $first -> $last in ${seconds} s: $(( (first - last) / seconds )) mails/s"
