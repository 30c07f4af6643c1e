#!/usr/bin/env bash
# Durable transitions per second on SQLite (FULL, NORMAL) and PostgreSQL, next to the raw commit rate, and
# pgbench running the same raw transaction at the same client counts. Results go to standard output.
#   bash examples/bench_store.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
pg="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
cargo build -q --release -p incubator-store --example durable_transitions
bin="${CARGO_TARGET_DIR:-target}/release/examples/durable_transitions"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
for backend in sqlite-full sqlite-normal; do
  "$bin" --backend "$backend" --seconds "$seconds"
done
DATABASE_URL="$pg" "$bin" --backend postgres --seconds "$seconds" --keep
db="incubator_bench_keep"
psql -q -h 127.0.0.1 -U postgres -d "$db" -c "CREATE SEQUENCE IF NOT EXISTS pgbench_seq START 1000000000000"
echo "pgbench, same raw transaction:"
for clients in 1 16 64; do
  tps=$(pgbench -n -h 127.0.0.1 -U postgres -c "$clients" -j 2 -T "$seconds" -f examples/pgbench_raw.sql "$db" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p')
  printf '%8s clients  %10.0f tps\n' "$clients" "$tps"
done
