#!/usr/bin/env bash
# bench/sched.sh - how the kernel schedules a proxied request, agentgate against nginx.
#
#   bench/sched.sh            # needs nginx, wrk, curl, and Linux's /proc schedstat
#
# On the 2-core bench machine the load generator, the Stripe stand-in and the proxy share
# two cores, so throughput depends on how the kernel places and preempts them, not only on
# the CPU each spends (docs/performance.md, "Scheduling: why the tail is long"). This
# script runs the stand-in, the nginx peer and agentgate (release build, SQLite, request
# log on, one worker like the peer) on its own loopback ports, sends GET requests (or, with
# POST=1, the peer benchmark's form POST) with wrk to nginx and to agentgate in turn, and
# prints per request, from /proc:
#
#   cpu      the proxy process's CPU time, all threads (agentgate's request log included,
#            but for the entries still queued when wrk stopped, which the line under
#            agentgate's run counts; the next run waits until they are written)
#   run      the proxy's worker thread's time on a CPU
#   usr/sys  how that time splits between the program and the kernel (the kernel samples
#            this at each clock tick, so it is good to a few per cent over a run)
#   wait     the worker's time runnable but waiting for a CPU
#   preempt  the worker's involuntary context switches (another task took its CPU)
#   up-sleep the stand-in's voluntary context switches (it ran out of work and slept)
#   idle     the machine's idle share while wrk ran
#   busy     the CPU time of the whole machine (every CPU, every task: wrk, the stand-in, the
#            proxy and the rest) while wrk ran, a request. At 32 connections the CPUs are
#            saturated, so the number of CPUs divided by this bounds the throughput however
#            the tasks are scheduled
#
# Knobs: SECONDS_PER_RUN=10, CONNS=32, REPS=3, SCHED_PORT=18096 (agentgate; nginx the next
#   port), SCHED_UPSTREAM_PORT=18095, UPSTREAM_CONF=..., PEER_CONF=..., BUILD=0 (use the
#   release binary already built), BASELINE_BIN=PATH (a second agentgate build, say one
#   copied aside before a change, run on the port after nginx's with a database of its own
#   and measured as "baseline" in every round, so two builds meet the same stretch of a
#   noisy host), POST=1 (the peer benchmark's form POST, post.lua beside UPSTREAM_CONF,
#   instead of GET), TRACE=1 (see below), PGO=1 (the profile-guided build of
#   scripts/build-pgo.sh instead of the plain release build), PEER_ACCESS_LOG=1 (the nginx
#   peer keeps an access log of what agentgate's request log records of a request: time,
#   request id, method, path, status, latency, Stripe's Request-Id, idempotency key;
#   buffered 64 KiB, like a production nginx's, in the run's scratch directory)
#
# TRACE=1 also records the kernel's scheduling events with perf (apt-get install -y
# linux-perf) for 2 s in the middle of each run, and prints under the run's line:
#
#   wake-ups  how often the worker woke another task (wrk, the stand-in), a request, and
#             where the kernel put the woken task: on the worker's own CPU, and how often
#             that was while another CPU sat idle
#   preempted what took the worker's CPU while it could still run, a request, by name
#   stalls    the preemptions that kept the worker off a CPU for 0.3 ms or more (at 32
#             connections each delays every request in flight, so they make the p99): how
#             many a second, their time in all, and which tasks ran on the CPUs meanwhile,
#             by name and milliseconds (idle time left out)
#   woken waits how often wrk or the stand-in, once woken, waited 0.2 ms or more for a CPU
#             (at one connection each such wait delays the one request in flight, so they
#             make the p99), their share of requests, their time in all, how often another
#             CPU sat idle at the wake-up, and what ran on their CPU meanwhile, by name and
#             milliseconds
#
# perf's own work runs during those 2 s, so compare traced runs only with traced runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
CONNS="${CONNS:-32}"
REPS="${REPS:-3}"
PORT="${SCHED_PORT:-18096}"
PEER_PORT=$((PORT + 1))
BASELINE_PORT=$((PORT + 2))
BASELINE_BIN="${BASELINE_BIN:-}"
UPSTREAM_PORT="${SCHED_UPSTREAM_PORT:-18095}"
TRACE="${TRACE:-0}"
# How long TRACE=1 records, centred in each run.
TRACE_SECONDS=2
peer_confs "$ROOT"
METHOD=GET
WRK_SCRIPT=()
if [[ "${POST:-0}" == 1 ]]; then
  METHOD=POST
  WRK_SCRIPT=(-s "$POST_LUA")
