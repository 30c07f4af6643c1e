#!/usr/bin/env bash
# HTTP API benchmark over loopback, on SQLite then PostgreSQL: starts `incubator serve` (release) with the
# benchmark loop workflows, creates an officer, runs examples/load.rs, stops the server.
#   bash examples/bench_http.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
pg_server="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
cargo build -q --release --bin incubator
cargo build -q --release -p csirt-incubator --example load
target="${CARGO_TARGET_DIR:-target}/release"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"

run() { # backend database-url
  local backend="$1" url="$2" work port
  work=$(mktemp -d)
  mkdir -p "$work/workflows"
  for n in 0 1 2 3; do
    sed "s/^id: bench-loop$/id: bench-loop-$n/" examples/workflows/bench-loop.yaml > "$work/workflows/bench-loop-$n.yaml"
  done
  export DATABASE_URL="$url"
  [ -n "$url" ] || unset DATABASE_URL
  printf 'pluie fine sur la rade de brest' | "$target/incubator" --data-dir "$work/data" user add \
    --email bench@bench.invalid --name Bench --role officer --password-stdin >/dev/null
  port=$((20000 + RANDOM % 20000))
  RUST_LOG=warn "$target/incubator" --data-dir "$work/data" serve --bind "127.0.0.1:$port" \
    --workflows "$work/workflows" >/dev/null 2>"$work/serve.log" &
  local pid=$!
  for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
  echo "== $backend"
  "$target/examples/load" --url "http://127.0.0.1:$port" --email bench@bench.invalid \
    --password 'pluie fine sur la rade de brest' --seconds "$seconds" \
    --database "${url:-sqlite://$work/data/incubator.sqlite3}"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}

run sqlite ""
db="incubator_bench_http"
psql "$pg_server" -qc "DROP DATABASE IF EXISTS $db" && psql "$pg_server" -qc "CREATE DATABASE $db"
run postgres "${pg_server%/*}/$db"
