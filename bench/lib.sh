# bench/lib.sh - what the bench scripts share; sourced, not run.

# prepare_agentgate BIN KEY_NAME: with AGENTGATE_DATABASE set, exports the settings every
# bench run of agentgate uses, stores the stand-in's Stripe key and sets TOKEN to a new
# agent key named KEY_NAME.
prepare_agentgate() {
  local bin=$1 name=$2
  AGENTGATE_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
  export AGENTGATE_MASTER_KEY
  export AGENTGATE_LOG=warn
  # The stand-in holds a test-mode key, whose connection limit (Stripe's 25/s) would cap
  # the run; a limit no run reaches keeps the limiter's cost in the measurement.
  export AGENTGATE_CONNECTION_RATE_TEST=1000000000
  # The stand-in accepts exactly this key, as peers.sh documents.
  printf 'sk_test_secret' | "$bin" connections set stripe >/dev/null
  TOKEN="$("$bin" keys create --name "$name" 2>/dev/null)"
}

# peer_confs ROOT: sets CONF and PEER, the peer benchmark's configurations of the Stripe
# stand-in and of the nginx peer (UPSTREAM_CONF= and PEER_CONF= name others), and POST_LUA,
# the form POST script for wrk beside them.
peer_confs() {
  CONF="${UPSTREAM_CONF:-$1/../shared/bench/conf/upstream.nginx.conf}"
  PEER="${PEER_CONF:-$1/../shared/bench/conf/peer-nginx.conf}"
  POST_LUA="$(dirname "$CONF")/post.lua"
}

# write_moved_confs RUN UPSTREAM_PORT PEER_PORT UPSTREAM_CONF PEER_CONF: writes the Stripe
# stand-in's configuration to RUN/up/nginx.conf and the nginx peer's to RUN/peer/nginx.conf,
# moved from the peer benchmark's ports to the given loopback ports, so a script can run
# beside (not instead of) a peer benchmark.
write_moved_confs() {
  local run=$1 upstream=$2 peer=$3 upstream_conf=$4 peer_conf=$5
  mkdir -p "$run/up/tmp" "$run/peer/tmp"
  sed "s/listen 127\.0\.0\.1:18081/listen 127.0.0.1:$upstream/" "$upstream_conf" >"$run/up/nginx.conf"
  sed -e "s/listen 127\.0\.0\.1:18082/listen 127.0.0.1:$peer/" \
    -e "s/server 127\.0\.0\.1:18081/server 127.0.0.1:$upstream/" "$peer_conf" >"$run/peer/nginx.conf"
  grep -q "listen 127.0.0.1:$upstream " "$run/up/nginx.conf" || { echo "could not move the stand-in" >&2; exit 2; }
  grep -q "server 127.0.0.1:$upstream;" "$run/peer/nginx.conf" || { echo "could not point the peer at the stand-in" >&2; exit 2; }
}

# wait_for URL NAME: waits up to a minute for URL to answer, or exits naming NAME.
wait_for() {
  for _ in $(seq 600); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "$2 did not start" >&2
  exit 1
}

# log_metrics PORT: "requests written dropped catch-up-batches" of the agentgate on PORT:
# the requests it has counted, and its request log's counters.
log_metrics() {
  curl -fsS "http://127.0.0.1:$1/metrics" | awk '
    /^agentgate_requests_total\{/ { requests += $NF }
    /^agentgate_request_log_written_total / { written = $2 }
    /^agentgate_request_log_dropped_total / { dropped = $2 }
    /^agentgate_request_log_catch_up_batches_total / { catch_up = $2 }
    END { printf "%d %d %d %d\n", requests, written, dropped, catch_up }'
}

# log_counters PORT: the request log's counters of the agentgate on PORT, as one line. A
# run in which the log dropped entries did less work than the one it is compared with.
log_counters() {
  local written dropped catch_up
  read -r _ written dropped catch_up < <(log_metrics "$1")
  echo "request log: $written entries written, $dropped dropped, $catch_up batches written straight through to catch up"
}

# log_backlog PORT: how many of the requests the agentgate on PORT has counted have a
# request log entry that is neither written nor dropped yet.
log_backlog() {
  local requests written dropped
  read -r requests written dropped _ < <(log_metrics "$1")
  echo $((requests - written - dropped))
}

# wait_for_log PORT: waits up to a minute until the request log of the agentgate on PORT
# has caught up with its requests, so that its writes do not run into the next target's run.
wait_for_log() {
  for _ in $(seq 600); do
    (($(log_backlog "$1") <= 0)) && return 0
    sleep 0.1
  done
  echo "the request log of the agentgate on port $1 did not catch up within a minute" >&2
  exit 1
}

# process_ticks PID: the CPU time (user and system, all threads) the process has used, in
# clock ticks (`getconf CLK_TCK` a second).
process_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# require_free_ports HINT PORT...: exits if something listens on any PORT already, naming
# the knobs (HINT) that move the script's ports.
require_free_ports() {
  local hint=$1 port
  shift
  for port in "$@"; do
    if ss -Htln "sport = :$port" | grep -q .; then
      echo "port $port is busy; set $hint" >&2
      exit 2
    fi
  done
}

# release_binary ROOT: builds agentgate in release mode unless BUILD=0, then prints the
# binary's path. With PGO=1 that is the profile-guided build of scripts/build-pgo.sh
# (target/pgo/release), which BUILD=0 takes as it was last built.
release_binary() {
  if [[ "${PGO:-0}" == 1 ]]; then
    if [[ "${BUILD:-1}" != 0 ]]; then
      "$1/scripts/build-pgo.sh" >/dev/null || return 1
    fi
    echo "${CARGO_TARGET_DIR:-$1/target}/pgo/release/agentgate"
    return
  fi
  if [[ "${BUILD:-1}" != 0 ]]; then
    # Within `$(...)` bash does not stop on a failed command by itself.
    cargo build --release --manifest-path "$1/Cargo.toml" --quiet --bin agentgate || return 1
  fi
  echo "${CARGO_TARGET_DIR:-$1/target}/release/agentgate"
}

# begin_run: sets RUN, a scratch directory, and PIDS, the processes the script starts;
# when the script exits, those are stopped and the directory removed.
begin_run() {
  RUN="$(mktemp -d)"
  PIDS=()
  trap end_run EXIT
  trap 'exit 130' INT TERM
}

# end_run: what begin_run arranges for the script's exit.
end_run() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$RUN"
}

# start_nginx DIR: runs nginx on DIR/nginx.conf with one worker as a background job of
# this script, adds it to PIDS and sets STARTED to its PID.
start_nginx() {
  nginx -p "$1/" -c "$1/nginx.conf" -e "$1/error.log" \
    -g "daemon off; worker_processes 1;" >"$1/out.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}
