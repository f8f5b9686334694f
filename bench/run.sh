#!/usr/bin/env bash
# bench/run.sh - agentgate against nginx and HAProxy doing the same job, in one run.
#
# Builds agentgate (release, profile-guided by scripts/build-pgo.sh), prepares a throwaway
# SQLite database holding the bench's Stripe key and one agent key, and runs the peer
# benchmark (../shared/bench/peers.sh by default, or $PEERS), which starts a fixed-answer
# Stripe stand-in, nginx and HAProxy, checks each with curl, runs wrk against every target in
# turn and prints medians. Afterwards it prints agentgate/nginx ratios. Needs: apt-get
# install -y nginx haproxy wrk curl, and for the profile-guided build llvm-profdata of
# rustc's LLVM and, for SQLite's share, clang of it (scripts/build-pgo.sh says how to get
# them).
#
# Knobs: everything peers.sh takes (DURATION, REPS, CONNS, POST_CONNS, ...), plus
#   PGO=0                    measure the plain `cargo build --release` binary instead
#   BUILD=0                  measure the binary as last built (of the kind PGO selects)
#   PEERS=path/to/peers.sh   GATEWAY_PORT=18084
#   GATEWAY_ARGS="..."       `agentgate serve` flags (one instance only); by default
#                            `--workers $PROXY_WORKERS`, the peers' worker count (1 unless
#                            set), so every proxy runs with the same number of threads
#   DATABASE=postgres://postgres@127.0.0.1:5432/test   run on PostgreSQL (a throwaway
#                            schema of that database, dropped afterwards; needs psql)
#   INSTANCES=2              that many agentgate instances on the one database behind an
#                            HAProxy round-robin on GATEWAY_PORT (needs DATABASE=postgres...);
#                            the instances listen on the ports after GATEWAY_PORT
#
# One instance is started by this script, in this script's session like the peers that
# peers.sh starts, and not through peers.sh's GATEWAY_CMD, which runs it under `setsid`:
# Linux's autogroup scheduling then gives agentgate a scheduling group of its own while
# nginx, HAProxy, the stand-in and wrk share one (docs/performance.md, "How it is
# measured"). peers.sh cannot see agentgate's CPU then (its "proxy" column reads 0 for
# agentgate), so this script measures it for each run and prints its medians. With
# INSTANCES above 1, the instances and their balancer still start through GATEWAY_CMD.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
PEERS="${PEERS:-$ROOT/../shared/bench/peers.sh}"
GATEWAY_PORT="${GATEWAY_PORT:-18084}"
export RUN_DIR="${RUN_DIR:-/tmp/agentgate-bench}"

[[ -x "$PEERS" || -f "$PEERS" ]] || { echo "peer benchmark not found at $PEERS (set PEERS=)" >&2; exit 2; }
for tool in nginx haproxy wrk curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y nginx haproxy wrk curl" >&2; exit 2; }
done

# The build to run in production: the profile-guided one unless PGO=0 (see the top).
export PGO="${PGO:-1}"
BIN="$(release_binary "$ROOT")"
if [[ "$PGO" == 1 ]]; then
  echo "# agentgate: the profile-guided release build (scripts/build-pgo.sh)"
else
  echo "# agentgate: the plain release build (PGO=0)"
fi

INSTANCES="${INSTANCES:-1}"
DATABASE="${DATABASE:-}"
STATE="$(mktemp -d)"
SCHEMA=""
AGENTGATE=""
cleanup() {
  if [[ -n "$AGENTGATE" ]]; then
    kill -TERM "$AGENTGATE" 2>/dev/null || true
    wait "$AGENTGATE" 2>/dev/null || true
  fi
  rm -rf "$STATE"
  if [[ -n "$SCHEMA" ]]; then psql -q "$DATABASE" -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null; fi
}
trap cleanup EXIT
if [[ "$DATABASE" == postgres* ]]; then
  command -v psql >/dev/null || { echo "DATABASE=postgres... needs psql: apt-get install -y postgresql-client" >&2; exit 2; }
  SCHEMA="agentgate_bench_$$"
  psql -q "$DATABASE" -c "CREATE SCHEMA $SCHEMA" >/dev/null
  separator='?'; [[ "$DATABASE" == *\?* ]] && separator='&'
  export AGENTGATE_DATABASE="${DATABASE}${separator}options=-c%20search_path%3D$SCHEMA"
elif [[ "$INSTANCES" != 1 ]]; then
  echo "INSTANCES=$INSTANCES needs DATABASE=postgres://...: SQLite serves one instance" >&2; exit 2
else
  export AGENTGATE_DATABASE="sqlite://$STATE/agentgate.db"
