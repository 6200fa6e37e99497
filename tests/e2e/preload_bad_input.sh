#!/usr/bin/env bash
# e2e.preload_bad_input: the preload hook and dpm-run when things are wrong.
#  - No daemon at the API socket (a file path, and the default abstract name in a namespace
#    without a dpmd): dpm-run prints one line naming the socket and exits 1 without running
#    the program — well within `timeout`, so not a hang.
#  - LD_PRELOAD set directly, no daemon: socket(AF_INET, SOCK_STREAM / SOCK_DGRAM) fails with
#    ENETDOWN; AF_UNIX still works (the kernel's).
#  - A hooked program's bad arguments (e2e_preload_helper badargs: short lengths, wrong
#    families, NULL addresses, unknown levels and options, calls in the wrong state, ...) get
#    what the kernel gives for the same calls, line by line against a control run on the
#    kernel in "host".
#  - The daemon killed (SIGKILL) under a hooked program blocked in read() on an open
#    connection: read() returns 0 or ECONNRESET, a write() then gets EPIPE, and a new
#    socket() ENETDOWN, all within the `timeout` that bounds the program.
source "$(dirname "$0")/lib.sh"
e2e_require_root preload_bad_input
e2e_init preload_bad_input
e2e_require_test_program e2e_preload_helper
HELPER=$TEST_PROGRAM
e2e_topology
SERVER=198.51.100.10
ECHO_PORT=7000
CLOSED_PORT=7009
e2e_tcp_echo "$WAN" $SERVER $ECHO_PORT "$TMP/echo.log"

echo "--- control: the bad calls on the kernel in \"host\" ---"
rc=0
timeout 60 ip netns exec "$HOST" "$HELPER" badargs $SERVER $ECHO_PORT $CLOSED_PORT >"$TMP/kernel.out" 2>&1 || rc=$?
e2e_expect_eq "kernel: the helper ran every call" 0 "$rc"
sed 's/^/  /' "$TMP/kernel.out"

e2e_require_preload

echo "--- no daemon ---"
# no_daemon LABEL NS ARGS... : dpm-run ARGS -- touch $TMP/ran, with no daemon to be found.
no_daemon() {
  local label=$1 ns=$2 rc=0
  shift 2
  rm -f "$TMP/ran"
  timeout 10 ip netns exec "$ns" env -u DPM_SOCKET "$DPMRUN" "$@" -- touch "$TMP/ran" >"$TMP/nd.out" 2>"$TMP/nd.err" || rc=$?
  sed 's/^/  dpm-run said: /' "$TMP/nd.err"
  e2e_expect_eq "$label: dpm-run exits 1 (not a hang: timeout gives 124)" 1 "$rc"
  e2e_expect_eq "$label: one line on stderr, nothing on stdout" "1 0" "$(wc -l <"$TMP/nd.err") $(wc -c <"$TMP/nd.out")"
  e2e_check "$label: the program was not run" test ! -e "$TMP/ran"
}
no_daemon "a socket file nobody serves" "$HOST" --api-socket "$TMP/none.sock"
e2e_check "the line names the socket it tried" grep -q "$TMP/none.sock" "$TMP/nd.err"
no_daemon "the default abstract socket of a namespace without dpmd" "$HOST"
e2e_check "the line names the socket it tried" grep -q "dpm/dpmd" "$TMP/nd.err"

rc=0
timeout 10 env LD_PRELOAD="$PRELOAD_LIB" DPM_SOCKET="$TMP/none.sock" "$HELPER" socket-errno >"$TMP/se.out" 2>&1 || rc=$?
sed 's/^/  /' "$TMP/se.out"
e2e_expect_eq "LD_PRELOAD, no daemon: the program ran to its end (no hang)" 0 "$rc"
e2e_expect_eq "LD_PRELOAD, no daemon: AF_INET sockets fail with ENETDOWN, AF_UNIX is the kernel's" \
  "socket AF_INET SOCK_STREAM: ENETDOWN|socket AF_INET SOCK_DGRAM: ENETDOWN|socket AF_UNIX SOCK_STREAM: ok" \
  "$(paste -sd'|' "$TMP/se.out")"

API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24

echo "--- the bad calls under dpm-run, against the kernel's answers ---"
rc=0
timeout 60 ip netns exec "$HOST" "$DPMRUN" --api-socket "$API" -- "$HELPER" badargs $SERVER $ECHO_PORT $CLOSED_PORT \
  >"$TMP/dpm.out" 2>&1 || rc=$?
e2e_expect_eq "dpm-run: the helper ran every call (no crash)" 0 "$rc"
declare -A got
while IFS= read -r line; do got[${line%%: *}]=${line#*: }; done <"$TMP/dpm.out"
while IFS= read -r line; do
  name=${line%%: *}
  e2e_expect_eq "$name" "${line#*: }" "${got[$name]:-<missing>}"
done <"$TMP/kernel.out"
e2e_check "the hooked program's connection came from the stack (10.77.1.2)" grep -q '^10\.77\.1\.2:' "$TMP/echo.log"
e2e_check "the daemon holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API"
e2e_check "the daemon is still running" kill -0 "$DPMD_PID"

echo "--- the daemon killed under a blocked read ---"
e2e_bg "$WAN" "$PY" "$E2E_DIR/peers.py" tcp-idle-server $SERVER 6001 "$TMP/idle.result"
e2e_wait_for 10 test -e "$TMP/idle.result.listening" || e2e_fail "idle server did not start"
timeout 30 ip netns exec "$HOST" "$DPMRUN" --api-socket "$API" -- "$HELPER" blocked-read $SERVER 6001 "$TMP/reading" \
  >"$TMP/blocked.out" 2>&1 &
BLOCKED=$!
e2e_wait_for 10 test -e "$TMP/reading" || { cat "$TMP/blocked.out"; e2e_fail "the hooked program did not connect"; }
e2e_expect_eq "the daemon lists the connection" "tcp connected" \
  "$(e2e_json "$API" '" ".join(x["proto"] + " " + x["state"] for x in s["sockets"])')"
kill -9 "$DPMD_PID"
rc=0
wait "$BLOCKED" || rc=$?
sed 's/^/  /' "$TMP/blocked.out"
e2e_expect_eq "the hooked program finished by itself (timeout gives 124)" 0 "$rc"
e2e_check "read() returned 0 or ECONNRESET" grep -Eqx 'read: (0|ECONNRESET)' "$TMP/blocked.out"
e2e_check "write() then failed with EPIPE" grep -qx 'write: EPIPE' "$TMP/blocked.out"
e2e_check "a new socket() failed with ENETDOWN" grep -qx 'socket: ENETDOWN' "$TMP/blocked.out"
e2e_finish