fi

for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y nginx wrk curl" >&2; exit 2; }
done
if [[ "$TRACE" == 1 ]]; then
  command -v perf >/dev/null || { echo "TRACE=1 needs perf: apt-get install -y linux-perf" >&2; exit 2; }
  ((SECONDS_PER_RUN >= 2 * TRACE_SECONDS)) ||
    { echo "TRACE=1 needs SECONDS_PER_RUN of at least $((2 * TRACE_SECONDS))" >&2; exit 2; }
fi
[[ -r /proc/self/schedstat ]] || { echo "this kernel has no /proc/PID/schedstat" >&2; exit 2; }
require_free_ports "SCHED_PORT= / SCHED_UPSTREAM_PORT=" "$PORT" "$PEER_PORT" "$UPSTREAM_PORT"
if [[ -n "$BASELINE_BIN" ]]; then
  [[ -x "$BASELINE_BIN" ]] || { echo "BASELINE_BIN is not an executable: $BASELINE_BIN" >&2; exit 2; }
  require_free_ports "SCHED_PORT=" "$BASELINE_PORT"
fi

BIN="$(release_binary "$ROOT")"
begin_run

write_moved_confs "$RUN" "$UPSTREAM_PORT" "$PEER_PORT" "$CONF" "$PEER"
if [[ "${PEER_ACCESS_LOG:-0}" == 1 ]]; then
  # Relative to the peer's prefix, so the log lands in the scratch directory.
  sed -i "s|^\( *\)access_log off;|\1log_format audit '\$msec \$request_id \$request_method \$uri \$status \$request_time \$upstream_http_request_id \$http_idempotency_key';\n\1access_log access.log audit buffer=64k flush=1s;|" \
    "$RUN/peer/nginx.conf"
  grep -q "access_log access.log audit" "$RUN/peer/nginx.conf" ||
    { echo "PEER_ACCESS_LOG=1: no 'access_log off;' line to replace in $PEER" >&2; exit 2; }
fi
start_nginx "$RUN/up"
UPSTREAM=$STARTED
start_nginx "$RUN/peer"
NGINX=$STARTED

# start_agentgate BIN NAME PORT: runs BIN with one worker on PORT and a database of its own
# named after NAME, waits until it answers, and sets STARTED to its PID and TOKEN to its
# agent key.
start_agentgate() {
  local bin=$1 name=$2 port=$3
  export AGENTGATE_DATABASE="sqlite://$RUN/$name.db"
  prepare_agentgate "$bin" "sched-$name"
  "$bin" serve --workers 1 --listen "127.0.0.1:$port" \
    --stripe-api-base "http://127.0.0.1:$UPSTREAM_PORT" >"$RUN/$name.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
  wait_for "http://127.0.0.1:$port/healthz" "$name"
}

start_agentgate "$BIN" agentgate "$PORT"
AGENTGATE=$STARTED
AGENTGATE_TOKEN=$TOKEN
if [[ -n "$BASELINE_BIN" ]]; then
  start_agentgate "$BASELINE_BIN" baseline "$BASELINE_PORT"
  BASELINE=$STARTED
  BASELINE_TOKEN=$TOKEN
fi

wait_for "http://127.0.0.1:$UPSTREAM_PORT/" stand-in
wait_for "http://127.0.0.1:$PEER_PORT/" nginx

