#!/usr/bin/env bash
# Soak run (docs/reliability.md, section 10): `incubator serve` on a SQLite file, its mails sent over SMTP to
# a loopback sink (crates/mailer/tests/smtp_sink.py), driven by examples/soak.rs with a realistic mix at a
# fixed rate for a fixed time. Fails when a request fails, memory grows or the outbox does not drain; writes
# the per-second CSV and plots memory and the outbox's length over time.
#   bash examples/soak.sh [seconds, default 600] [plot.png, default in a temporary folder]
#   SOAK_RATE (requests/s, default 50), SOAK_PROFILE (release, the default, or debug: what CI has built)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
plot="${2:-}"
rate="${SOAK_RATE:-50}"
profile="${SOAK_PROFILE:-release}"

# The sink is aiosmtpd (PyPI); the plot is gnuplot (Debian).
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  python3 -m pip install --quiet aiosmtpd 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages aiosmtpd
fi
if ! command -v gnuplot >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null
fi

if [ "$profile" = release ]; then
  cargo build -q --release -p csirt-incubator --bin incubator --example soak
else
  # `cargo test --no-run` leaves examples under hashed names only: build the two binaries by name.
  cargo build -q -p csirt-incubator --bin incubator --example soak
fi
target="${CARGO_TARGET_DIR:-target}/$([ "$profile" = release ] && echo release || echo debug)"
incubator="$target/incubator"
source examples/common/serve.sh

work=$(mktemp -d)
SERVE_PID="" sink_pid=""
cleanup() {
  [ -z "$SERVE_PID" ] || kill "$SERVE_PID" 2>/dev/null || true
  [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
if [ -z "$plot" ]; then mkdir -p "${CARGO_TARGET_DIR:-target}/soak"; plot="${CARGO_TARGET_DIR:-target}/soak/soak.png"; fi
csv="${plot%.png}.csv"

smtp_port=$((20000 + RANDOM % 20000))
python3 crates/mailer/tests/smtp_sink.py "$smtp_port" "$work/mails.jsonl" >"$work/sink.out" 2>&1 &
sink_pid=$!
for _ in $(seq 1 50); do grep -q READY "$work/sink.out" 2>/dev/null && break; sleep 0.2; done
grep -q READY "$work/sink.out" || { cat "$work/sink.out" >&2; exit 1; }

mkdir -p "$work/workflows"
cp workflows/*.yaml "$work/workflows/"
bench_loops "$work/workflows"
officer_password='pluie fine sur la rade de brest'
council_password='marée haute au port de saint-malo'
add_user "$work/data" "$officer_password" officer@soak.invalid officer
for region in 01 02 03 04 06 11 24 27 28 32 44 52 53 75 76 84 93 94; do
  add_user "$work/data" "$council_password" "council-$region@soak.invalid" council "$region"
done
INCUBATOR_MAIL__SMTP_URL="smtp://127.0.0.1:$smtp_port" start_serve "$work/data" "$work/workflows" "$work/serve.log"

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg); $profile build"
status=0
"$target/examples/soak" --url "$SERVE_URL" --email officer@soak.invalid --password "$officer_password" \
  --council-password "$council_password" --pid "$SERVE_PID" --sink "$work/mails.jsonl" --csv "$csv" \
  --rate "$rate" --seconds "$seconds" || status=$?

if grep -q 'panicked' "$work/serve.log"; then
  echo "BROKEN: the server panicked:" >&2
  grep -m5 'panicked' "$work/serve.log" >&2
  status=1
fi

if [ -s "$csv" ]; then
  gnuplot <<GNUPLOT
set datafile separator ','
set terminal pngcairo size 1000,560 font ',10'
set output '$plot'
set title "Soak: $rate requests/s for $seconds s on loopback (SQLite, SMTP sink), then the drain"
set xlabel 'seconds'
set ylabel 'server RSS (MiB)'
set y2label 'mails in the outbox (pending)'
set yrange [0:*]
set y2range [0:*]
set ytics nomirror
set y2tics
set key top left
set arrow from $seconds, graph 0 to $seconds, graph 1 nohead dashtype 2
plot '$csv' every ::1 using 1:(\$3/1024) with lines linewidth 2 title 'server RSS (MiB)' axes x1y1, \
     '' every ::1 using 1:4 with lines title 'outbox pending' axes x1y2
GNUPLOT
  echo "plot: $plot; samples: $csv"
fi
exit "$status"
