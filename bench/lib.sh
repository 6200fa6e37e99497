#!/usr/bin/env bash
# Helpers for the benchmark scripts (the safety rules of docs/design.md §5).
#
# Every run builds its own network namespaces with unique names (dpmb-<pid>-<rand>-*) and
# removes them, and every process it started, when the run ends and on exit — even on
# failure or Ctrl-C. Nothing is configured in the root namespace; no traffic leaves the
# namespaces. veth pairs are created directly inside their namespaces.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD=${BUILD:-$BENCH_ROOT/build}
DPMD=$BUILD/dpmd
# shellcheck disable=SC2034  # used by the scripts that source this file
BIN=$BUILD/bench
BENCH_PIDS=()
BENCH_NETNS=()

bench_require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "$1 needs root (network namespaces and TUN devices): run it with sudo" >&2
    exit 1
  fi
}

bench_require_binaries() {
  local b
  for b in "$DPMD" "$@"; do
    [ -x "$b" ] || { echo "missing $b: build first (cmake --build $BUILD), or set BUILD=" >&2; exit 1; }
  done
}

# bench_init NAME: unique prefix $P, scratch dir $TMP, cleanup on exit.
bench_init() {
  P="dpmb-$$-$RANDOM"
  TMP=$(mktemp -d "/tmp/$P-$1.XXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# bench_teardown: stops the processes and removes the namespaces made since the last call.
bench_teardown() {
  local pid ns
  for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${BENCH_PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for ns in "${BENCH_NETNS[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  BENCH_PIDS=()
  BENCH_NETNS=()
}

bench_cleanup() {
  local rc=$?
  set +e
  bench_teardown
  if [ -n "${BENCH_KEEP_TMP:-}" ]; then
    echo "logs kept in $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit $rc
}

# bench_netns VAR NAME: creates namespace $P-NAME with loopback up and stores its name in
# VAR. (Not `VAR=$(...)`: a command substitution is a subshell, and the namespace would
# never reach BENCH_NETNS, so it would never be removed.)
bench_netns() {
  local ns="$P-$2"
  ip netns add "$ns"
  BENCH_NETNS+=("$ns")
  ip -n "$ns" link set lo up
  printf -v "$1" '%s' "$ns"
}

# bench_veth NS1 IF1 ADDR1 NS2 IF2 ADDR2 MTU: a veth pair made inside the two namespaces.
bench_veth() {
  local ns1=$1 if1=$2 a1=$3 ns2=$4 if2=$5 a2=$6 mtu=$7
  ip link add "$if1" netns "$ns1" mtu "$mtu" type veth peer name "$if2" netns "$ns2" mtu "$mtu"
  ip -n "$ns1" addr add "$a1" dev "$if1"
  ip -n "$ns2" addr add "$a2" dev "$if2"
  ip -n "$ns1" link set "$if1" up
  ip -n "$ns2" link set "$if2" up
}

# bench_bg NS LOG CMD... : runs CMD in namespace NS in the background, output to LOG;
# its pid is in $LAST_PID.
bench_bg() {
  local ns=$1 log=$2; shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 &
  LAST_PID=$!
  BENCH_PIDS+=("$LAST_PID")
}

# bench_wait_log TIMEOUT_S LOG PATTERN PID: waits until LOG matches PATTERN; fails early if
# PID exits first.
bench_wait_log() {
  local deadline=$((SECONDS + $1)) log=$2 pattern=$3 pid=$4
  until grep -q "$pattern" "$log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "waiting for '$pattern' in $log failed:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.05
  done
}

# bench_wait_pid TIMEOUT_S PID: waits for PID to exit; returns its status (124 on timeout).
bench_wait_pid() {
  local deadline=$((SECONDS + $1)) pid=$2
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 124
    sleep 0.05
  done
  wait "$pid"
}

# bench_field LOG KEY: the value of KEY=... on the last line of LOG that has it.
bench_field() {
  sed -n "s/.*[ :]$2=\\([^ ]*\\).*/\\1/p" "$1" | tail -n 1
}