fi
prepare_agentgate "$BIN" bench

if [[ "$INSTANCES" == 1 ]]; then
  require_free_ports "GATEWAY_PORT=" "$GATEWAY_PORT"
  # The stand-in's address is fixed by peers.sh; agentgate connects to it per request, so
  # it may start first.
  read -ra serve_args <<<"${GATEWAY_ARGS-"--workers ${PROXY_WORKERS:-1}"}"
  "$BIN" serve "${serve_args[@]}" --listen "127.0.0.1:$GATEWAY_PORT" \
    --stripe-api-base http://127.0.0.1:18081 >"$STATE/agentgate.log" 2>&1 &
  AGENTGATE=$!
  wait_for "http://127.0.0.1:$GATEWAY_PORT/healthz" agentgate
  GATEWAY_CMD=""
else
  # N instances in the background, HAProxy (round robin, keep-alive to the instances) in
  # the foreground; peers.sh stops the whole process group at the end.
  servers=""
  GATEWAY_CMD=""
  for i in $(seq "$INSTANCES"); do
    port=$((GATEWAY_PORT + i))
    servers+="  server agentgate$i 127.0.0.1:$port"$'\n'
    GATEWAY_CMD+="'$BIN' serve --listen 127.0.0.1:$port --stripe-api-base \$BENCH_UPSTREAM_URL & "
  done
  cat >"$STATE/balancer.cfg" <<CFG
global
  maxconn 8192
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend agentgate
  bind 127.0.0.1:$GATEWAY_PORT
  default_backend instances
backend instances
  balance roundrobin
$servers
CFG
  GATEWAY_CMD+="sleep 1; exec haproxy -db -f '$STATE/balancer.cfg'"
fi

# The median of a space-separated list, for the awk programs below.
AWK_MEDIAN='
  function med(s,   a, m, i, j, t) { m = split(s, a, " "); for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }'
# peers.sh prints a line as each run ends; agentgate's CPU between the line before a
# gateway run's line and that line is what it spent in that run.
CPU_LOG="$STATE/agentgate-cpu.tsv"
GATEWAY_LINE='^ +([A-Z]+-c[0-9]+) +gateway +rep [0-9]+: +([0-9]+) req/s'
GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT" GATEWAY_TOKEN="$TOKEN" GATEWAY_CMD="$GATEWAY_CMD" \
  bash "$PEERS" | {
  last=""
  [[ -n "$AGENTGATE" ]] && last="$(process_ticks "$AGENTGATE")"
  while IFS= read -r line; do
    printf '%s\n' "$line"
    [[ -n "$last" ]] || continue
    now="$(process_ticks "$AGENTGATE")"
    if [[ "$line" =~ $GATEWAY_LINE ]]; then
      printf '%s\t%s\t%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "$((now - last))" >>"$CPU_LOG"
    fi
    last="$now"
  done
}
if [[ -s "$CPU_LOG" ]]; then
  echo
  echo "# agentgate's CPU (peers.sh cannot see it; see the top of this script): medians"
  awk -F'\t' -v hz="$(getconf CLK_TCK)" -v secs="${DURATION:-10s}" "$AWK_MEDIAN"'
    { if (!($1 in pct)) order[++n] = $1
      pct[$1] = pct[$1] " " 100 * $3 / hz / secs; us[$1] = us[$1] " " 1e6 * $3 / hz / ($2 * secs) }
    END { for (i = 1; i <= n; i++) printf "%-10s agentgate %3.0f%% of a core, %5.1f us CPU per request\n", order[i], med(pct[order[i]]), med(us[order[i]]) }
  ' "$CPU_LOG"
fi

if [[ -n "$AGENTGATE" ]]; then
  echo
  echo "# agentgate's $(log_counters "$GATEWAY_PORT")"
fi

echo
echo "# agentgate / nginx (throughput ratio; p99 difference)"
awk -F'\t' "$AWK_MEDIAN"'
  NR == 1 { next }
  { k = $1 SUBSEP $2; n[k]++; rps[k] = rps[k] " " $4; p99[k] = p99[k] " " $6; sc[$1] = 1 }
  END {
    for (s in sc) {
      g = s SUBSEP "gateway"; x = s SUBSEP "nginx"
      if (!(g in n) || !(x in n)) continue
      printf "%-10s throughput %.2fx nginx   p99 %+.3f ms vs nginx (%.3f vs %.3f)\n", s, med(rps[g]) / med(rps[x]), med(p99[g]) - med(p99[x]), med(p99[g]), med(p99[x])
    }
  }' "$RUN_DIR/results.tsv"
