#!/usr/bin/env bash
# bench/instructions.sh - user-space instructions per proxied request, agentgate against nginx.
#
#   bench/instructions.sh            # needs valgrind, nginx, wrk, curl
#
# Wall-clock benchmarks on a shared 2-core machine move by 10-20 % from run to run (see
# docs/performance.md), too much to judge a change worth a few per cent. Instructions
# counted by valgrind's callgrind do not depend on what else the machine is doing, so this
# script is the A/B measure for user-space work: it runs agentgate (release build, SQLite,
# request log on, as deployed) and then nginx doing the same job (the peer benchmark's
# configuration) under callgrind against the fixed-answer Stripe stand-in, warms each up,
# counts only while wrk sends GET and then POST requests, and prints instructions per
# request for every thread of the process together (agentgate's request log included),
# and heap allocations per request: calls into the allocator's entry points that callgrind
# recorded (for agentgate mimalloc's `mi_malloc_aligned`, `mi_zalloc_aligned` and
# `mi_realloc_aligned`, which Rust's allocations go through, and for both processes the C
# library's `malloc`, `calloc`, `realloc` and `posix_memalign`, which SQLite and nginx use).
#
# What it does not count: the kernel's side of each request (system calls, wake-ups, context
# switches; see `strace -c` and `perf sched` in docs/performance.md), and valgrind hides
# the SHA extensions from the CPU, so the key check's SHA-256 runs in software here (about
# 3,500 instructions a request that the real CPU does in a few hundred). The request log's
# share depends a little on its batch sizes, which follow the request rate under valgrind.
#
# Knobs: SECONDS_PER_RUN=5, CONNS=8, INSTR_PORT=18093 (agentgate; nginx the next port),
#   INSTR_UPSTREAM_PORT=18092, UPSTREAM_CONF=..., PEER_CONF=..., BUILD=0 (use the release
#   binary already built), KEEP_DUMPS=DIR (keep each run's callgrind dump there, named
#   after the proxy and the method, for `callgrind_annotate`), CACHE_SIM=1 (callgrind
#   also simulates the caches and the report adds first-level data and last-level misses
#   per request: memory traffic, which instruction counts do not show; about 2x slower),
#   PGO=1 (the profile-guided build of scripts/build-pgo.sh instead of the plain release
#   build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-5}"
CONNS="${CONNS:-8}"
PORT="${INSTR_PORT:-18093}"
PEER_PORT=$((PORT + 1))
UPSTREAM_PORT="${INSTR_UPSTREAM_PORT:-18092}"
peer_confs "$ROOT"

for tool in valgrind callgrind_control nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y valgrind nginx wrk curl" >&2; exit 2; }
done
for file in "$CONF" "$PEER" "$POST_LUA"; do
  [[ -f "$file" ]] || { echo "not found: $file (set UPSTREAM_CONF= / PEER_CONF=)" >&2; exit 2; }
done
require_free_ports "INSTR_PORT= / INSTR_UPSTREAM_PORT=" "$PORT" "$PEER_PORT" "$UPSTREAM_PORT"

BIN="$(release_binary "$ROOT")"
begin_run

# The stand-in and the nginx peer, moved to this script's loopback ports.
write_moved_confs "$RUN" "$UPSTREAM_PORT" "$PEER_PORT" "$CONF" "$PEER"
start_nginx "$RUN/up"

# Counts instructions of the callgrind process $1 while wrk runs against $2 with token $3
# (and wrk's script $5, if any); keeps the dump as KEEP_DUMPS/$4 if asked to; prints
# "requests instructions d1-misses ll-misses allocations".
measure() {
  local pid=$1 url=$2 token=$3 label=$4 script=${5:-}
  local args=(-t1 "-c$CONNS" -H "Authorization: Bearer $token")
  [[ -n "$script" ]] && args+=(-s "$script")
  wrk "${args[@]}" -d2s "$url" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  local out
  out="$(wrk "${args[@]}" "-d${SECONDS_PER_RUN}s" "$url")"
  callgrind_control -d "$pid" >/dev/null 2>&1
  local dump
  dump="$(ls -t "$RUN"/callgrind.out."$pid".* | head -1)"
  [[ -z "${KEEP_DUMPS:-}" ]] || cp "$dump" "$KEEP_DUMPS/callgrind.$label"
  local requests instructions
  requests="$(awk '/requests in/{print $1}' <<<"$out")"
  # The totals in the order of the dump's `events:` line; with the cache simulation that
  # is Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
  local totals
  totals="$(awk '/^events:/{n = NF - 1; for (i = 2; i <= NF; i++) name[i] = $i}
    /^(summary|totals):/{for (i = 2; i <= NF; i++) v[name[i]] = $i
      printf "%s %.0f %.0f\n", v["Ir"], v["D1mr"] + v["D1mw"], v["DLmr"] + v["DLmw"]; exit}' "$dump")"
  echo "$requests $totals $(allocations "$dump")"
}

