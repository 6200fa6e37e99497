#!/usr/bin/env bash
# e2e.preload_nonblocking: the non-blocking connect() of event loops, through the preload hook
# and through libdpm, against the kernel's own behaviour.
#
# e2e_nonblocking_connect (tests/e2e/nonblocking_connect.c, plain libc) is run for each of
# poll, select, epoll level- and edge-triggered (registered before connect(), as nginx does),
# towards a TCP echo server in "wan" (success) and a closed port there (refused):
#  - first directly in "host" — the kernel: the control that shows the expectations are the
#    kernel's;
#  - then under dpm-run on a dpmd in "host" (the same binary, unmodified);
#  - then as e2e_nonblocking_connect_libdpm --libdpm: dpm_socket()/dpm_connect() on an
#    O_NONBLOCK descriptor.
# Each run checks: EINPROGRESS; not writable, no event, getpeername ENOTCONN, a second connect
# EALREADY, read and send EAGAIN while the handshake is held; writable once it completes;
# SO_ERROR 0 (then connect() gives 0 or EISCONN, and EISCONN after that, as the kernel does;
# the peer's name; an echo) or ECONNREFUSED (then cleared). The handshake is held
# deterministically: nftables in "wan" drops the server's answers (SYN-ACK, RST) while
# the program checks the in-progress state, and lets them through when it asks; the
# retransmitted SYN or SYN-ACK then completes it.
# The echo server's log shows which stack each connection came from (198.51.100.1: the kernel
# in "host"; 10.77.1.2: the dpm instance), so a hook that left the program on the kernel fails.
# Timeout: SYNs to one port of "wan" are always dropped; poll and epoll-et then see the
# connect fail writable with SO_ERROR ETIMEDOUT (the kernel in "host" with tcp_syn_retries 2,
# about 7 s; lwIP retransmits its SYN every 3 s, 6 times, about 18 s). These run in parallel.
# No route: the kernel in "wan" (no default route) fails connect() with ENETUNREACH; so must a
# dpm instance without a gateway (at once, or through SO_ERROR after EINPROGRESS).
# Not covered: EHOSTUNREACH (an ICMP error from a router; lwIP does not pass ICMP errors to
# TCP, so no dpm result could be compared).
source "$(dirname "$0")/lib.sh"
e2e_require_root preload_nonblocking
e2e_require_cmd nft
e2e_init preload_nonblocking
e2e_require_test_program e2e_nonblocking_connect_libdpm
NBC_LIBDPM=$TEST_PROGRAM
e2e_require_test_program e2e_nonblocking_connect
NBC=$TEST_PROGRAM
e2e_topology

SERVER=198.51.100.10
ECHO_PORT=7000
CLOSED_PORT=7009
BLACKHOLE_PORT=7008
MECHANISMS=(poll select epoll-lt epoll-et)
e2e_tcp_echo "$WAN" "$SERVER" $ECHO_PORT "$TMP/echo.log"

# The gate: while closed, "wan" sends nothing from the two ports (no SYN-ACK, no RST).
ip netns exec "$WAN" nft add table inet gate
ip netns exec "$WAN" nft add chain inet gate out '{ type filter hook output priority 0; }'
gate_close() { ip netns exec "$WAN" nft add rule inet gate out tcp sport "{ $ECHO_PORT, $CLOSED_PORT }" drop; }
gate_open() { ip netns exec "$WAN" nft flush chain inet gate out; }
ip netns exec "$WAN" nft add chain inet gate in '{ type filter hook input priority 0; }'
ip netns exec "$WAN" nft add rule inet gate in tcp dport $BLACKHOLE_PORT drop

# gated_run NS CMD... : runs CMD (which speaks --gate: "gate close"/"gate open" lines, answered
# "ok") in namespace NS, working the gate when asked; its other output is shown indented.
gated_run() {
  local ns=$1 line rc=0 pid to from
  shift
  rm -f "$TMP/to" "$TMP/from"
  mkfifo "$TMP/to" "$TMP/from"
  timeout 90 ip netns exec "$ns" "$@" <"$TMP/to" >"$TMP/from" 2>&1 &
  pid=$!
  exec {to}>"$TMP/to" {from}<"$TMP/from"
  while IFS= read -r line <&$from; do
    case $line in
      "gate close") gate_close; echo ok >&$to ;;
      "gate open") gate_open; echo ok >&$to ;;
      *) echo "    $line" ;;
    esac
  done
  exec {to}>&- {from}<&-
  wait "$pid" || rc=$?
  gate_open
  [ "$rc" = 0 ] || echo "    (exit status $rc)"
  return "$rc"
}

