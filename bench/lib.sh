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

# bench_outer RUN MTU DEST_PREFIX : the outside namespace S and the forwarding namespace H,
#   S (198.51.100.10/24) ══ veth ══ H (198.51.100.1/24, ip_forward=1),
# every device at MTU; S routes DEST_PREFIX via H. Sets $S and $H.
bench_outer() {
  local run=$1 mtu=$2 dest_prefix=$3
  bench_netns S "$run-s"
  bench_netns H "$run-h"
  bench_veth "$S" "b$$s$run" 198.51.100.10/24 "$H" "b$$h$run" 198.51.100.1/24 "$mtu"
  ip -n "$S" route add "$dest_prefix" via 198.51.100.1
  ip netns exec "$H" sysctl -qw net.ipv4.ip_forward=1
}

# bench_inner_kernel RUN MTU : namespace R (kernel TCP, 10.77.2.2/24) behind H over a second
# veth (H side 10.77.2.1/24), R's default route via H: the kernel path with bench_outer's shape
# (S must route 10.77.2.0/24). Sets $R.
bench_inner_kernel() {
  local run=$1 mtu=$2
  bench_netns R "$run-r"
  bench_veth "$H" "b$$i$run" 10.77.2.1/24 "$R" "b$$r$run" 10.77.2.2/24 "$mtu"
  ip -n "$R" route add default via 10.77.2.1
}

# bench_dpmd RUN MTU [ARGS...] : `dpmd client` in H on TUN dpm0 (stack 10.77.1.2/24, kernel
# side 10.77.1.1/24) at MTU, API socket $TMP/dpmd-RUN.sock (S must route 10.77.1.0/24). Sets
# $API and $DPMD_PID; returns once dpmd is ready.
bench_dpmd() {
  local run=$1 mtu=$2
  shift 2
  API=$TMP/dpmd-$run.sock
  bench_bg "$H" "$TMP/dpmd-$run.log" "$DPMD" client --tun dpm0 --mtu "$mtu" --address 10.77.1.2/24 \
    --gateway 10.77.1.1 --host-address 10.77.1.1/24 --api-socket "$API" "$@"
  DPMD_PID=$LAST_PID
  bench_wait_log 10 "$TMP/dpmd-$run.log" "dpmd: ready" "$DPMD_PID"
}

# bench_median : the median of the numbers on stdin (0 when there are none).
bench_median() {
  tr ' ' '\n' | awk 'NF' | sort -g |
    awk '{v[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

# bench_ratio A B [FORMAT] : A / B (FORMAT default %.2f), "-" when either is empty or B is 0.
bench_ratio() {
  awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (a != "" && b != "" && b > 0) printf f, a / b; else print "-" }'
}
