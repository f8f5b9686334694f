#!/usr/bin/env bash
# scripts/build-pgo.sh - agentgate's release binary, built with profile-guided optimization.
#
#   scripts/build-pgo.sh          # prints the binary's path, target/pgo/release/agentgate
#
# rustc compiles the same code faster when it knows which paths run hot: which functions to
# inline, which branches to lay out straight. This script gives it that knowledge:
#
#   1. an instrumented release build (in target/pgo/instrumented), which counts what runs;
#   2. that build serves a mix of data-plane requests (a list, a listed create with a form
#      body, a list with a query, a delete) from wrk, at 32 connections and at one, against
#      a fixed-answer Stripe stand-in (nginx) on loopback, with the SQLite store and the
#      request log on, and writes its counts when it stops;
#   3. llvm-profdata merges the counts into one profile;
#   4. the release build again, every dependency included, guided by that profile (in
#      target/pgo/release; the profile is kept beside it).
#
# The C code of the build (whatever the `cc` crate compiles: chiefly SQLite, which
# libsqlite3-sys bundles and which writes the request log, and also mimalloc and ring's C
# parts) is guided by the same profile when clang of rustc's LLVM release is at hand: both
# compilers then count into, and read, one profile. Without such a clang, the C code is
# built as in any release build and the script says so.
#
# The profile only steers the compiler's inlining and code layout: the binary behaves
# exactly like `cargo build --release`'s, only faster (docs/performance.md has the numbers).
# Nothing leaves loopback; the training's database and the stand-in's files are removed
# afterwards. Requests with a wrong key are not part of the training: agentgate's throttle
# of failed authentications would refuse the rest of it, and refusals are not the hot path.
#
# Needs: nginx, wrk and curl (apt-get install -y nginx wrk curl), and llvm-profdata from the
# LLVM release rustc is built on (`rustc -vV` names it): rustup's `llvm-tools` component, or
# Debian's llvm-N package (apt-get install -y llvm-22 for LLVM 22); for SQLite's share,
# clang of that release (apt-get install -y clang-22).
#
# Knobs: LLVM_PROFDATA=path (another llvm-profdata of the same LLVM release),
#   PGO_CLANG=path (another clang of that release; PGO_CLANG=none builds the C code
#   unguided),
#   TRAIN_SECONDS=4 (per request kind and connection count), PGO_PORT=18196 (agentgate;
#   the stand-in listens on the port before it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/pgo"
PORT="${PGO_PORT:-18196}"
UPSTREAM_PORT=$((PORT - 1))
TRAIN_SECONDS="${TRAIN_SECONDS:-4}"

for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y nginx wrk curl" >&2; exit 2; }
done

# The LLVM release rustc uses; a profile is read only by the same release's tools.
LLVM_MAJOR="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
[[ -n "$LLVM_MAJOR" ]] || { echo "rustc -vV names no LLVM version" >&2; exit 2; }
# is_of_release TOOL NAME: whether TOOL runs and its --version reads "NAME N." for rustc's
# LLVM major version N ("LLVM version 22.", "clang version 22.").
is_of_release() {
  command -v "$1" >/dev/null && "$1" --version 2>/dev/null | grep -q "$2 $LLVM_MAJOR\."
}
# first_of_release NAME CANDIDATE...: prints the first candidate that is of the release.
first_of_release() {
  local name="$1" candidate
  shift
  for candidate in "$@"; do
    if [[ -n "$candidate" ]] && is_of_release "$candidate" "$name"; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}
PROFDATA="$(first_of_release "LLVM version" "${LLVM_PROFDATA:-}" \
  "$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata" \
  "llvm-profdata-$LLVM_MAJOR" "/usr/lib/llvm-$LLVM_MAJOR/bin/llvm-profdata" llvm-profdata)" || {
  echo "no llvm-profdata of LLVM $LLVM_MAJOR (rustc's): rustup component add llvm-tools," \
    "or apt-get install -y llvm-$LLVM_MAJOR, or set LLVM_PROFDATA" >&2
  exit 2
}
# The clang of rustc's LLVM release, or nothing: a profile is read only by that release.
CLANG=""
if [[ "${PGO_CLANG:-}" == none ]]; then
  :
elif [[ -n "${PGO_CLANG:-}" ]]; then
  is_of_release "$PGO_CLANG" "clang version" || {
    echo "PGO_CLANG=$PGO_CLANG is not a clang of LLVM $LLVM_MAJOR (rustc's)" >&2
    exit 2
  }
  CLANG="$PGO_CLANG"
else
  CLANG="$(first_of_release "clang version" "clang-$LLVM_MAJOR" \
    "/usr/lib/llvm-$LLVM_MAJOR/bin/clang")" ||
    echo "no clang of LLVM $LLVM_MAJOR (apt-get install -y clang-$LLVM_MAJOR): the C code" \
      "(SQLite) is built without the profile" >&2
fi
# with_c_flags FLAGS COMMAND...: runs COMMAND with the C code compiled by that clang with
# FLAGS, or as usual when there is none.
with_c_flags() {
  local flags="$1"
  shift
  if [[ -n "$CLANG" ]]; then
    CC="$CLANG" CFLAGS="${CFLAGS:-} $flags" "$@"
  else
    "$@"
  fi
}

require_free_ports "PGO_PORT" "$PORT" "$UPSTREAM_PORT"
begin_run
# A fixed place, so that RUSTFLAGS, and with them the instrumented build, stay the same
# from one run to the next.
PROFILES="$TARGET/profiles"
rm -rf "$PROFILES"