# all_cases LABEL NS CMD... : every mechanism, success and refusal.
all_cases() {
  local label=$1 ns=$2 m
  shift 2
  for m in "${MECHANISMS[@]}"; do
    e2e_check "$label: $m, listening server" gated_run "$ns" "$@" --gate "$m" ok "$SERVER" $ECHO_PORT
    e2e_check "$label: $m, closed port" gated_run "$ns" "$@" --gate "$m" refused "$SERVER" $CLOSED_PORT
  done
}
connections_from() { grep -c "^$1:" "$TMP/echo.log" || true; }

# parallel_cases LABEL NS OUTCOME ADDRESS PORT CMD... : poll and epoll-et at once in NS (the
# slow outcomes: the stack has to give up first).
parallel_cases() {
  local label=$1 ns=$2 outcome=$3 addr=$4 port=$5 m pids=() rc
  shift 5
  for m in poll epoll-et; do
    timeout 150 ip netns exec "$ns" "$@" "$m" "$outcome" "$addr" "$port" >"$TMP/$outcome-$m.out" 2>&1 &
    pids+=($!)
  done
  for m in poll epoll-et; do
    rc=0
    wait "${pids[0]}" || rc=$?
    pids=("${pids[@]:1}")
    sed 's/^/    /' "$TMP/$outcome-$m.out"
    e2e_expect_eq "$label: $m, $outcome: every check passed (exit status)" 0 "$rc"
  done
}

echo "--- control: the kernel in \"host\" ---"
all_cases kernel "$HOST" "$NBC"
e2e_expect_eq "the kernel's connections reached the server from 198.51.100.1" 4 "$(connections_from 198.51.100.1)"
ip netns exec "$HOST" sysctl -qw net.ipv4.tcp_syn_retries=2  # this namespace's kernel TCP only
parallel_cases kernel "$HOST" timeout "$SERVER" $BLACKHOLE_PORT "$NBC"
echo "--- control: the kernel in \"wan\", which has no default route ---"
parallel_cases kernel "$WAN" unreachable 203.0.113.1 80 "$NBC"

e2e_require_preload
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24

echo "--- the same program under dpm-run ---"
all_cases dpm-run "$HOST" "$DPMRUN" --api-socket "$API" -- "$NBC"
e2e_expect_eq "the hooked program's connections reached the server from the stack (10.77.1.2)" 4 \
  "$(connections_from 10.77.1.2)"
e2e_check "the daemon holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API"

echo "--- libdpm: dpm_connect() on an O_NONBLOCK descriptor ---"
all_cases libdpm "$HOST" env DPM_SOCKET="$API" "$NBC_LIBDPM" --libdpm
e2e_expect_eq "libdpm's connections reached the server from the stack (10.77.1.2)" 8 \
  "$(connections_from 10.77.1.2)"
e2e_check "the daemon holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API"

echo "--- unanswered SYNs: dpm-run and libdpm ---"
parallel_cases dpm-run "$HOST" timeout "$SERVER" $BLACKHOLE_PORT "$DPMRUN" --api-socket "$API" -- "$NBC"
parallel_cases libdpm "$HOST" timeout "$SERVER" $BLACKHOLE_PORT env DPM_SOCKET="$API" "$NBC_LIBDPM" --libdpm
e2e_check "the daemon holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API"

echo "--- no route: a dpm instance without a gateway (virtual link, nobody on it) ---"
API_NOGW=$TMP/nogw.sock
e2e_dpmd - "$API_NOGW" --virtual "$TMP/nogw.link,$TMP/nobody.link" --address 10.77.9.1/24 --gateway ''
parallel_cases dpm-run "$HOST" unreachable 203.0.113.1 80 "$DPMRUN" --api-socket "$API_NOGW" -- "$NBC"
parallel_cases libdpm "$HOST" unreachable 203.0.113.1 80 env DPM_SOCKET="$API_NOGW" "$NBC_LIBDPM" --libdpm
e2e_check "the gateway-less daemon holds no socket afterwards" e2e_wait_for 5 e2e_idle "$API_NOGW"
e2e_finish