# The one worker process nginx's master started.
worker_of() {
  local pid
  pid="$(pgrep -P "$1" | head -1)"
  [[ -n "$pid" ]] || { echo "no worker process under $1" >&2; exit 1; }
  echo "$pid"
}
# The request-serving thread of the agentgate process $1 (the kernel shortens thread names
# to 15 bytes).
agentgate_worker() {
  local task
  for task in /proc/"$1"/task/*; do
    if [[ "$(cat "$task/comm")" == agentgate-worke* ]]; then
      basename "$task"
      return
    fi
  done
  echo "no agentgate worker thread" >&2
  exit 1
}
UPSTREAM_WORKER="$(worker_of "$UPSTREAM")"
NGINX_WORKER="$(worker_of "$NGINX")"
AGENTGATE_WORKER="$(agentgate_worker "$AGENTGATE")"
[[ -z "$BASELINE_BIN" ]] || BASELINE_WORKER="$(agentgate_worker "$BASELINE")"
TICKS="$(getconf CLK_TCK)"

# snapshot PROCESS THREAD: "process-ticks run-ns wait-ns preempts up-sleeps idle total
# thread-user-ticks thread-system-ticks", the counters the report takes differences of.
snapshot() {
  local process=$1 thread=$2
  local cpu run wait preempt sleeps split
  cpu="$(process_ticks "$process")"
  read -r run wait _ <"/proc/$process/task/$thread/schedstat"
  preempt="$(awk '/^nonvoluntary_ctxt_switches/{print $2}' "/proc/$process/task/$thread/status")"
  sleeps="$(awk '/^voluntary_ctxt_switches/{print $2}' "/proc/$UPSTREAM_WORKER/status")"
  # utime and stime, the 14th and 15th fields, counted after the parenthesised name.
  split="$(sed 's/.*) //' "/proc/$process/task/$thread/stat" | awk '{print $12, $13}')"
  awk -v p="$cpu $run $wait $preempt $sleeps" -v s="$split" \
    '/^cpu /{idle = $5 + $6; total = 0; for (i = 2; i <= NF; i++) total += $i; print p, idle, total, s}' /proc/stat
}

# What both readings of a trace share, wrapped around each: the events' fields, the
# largest entries of a table, and where each CPU's current run began and with which task.
# Every line is one event of perf script's "-F tid,cpu,time,event,trace" (see trace_events).
TRACE_AWK_BEFORE='
  function field(text, key) {
    if (!match(text, " " key "=[^ ]+")) return ""
    return substr(text, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
  }
  # largest VALUES SCALE FLOOR FORMAT: prints the entries of VALUES, largest first, each
  # times SCALE with FORMAT, while that is at least FLOOR; then ends the line.
  function largest(values, scale, floor, format,   top, name) {
    while (length(values) > 0) {
      top = ""
      for (name in values) if (top == "" || values[name] > values[top]) top = name
      if (values[top] * scale < floor) break
      printf format, top, values[top] * scale
      delete values[top]
    }
    printf "\n"
  }
  {
    cpu = $2
    gsub(/[][]/, "", cpu)
    cpu += 0
    now = $3 + 0
  }
  /sched:sched_switch:/ {
    split($0, halves, " ==> ")
    into = halves[2]
    sub(/^next_comm=/, "", into)
    sub(/ next_pid=.*/, "", into)
    next_pid = field(" " halves[2], "next_pid")
  }'
TRACE_AWK_AFTER='
  /sched:sched_switch:/ {
    running[cpu] = next_pid
    task_of[cpu] = into
    since[cpu] = now
  }'

# trace_events DATA: the scheduling events perf recorded in DATA as text, in DATA.txt,
# read once for both reports; or a line saying perf recorded nothing.
trace_events() {
  local data=$1
  if [[ ! -s "$data" ]]; then
    echo "  (perf recorded nothing: $(head -1 "$data.log" 2>/dev/null))"
    return 1
  fi
  perf script -i "$data" -F tid,cpu,time,event,trace >"$data.txt" 2>/dev/null
}

