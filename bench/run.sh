#!/usr/bin/env bash
# bench/run.sh - agentgate against nginx and HAProxy doing the same job, in one run.
#
# Builds agentgate (release), prepares a throwaway SQLite database holding the bench's
# Stripe key and one agent key, and runs the peer benchmark (../shared/bench/peers.sh by
# default, or $PEERS), which starts a fixed-answer Stripe stand-in, nginx and HAProxy,
# checks each with curl, runs wrk against every target in turn and prints medians.
# Afterwards it prints agentgate/nginx ratios. Needs: apt-get install -y nginx haproxy wrk curl
#
# Knobs: everything peers.sh takes (DURATION, REPS, CONNS, POST_CONNS, ...), plus
#   PEERS=path/to/peers.sh   GATEWAY_PORT=18084
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/bench/peers.sh}"
GATEWAY_PORT="${GATEWAY_PORT:-18084}"
export RUN_DIR="${RUN_DIR:-/tmp/agentgate-bench}"

[[ -x "$PEERS" || -f "$PEERS" ]] || { echo "peer benchmark not found at $PEERS (set PEERS=)" >&2; exit 2; }
for tool in nginx haproxy wrk curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y nginx haproxy wrk curl" >&2; exit 2; }
done

cargo build --release --manifest-path "$ROOT/Cargo.toml" --quiet
BIN="$ROOT/target/release/agentgate"

STATE="$(mktemp -d)"
trap 'rm -rf "$STATE"' EXIT
export AGENTGATE_DATABASE="sqlite://$STATE/agentgate.db"
AGENTGATE_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
export AGENTGATE_MASTER_KEY
export AGENTGATE_LOG=warn
# The stand-in holds a test-mode key, whose connection limit (Stripe's 25/s) would cap the
# run; a limit no run reaches keeps the limiter's cost in the measurement.
export AGENTGATE_CONNECTION_RATE_TEST=1000000000
# The stand-in accepts exactly this key, as peers.sh documents.
printf 'sk_test_secret' | "$BIN" connections set stripe >/dev/null
TOKEN="$("$BIN" keys create --name bench 2>/dev/null)"

GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT" GATEWAY_TOKEN="$TOKEN" \
GATEWAY_CMD="exec '$BIN' serve --listen 127.0.0.1:\$BENCH_GATEWAY_PORT --stripe-api-base \$BENCH_UPSTREAM_URL" \
  bash "$PEERS"

echo
echo "# agentgate / nginx (throughput ratio; p99 difference)"
awk -F'\t' '
  NR == 1 { next }
  { k = $1 SUBSEP $2; n[k]++; rps[k] = rps[k] " " $4; p99[k] = p99[k] " " $6; sc[$1] = 1 }
  function med(s,   a, m, i, j, t) { m = split(s, a, " "); for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
  END {
    for (s in sc) {
      g = s SUBSEP "gateway"; x = s SUBSEP "nginx"
      if (!(g in n) || !(x in n)) continue
      printf "%-10s throughput %.2fx nginx   p99 %+.3f ms vs nginx (%.3f vs %.3f)\n", s, med(rps[g]) / med(rps[x]), med(p99[g]) - med(p99[x]), med(p99[g]), med(p99[x])
    }
  }' "$RUN_DIR/results.tsv"
