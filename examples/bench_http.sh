#!/usr/bin/env bash
# HTTP API benchmark over loopback, on SQLite then PostgreSQL: starts `incubator serve` (release) with the
# benchmark loop workflows, creates an officer, runs examples/load.rs, stops the server.
#   bash examples/bench_http.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
pg_server="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
source examples/common/load_bench.sh

# Work folders go only at the end: on ext4 without a journal, files deleted in the last minutes make every
# new file slower to create (the inode allocator skips recently freed inodes, reading each one), and the
# server writes one file per mail.
works=()
trap 'rm -rf "${works[@]}"' EXIT

run() { # backend database-url
  local backend="$1" url="$2" work
  work=$(mktemp -d)
  works+=("$work")
  bench_loops "$work/workflows"
  export DATABASE_URL="$url"
  [ -n "$url" ] || unset DATABASE_URL
  add_user "$work/data" 'pluie fine sur la rade de brest' bench@bench.invalid officer
  start_serve "$work/data" "$work/workflows" "$work/serve.log"
  echo "== $backend"
  "$target/examples/load" --url "$SERVE_URL" --email bench@bench.invalid \
    --password 'pluie fine sur la rade de brest' --seconds "$seconds" \
    --database "${url:-sqlite://$work/data/incubator.sqlite3}"
  kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
}

run sqlite ""
db="incubator_bench_http"
psql "$pg_server" -qc "DROP DATABASE IF EXISTS $db" && psql "$pg_server" -qc "CREATE DATABASE $db"
run postgres "${pg_server%/*}/$db"