# placement THREAD EVENTS REQUESTS: from the scheduling events in EVENTS (trace_events),
# recorded over TRACE_SECONDS in which REQUESTS requests a second were served, where the
# wake-ups made by the thread THREAD landed, what preempted it and what ran while it
# waited long (see TRACE=1 above). A switch away from the thread while it was still
# runnable (state R) is a preemption; a CPU running task 0 is idle.
placement() {
  local thread=$1 events=$2 rate=$3
  awk -v w="$thread" -v per="$((rate * TRACE_SECONDS))" -v seconds="$TRACE_SECONDS" "$TRACE_AWK_BEFORE"'
    # ran CPU UNTIL: while the worker is stalled, counts the part of the run on CPU that
    # lies within the stall, up to UNTIL, for the task running there.
    function ran(c, until,   from) {
      if (!stalled || !(c in since) || running[c] == "0") return
      from = since[c] > stall_from ? since[c] : stall_from
      if (until > from) meanwhile[task_of[c]] += until - from
    }
    /sched:sched_switch:/ {
      ran(cpu, now)
      if (field(halves[1], "prev_pid") == w && field(halves[1], "prev_state") ~ /^R/) {
        preempts++
        by[into]++
        stalled = 1
        stall_from = now
        delete meanwhile
      }
      if (next_pid == w && stalled) {
        for (c in since) if (c + 0 != cpu) ran(c, now)
        if (now - stall_from >= 0.0003) {
          stalls++
          stall_time += now - stall_from
          for (task in meanwhile) blame[task] += meanwhile[task]
        }
        stalled = 0
      }
    }
    /sched:sched_wakeup:/ && $1 == w {
      wakeups++
      if (field($0, "target_cpu") + 0 == cpu) {
        own++
        for (other in running) {
          if (other + 0 != cpu && running[other] == "0") {
            own_idle++
            break
          }
        }
      }
    }'"$TRACE_AWK_AFTER"'
    END {
      if (per == 0 || wakeups == 0) { print "  (no scheduling events recorded for the worker)"; exit }
      printf "  wake-ups %.3f a request: %.0f%% onto its own CPU, %.0f%% while another CPU was idle\n",
        wakeups / per, 100 * own / wakeups, 100 * own_idle / wakeups
      printf "  preempted %.3f a request, by:", preempts / per
      largest(by, 1 / per, 0.001, " %s %.3f")
      printf "  stalls %.1f a second, %.1f ms in all; running meanwhile (ms):", stalls / seconds, stall_time * 1e3
      largest(blame, 1e3, 0.1, " %s %.1f")
    }' "$events"
}

# woken_waits EVENTS REQUESTS: from the same events, how long wrk and the stand-in, once
# woken, waited for a CPU (see TRACE=1 above). A wait ends when the woken task is switched
# in; the tasks that ran meanwhile on the CPU it was woken onto are what it waited behind.
woken_waits() {
  local events=$1 rate=$2
  awk -v up="$UPSTREAM_WORKER" -v per="$((rate * TRACE_SECONDS))" -v seconds="$TRACE_SECONDS" "$TRACE_AWK_BEFORE"'
    /sched:sched_wakeup:/ {
      pid = field($0, "pid")
      if ((pid != up && field($0, "comm") != "wrk") || pid in woken) next
      woken[pid] = now
      onto[pid] = field($0, "target_cpu") + 0
      idle_elsewhere[pid] = 0
      for (other in running)
        if (other + 0 != onto[pid] && running[other] == "0") idle_elsewhere[pid] = 1
    }
    /sched:sched_switch:/ {
      for (pid in woken) {
        if (onto[pid] != cpu || !(cpu in since) || running[cpu] == "0") continue
        from = since[cpu] > woken[pid] ? since[cpu] : woken[pid]
        if (now > from) behind[pid SUBSEP task_of[cpu]] += now - from
      }
      if (next_pid in woken) {
        wait = now - woken[next_pid]
        if (wait >= 0.0002) {
          waits++
          wait_time += wait
          idle_waits += idle_elsewhere[next_pid]
        }
        for (key in behind) {
          split(key, parts, SUBSEP)
          if (parts[1] != next_pid) continue
          if (wait >= 0.0002) blame[parts[2]] += behind[key]
          delete behind[key]
        }
        delete woken[next_pid]
      }
    }'"$TRACE_AWK_AFTER"'
    END {
      if (per == 0) exit
      printf "  woken waits of 0.2 ms or more (wrk, stand-in): %.1f a second, %.2f%% of requests, %.1f ms in all, %.0f%% with another CPU idle; behind (ms):",
        waits / seconds, 100 * waits / per, wait_time * 1e3, waits ? 100 * idle_waits / waits : 0
      largest(blame, 1e3, 0.1, " %s %.1f")
    }' "$events"
}