# allocations DUMP: the calls into the allocators' entry points recorded in the callgrind
# dump DUMP (see the top of this script). The dump names a function once, as "(id) name",
# and by "(id)" alone after that; each "calls=" line counts the calls to the function the
# "cfn=" line before it named.
allocations() {
  awk '
    /^c?fn=\(/ {
      match($0, /\([0-9]+\)/)
      id = substr($0, RSTART + 1, RLENGTH - 2)
      rest = substr($0, RSTART + RLENGTH + 1)
      if (rest != "") name[id] = rest
      if ($0 ~ /^cfn=/) callee = id
      next
    }
    /^calls=/ {
      split($0, field, /[= ]/)
      if (name[callee] ~ /^(mi_(malloc|zalloc|realloc)_aligned|malloc|calloc|realloc|posix_memalign)$/)
        total += field[2]
    }
    END { printf "%.0f\n", total }' "$1"
}

report() {
  local name=$1 scenario=$2 requests=$3 instructions=$4 d1=$5 ll=$6 allocs=$7
  printf '%-10s %-5s %8d requests  %8d instructions/request  %5.1f allocations/request' \
    "$name" "$scenario" "$requests" $((instructions / requests)) \
    "$(awk -v a="$allocs" -v n="$requests" 'BEGIN {print a / n}')"
  if [[ "${CACHE_SIM:-0}" == 1 ]]; then
    awk -v d="$d1" -v l="$ll" -v n="$requests" \
      'BEGIN {printf "  %6.1f D1 misses  %5.2f LL misses", d / n, l / n}'
  fi
  echo
}

# count NAME METHOD PID URL TOKEN LABEL [SCRIPT]: measures the process PID (the arguments
# of `measure`) and prints its line of the report under NAME and METHOD.
count() {
  local name=$1 method=$2
  shift 2
  local requests instructions d1 ll allocs
  read -r requests instructions d1 ll allocs < <(measure "$@")
  report "$name" "$method" "$requests" "$instructions" "$d1" "$ll" "$allocs"
}

VALGRIND=(valgrind --tool=callgrind)
[[ "${CACHE_SIM:-0}" != 1 ]] || VALGRIND+=(--cache-sim=yes)

# agentgate: a throwaway SQLite database with the stand-in's key and one agent key.
export AGENTGATE_DATABASE="sqlite://$RUN/agentgate.db"
prepare_agentgate "$BIN" instructions
"${VALGRIND[@]}" --callgrind-out-file="$RUN/callgrind.out.%p" \
  "$BIN" serve --listen "127.0.0.1:$PORT" --stripe-api-base "http://127.0.0.1:$UPSTREAM_PORT" \
  >"$RUN/agentgate.log" 2>&1 &
AGENTGATE=$!
PIDS+=("$AGENTGATE")
wait_for "http://127.0.0.1:$PORT/healthz" agentgate
URL="http://127.0.0.1:$PORT/v1/connections/stripe/customers"
count agentgate GET "$AGENTGATE" "$URL" "$TOKEN" agentgate-get
count agentgate POST "$AGENTGATE" "$URL" "$TOKEN" agentgate-post "$POST_LUA"

# nginx doing the same job, as one process (no master) so callgrind sees the worker.
"${VALGRIND[@]}" --callgrind-out-file="$RUN/callgrind.out.%p" \
  nginx -p "$RUN/peer/" -c "$RUN/peer/nginx.conf" -e "$RUN/peer/error.log" \
  -g "daemon off; master_process off; worker_processes 1;" >"$RUN/peer/out.log" 2>&1 &
NGINX=$!
PIDS+=("$NGINX")
wait_for "http://127.0.0.1:$PEER_PORT/" nginx
URL="http://127.0.0.1:$PEER_PORT/v1/connections/stripe/customers"
count nginx GET "$NGINX" "$URL" gw_test_123 nginx-get
count nginx POST "$NGINX" "$URL" gw_test_123 nginx-post "$POST_LUA"