echo "# 1/4 instrumented build" >&2
CARGO_TARGET_DIR="$TARGET/instrumented" RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$PROFILES" \
  with_c_flags "-fprofile-generate=$PROFILES" \
  cargo build --release --locked --manifest-path "$ROOT/Cargo.toml" --quiet --bin agentgate
INSTRUMENTED="$TARGET/instrumented/release/agentgate"

echo "# 2/4 training run" >&2
# A fixed-answer Stripe: Stripe's headers and a JSON body of the right kind for each path.
mkdir -p "$RUN/up/tmp"
cat >"$RUN/up/nginx.conf" <<CONF
pid nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        default_type application/json;
        add_header Request-Id req_pgoTraining always;
        add_header Stripe-Version 2024-06-20 always;
        location = /v1/customers {
            if (\$request_method = POST) {
                return 200 '{"id":"cus_PgoTraining","object":"customer","email":"jenny@example.com","metadata":{"order_id":"6735"}}';
            }
            return 200 '{"object":"list","url":"/v1/customers","has_more":false,"data":[{"id":"cus_PgoTraining","object":"customer"}]}';
        }
        location /v1/customers/ {
            if (\$request_method = DELETE) {
                return 200 '{"id":"cus_PgoTraining","object":"customer","deleted":true}';
            }
            return 200 '{"id":"cus_PgoTraining","object":"customer"}';
        }
        location = /v1/payment_intents {
            return 200 '{"object":"list","url":"/v1/payment_intents","has_more":false,"data":[]}';
        }
        location / {
            return 404 '{"error":{"message":"Unrecognized request URL","type":"invalid_request_error"}}';
        }
    }
}
CONF
start_nginx "$RUN/up"
wait_for "http://127.0.0.1:$UPSTREAM_PORT/v1/customers" stand-in

export AGENTGATE_DATABASE="sqlite://$RUN/agentgate.db"
export LLVM_PROFILE_FILE="$PROFILES/agentgate-%p-%m.profraw"
prepare_agentgate "$INSTRUMENTED" pgo-training
"$INSTRUMENTED" serve --listen "127.0.0.1:$PORT" \
  --stripe-api-base "http://127.0.0.1:$UPSTREAM_PORT" >"$RUN/agentgate.log" 2>&1 &
AGENTGATE=$!
PIDS+=("$AGENTGATE")
wait_for "http://127.0.0.1:$PORT/healthz" agentgate

cat >"$RUN/create.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "email=jenny%40example.com&name=Jenny+Rosen&metadata[order_id]=6735&expand[]=default_source"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Idempotency-Key"] = "pgo-training"
LUA
cat >"$RUN/delete.lua" <<'LUA'
wrk.method = "DELETE"
LUA
BASE="http://127.0.0.1:$PORT/v1/connections/stripe"
# train CONNECTIONS TOKEN URL [SCRIPT]: one wrk run of TRAIN_SECONDS; says what it sent.
train() {
  local script=() requests
  [[ -z "${4:-}" ]] || script=(-s "$4")
  requests="$(wrk -t1 -c"$1" -d"${TRAIN_SECONDS}s" "${script[@]}" \
    -H "Authorization: Bearer $2" "$3" | awk '/requests in/ {print $1}')"
  echo "  ${requests:-no} requests at $1 connection(s): ${4:+$(basename "$4" .lua) }$3" >&2
}
for connections in 32 1; do
  train "$connections" "$TOKEN" "$BASE/customers"
  train "$connections" "$TOKEN" "$BASE/v1/customers" "$RUN/create.lua"
  train "$connections" "$TOKEN" "$BASE/v1/payment_intents?limit=3&customer=cus_PgoTraining"
  train "$connections" "$TOKEN" "$BASE/customers/cus_PgoTraining" "$RUN/delete.lua"
done
# A profile of refusals would steer the compiler wrong: nearly every request must have
# been proxied and answered 200 (agentgate's own counters say).
METRICS="$(curl -s "http://127.0.0.1:$PORT/metrics")"
read -r ANSWERED TOTAL < <(awk '/^agentgate_requests_total\{/ {
  total += $NF; if ($0 ~ /connection="stripe",status="200"/) answered += $NF
} END { print answered + 0, total + 0 }' <<<"$METRICS")
if ((TOTAL == 0 || ANSWERED * 100 < TOTAL * 99)); then
  echo "only $ANSWERED of $TOTAL training requests were answered 200; agentgate's log:" >&2
  cat "$RUN/agentgate.log" >&2
  exit 1
fi
echo "  $ANSWERED of $TOTAL requests answered 200" >&2
# The profile is written when the server exits, after it has drained.
kill -TERM "$AGENTGATE"
if ! wait "$AGENTGATE"; then
  echo "the instrumented server did not stop cleanly; its log:" >&2
  cat "$RUN/agentgate.log" >&2
  exit 1
fi

echo "# 3/4 merging the profile" >&2
"$PROFDATA" merge -o "$RUN/agentgate.profdata" "$PROFILES"/*.profraw
# Named after its content: cargo rebuilds a crate when its flags change, not when a file
# they name does, and every crate, the dependencies included, should use the new profile.
PROFILE="$TARGET/agentgate-$(sha256sum "$RUN/agentgate.profdata" | cut -c1-16).profdata"
find "$TARGET" -maxdepth 1 -name 'agentgate-*.profdata' ! -path "$PROFILE" -delete
mv "$RUN/agentgate.profdata" "$PROFILE"

echo "# 4/4 release build with the profile" >&2
CARGO_TARGET_DIR="$TARGET" RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$PROFILE" \
  with_c_flags "-fprofile-use=$PROFILE -Wno-profile-instr-unprofiled" \
  cargo build --release --locked --manifest-path "$ROOT/Cargo.toml" --quiet --bin agentgate
echo "$TARGET/release/agentgate"