# measure NAME PROCESS THREAD URL TOKEN [LOG_PORT]: one wrk run, one line of the report;
# with LOG_PORT (an agentgate's), a line on its request log's queue at the run's end, and a
# wait until that queue is written.
measure() {
  local name=$1 process=$2 thread=$3 url=$4 token=$5 log_port=${6:-}
  local before after out requests tracer="" backlog
  before="$(snapshot "$process" "$thread")"
  if [[ "$TRACE" == 1 ]]; then
    (
      sleep $(((SECONDS_PER_RUN - TRACE_SECONDS) / 2))
      perf record -q -a -e sched:sched_switch,sched:sched_wakeup -o "$RUN/$name.perf" -- sleep "$TRACE_SECONDS" \
        >/dev/null 2>"$RUN/$name.perf.log" || true
    ) &
    tracer=$!
  fi
  out="$(wrk -t1 "-c$CONNS" "-d${SECONDS_PER_RUN}s" --latency "${WRK_SCRIPT[@]}" -H "Authorization: Bearer $token" "$url")"
  after="$(snapshot "$process" "$thread")"
  [[ -z "$tracer" ]] || wait "$tracer"
  requests="$(awk '/requests in/{print $1}' <<<"$out")"
  awk -v name="$name" -v n="$requests" -v s="$SECONDS_PER_RUN" -v hz="$TICKS" \
    -v p99="$(awk '$1 == "99%" {print $2}' <<<"$out")" \
    -v b="$before" -v a="$after" 'BEGIN {
      split(b, x); split(a, y)
      printf "%-10s %8.0f req/s  p99 %-8s cpu %5.2f us  run %5.2f us (usr %5.2f sys %5.2f)  wait %5.2f us  preempt %.3f  up-sleep %.3f  idle %4.1f%%  busy %5.2f us\n",
        name, n / s, p99, (y[1] - x[1]) * 1e6 / hz / n, (y[2] - x[2]) / 1e3 / n,
        (y[8] - x[8]) * 1e6 / hz / n, (y[9] - x[9]) * 1e6 / hz / n,
        (y[3] - x[3]) / 1e3 / n, (y[4] - x[4]) / n, (y[5] - x[5]) / n,
        100 * (y[6] - x[6]) / (y[7] - x[7]),
        ((y[7] - x[7]) - (y[6] - x[6])) * 1e6 / hz / n
    }'
  if [[ -n "$log_port" ]]; then
    # Entries still queued when wrk stopped: log work this run's cpu does not include. The
    # next run starts once they are written, so they do not land on the next target.
    backlog="$(log_backlog "$log_port")"
    awk -v b="$backlog" -v n="$requests" \
      'BEGIN { printf "  request log: %d entries still queued at the run'"'"'s end, %.1f%% of its requests\n", b, 100 * b / n }'
    wait_for_log "$log_port"
  fi
  if [[ -n "$tracer" ]]; then
    if trace_events "$RUN/$name.perf"; then
      placement "$thread" "$RUN/$name.perf.txt" "$((requests / SECONDS_PER_RUN))"
      woken_waits "$RUN/$name.perf.txt" "$((requests / SECONDS_PER_RUN))"
    fi
  fi
}

REQUEST_PATH=/v1/connections/stripe/customers
# What each round measures, in order: "name process thread port token log", where log is
# yes for an agentgate (whose request log the runs wait for) and no for the nginx peer.
PEER_NAME=nginx
[[ "${PEER_ACCESS_LOG:-0}" != 1 ]] || PEER_NAME=nginx-log
TARGETS=("$PEER_NAME $NGINX_WORKER $NGINX_WORKER $PEER_PORT gw_test_123 no"
  "agentgate $AGENTGATE $AGENTGATE_WORKER $PORT $AGENTGATE_TOKEN yes")
[[ -z "$BASELINE_BIN" ]] ||
  TARGETS+=("baseline $BASELINE $BASELINE_WORKER $BASELINE_PORT $BASELINE_TOKEN yes")

echo "# $METHOD, $CONNS connections, ${SECONDS_PER_RUN}s per run, per request unless a share"
for target in "${TARGETS[@]}"; do
  read -r _ _ _ port token log <<<"$target"
  wrk -t1 "-c$CONNS" -d2s "${WRK_SCRIPT[@]}" -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port$REQUEST_PATH" >/dev/null
  [[ "$log" != yes ]] || wait_for_log "$port"
done
for _ in $(seq "$REPS"); do
  for target in "${TARGETS[@]}"; do
    read -r name process thread port token log <<<"$target"
    log_port=""
    [[ "$log" != yes ]] || log_port=$port
    measure "$name" "$process" "$thread" "http://127.0.0.1:$port$REQUEST_PATH" "$token" "$log_port"
  done
done
echo "# agentgate's $(log_counters "$PORT")"
if [[ "${PEER_ACCESS_LOG:-0}" == 1 ]]; then
  # What nginx has written so far; its buffer holds at most the last second's lines.
  echo "# nginx's access log: $(wc -l <"$RUN/peer/access.log") lines written"
fi
[[ -z "$BASELINE_BIN" ]] || echo "# baseline's $(log_counters "$BASELINE_PORT")"
