# Sourced by the HTTP benchmark and the soak run: the benchmark loop workflows, accounts, and
# `incubator serve` started in the background. Expects `incubator` to name the built binary.

# bench_loops DIR: the benchmark loop, copied four times under its own ids (bench-loop-0 … 3).
bench_loops() {
  mkdir -p "$1"
  for n in 0 1 2 3; do
    sed "s/^id: bench-loop$/id: bench-loop-$n/" examples/workflows/bench-loop.yaml > "$1/bench-loop-$n.yaml"
  done
}

# add_user DATA_DIR PASSWORD EMAIL ROLE [REGION]
add_user() {
  local data="$1" password="$2" email="$3" role="$4" region="${5:-}"
  printf '%s' "$password" | "$incubator" --data-dir "$data" user add --email "$email" --name "${email%@*}" \
    --role "$role" ${region:+--region "$region"} --password-stdin >/dev/null
}

# start_serve DATA_DIR WORKFLOWS_DIR LOG: sets SERVE_PID and SERVE_URL once the server answers /healthz.
start_serve() {
  local port
  port=$((20000 + RANDOM % 20000))
  RUST_LOG=warn "$incubator" --data-dir "$1" serve --bind "127.0.0.1:$port" --workflows "$2" >/dev/null 2>"$3" &
  SERVE_PID=$!
  SERVE_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    curl -fs "$SERVE_URL/healthz" >/dev/null && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "the server did not start:" >&2
  cat "$3" >&2
  return 1
}
