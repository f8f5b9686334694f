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
