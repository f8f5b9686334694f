#!/usr/bin/env bash
# bench/soak.sh - a long steady mix against a release agentgate, for leaks and drift.
#
#   bench/soak.sh [SECONDS]        # default 600; needs nginx and curl
#
# Builds agentgate and the soak driver (examples/soak.rs) in release mode, starts the
# fixed-answer Stripe double of the peer benchmark (../shared/bench/conf/upstream.nginx.conf,
# moved to its own loopback port so it never collides with a running bench/run.sh), and runs
# the driver: it starts `agentgate serve` on a throwaway SQLite database, warms up, then
# holds reads, writes, signed webhook ingests and one event-stream consumer for SECONDS and
# prints throughput, errors, p99, and the server's RSS and open descriptors after warm-up
# and at the end. Exits 1 when the run misses the bar (any error, RSS growth of 10 % or
# more, more descriptors at the end).
#
# Knobs: RATE=400 (requests/s in total), WORKERS=16, WARM_UP=30 (seconds),
#   SOAK_UPSTREAM_PORT=18091, UPSTREAM_CONF=path/to/upstream.nginx.conf,
#   BUILD=0 (use the release binaries already built, e.g. while others edit the tree)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${1:-600}"
RATE="${RATE:-400}"
WORKERS="${WORKERS:-16}"
WARM_UP="${WARM_UP:-30}"
PORT="${SOAK_UPSTREAM_PORT:-18091}"
CONF="${UPSTREAM_CONF:-$ROOT/../shared/bench/conf/upstream.nginx.conf}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

for tool in nginx curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y nginx curl" >&2; exit 2; }
done
[[ -f "$CONF" ]] || { echo "Stripe double config not found at $CONF (set UPSTREAM_CONF=)" >&2; exit 2; }
if ss -Htln "sport = :$PORT" | grep -q .; then
  echo "port $PORT is busy; set SOAK_UPSTREAM_PORT=" >&2
  exit 2
fi

if [[ "${BUILD:-1}" != 0 ]]; then
  cargo build --release --manifest-path "$ROOT/Cargo.toml" --quiet --bin agentgate --example soak
fi

RUN="$(mktemp -d)"
UPSTREAM_PID=""
cleanup() {
  if [[ -n "$UPSTREAM_PID" ]]; then
    kill -TERM "$UPSTREAM_PID" 2>/dev/null || true
    wait "$UPSTREAM_PID" 2>/dev/null || true
  fi
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The double, on loopback only: its listen address is rewritten to this run's port.
mkdir -p "$RUN/tmp"
sed "s/listen 127\.0\.0\.1:18081/listen 127.0.0.1:$PORT/" "$CONF" >"$RUN/upstream.conf"
grep -q "listen 127.0.0.1:$PORT " "$RUN/upstream.conf" || { echo "could not move the double to port $PORT" >&2; exit 2; }
nginx -p "$RUN/" -c "$RUN/upstream.conf" -e "$RUN/error.log" \
  -g "daemon off; worker_processes 1;" >"$RUN/nginx.log" 2>&1 &
UPSTREAM_PID=$!
for _ in $(seq 50); do
  curl -sf -o /dev/null -H 'Authorization: Bearer sk_test_secret' "http://127.0.0.1:$PORT/v1/customers" && break
  sleep 0.1
done
curl -sf -o /dev/null -H 'Authorization: Bearer sk_test_secret' "http://127.0.0.1:$PORT/v1/customers"

echo "# soak: ${DURATION}s after ${WARM_UP}s warm-up, $RATE req/s, $WORKERS workers, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
AGENTGATE_BIN="$TARGET_DIR/release/agentgate" "$TARGET_DIR/release/examples/soak" \
  --upstream "http://127.0.0.1:$PORT" --duration "$DURATION" --warm-up "$WARM_UP" \
  --rate "$RATE" --workers "$WORKERS"
