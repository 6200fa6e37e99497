#!/usr/bin/env bash
# e2e.preload_process: processes and descriptors of hooked programs (e2e_preload_helper).
#  - fork(): parent and child share a connection to an echo server in "wan" — the child
#    writes on it, the parent reads the echo and goes on using it after the child exited; the
#    child also opens a connection of its own.
#  - dup / dup2 / dup3 / fcntl(F_DUPFD_CLOEXEC): every copy works (names, SO_TYPE, data), the
#    original closed first, the connection lives until the last copy is closed.
#  - A hooked reader killed with SIGKILL mid-transfer: the daemon holds nothing within 5 s and
#    the Linux sender sees the connection reset.
#  - AF_UNIX (socketpair, bound datagram sockets) and 127.0.0.1 (a kernel echo listener in
#    "host", a listener of the program's own, UDP) stay with the kernel: they work, and the
#    daemon never lists them (nor counts an opened socket for AF_UNIX).
#  - socket(AF_INET6, SOCK_STREAM / SOCK_DGRAM) fails with EAFNOSUPPORT, as on an IPv4-only
#    host (the kernel in these namespaces has IPv6, so there is no kernel control for it).
# fork and dup run on the kernel in "host" first as the control; the echo server's log
# shows that the hooked runs came from the stack (10.77.1.2).
source "$(dirname "$0")/lib.sh"
e2e_require_root preload_process
e2e_init preload_process
e2e_require_test_program e2e_preload_helper
HELPER=$TEST_PROGRAM
e2e_topology
SERVER=198.51.100.10
ECHO_PORT=7000
e2e_tcp_echo "$WAN" $SERVER $ECHO_PORT "$TMP/echo.log"
connections_from() { grep -c "^$1:" "$TMP/echo.log" || true; }

# helper_run LABEL RUN... : runs RUN... (ending in the helper's command) in "host", shows its
# output and checks its exit status.
helper_run() {
  local label=$1 rc=0
  shift
  timeout 60 ip netns exec "$HOST" "$@" >"$TMP/helper.out" 2>&1 || rc=$?
  sed 's/^/  /' "$TMP/helper.out"
  e2e_expect_eq "$label: every check of the helper passed (exit status)" 0 "$rc"
}

echo "--- control: fork and dup on the kernel in \"host\" ---"
helper_run "kernel fork" "$HELPER" fork $SERVER $ECHO_PORT
helper_run "kernel dup" "$HELPER" dup $SERVER $ECHO_PORT
e2e_expect_eq "the kernel's 3 connections came from 198.51.100.1" 3 "$(connections_from 198.51.100.1)"

e2e_require_preload
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24
RUN=("$DPMRUN" --api-socket "$API" --)

echo "--- fork and dup under dpm-run ---"
helper_run "dpm-run fork" "${RUN[@]}" "$HELPER" fork $SERVER $ECHO_PORT
helper_run "dpm-run dup" "${RUN[@]}" "$HELPER" dup $SERVER $ECHO_PORT
e2e_expect_eq "the hooked program's 3 connections came from the stack (10.77.1.2)" 3 "$(connections_from 10.77.1.2)"
e2e_check "the daemon holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API"

echo "--- a hooked reader killed mid-transfer ---"
rx_bytes() { e2e_json "$API" 's["link"]["rx_bytes"]'; }
e2e_bg "$WAN" "$PY" "$E2E_DIR/peers.py" tcp-sender $SERVER 6000 "$TMP/sender.result"
e2e_wait_for 10 test -e "$TMP/sender.result.listening" || e2e_fail "sender did not start"
target=$(($(rx_bytes) + 20 * 1024 * 1024))
e2e_bg "$HOST" "${RUN[@]}" "$HELPER" drain $SERVER 6000 >/dev/null 2>"$TMP/drain.err"
READER=$LAST_PID
e2e_check "the transfer is under way (20 MB arrived)" e2e_wait_for 20 bash -c \
  "[ \$('$DPMD' status --api-socket '$API' --json | '$PY' -c 'import json,sys; print(json.load(sys.stdin)[\"link\"][\"rx_bytes\"])') -ge $target ]"
e2e_expect_eq "the daemon lists the reader's connection" "tcp connected" \
  "$(e2e_json "$API" '" ".join(x["proto"] + " " + x["state"] for x in s["sockets"])')"
kill -9 "$READER"
wait "$READER" 2>/dev/null || true
e2e_check "within 5 s the daemon holds no socket and no active pcb" e2e_wait_for 5 e2e_idle "$API"
e2e_check "within 5 s the sender's connection is reset" e2e_wait_for 5 test -e "$TMP/sender.result"
e2e_expect_eq "the sender saw" reset "$(cat "$TMP/sender.result" 2>/dev/null)"

echo "--- AF_UNIX stays with the kernel ---"
opened=$(e2e_json "$API" 's["sockets_opened"]')
helper_run "dpm-run unix" "${RUN[@]}" "$HELPER" unix
e2e_expect_eq "the daemon opened no socket for AF_UNIX (sockets_opened)" "$opened" "$(e2e_json "$API" 's["sockets_opened"]')"

echo "--- 127.0.0.1 stays with the kernel ---"
e2e_tcp_echo "$HOST" 127.0.0.1 7100 "$TMP/lo.log"
opened=$(e2e_json "$API" 's["sockets_opened"]')
timeout 60 ip netns exec "$HOST" "${RUN[@]}" "$HELPER" loopback 7100 "$TMP/hold" >"$TMP/lo.out" 2>&1 &
LO=$!
if e2e_wait_for 20 test -e "$TMP/hold"; then
  e2e_expect_eq "while the loopback connections are open, the daemon lists no socket" 0 "$(e2e_json "$API" 'len(s["sockets"])')"
  e2e_check "the kernel in host holds the connection to 127.0.0.1:7100" \
    test -n "$(ip netns exec "$HOST" ss -Htn state established '( dport = :7100 )')"
  rm -f "$TMP/hold"
fi
rc=0
wait "$LO" || rc=$?
sed 's/^/  /' "$TMP/lo.out"
e2e_expect_eq "dpm-run loopback: every check of the helper passed (exit status)" 0 "$rc"
e2e_check "the loopback echo server saw the connection from 127.0.0.1" grep -q '^127\.0\.0\.1:' "$TMP/lo.log"
echo "  sockets_opened grew by $(($(e2e_json "$API" 's["sockets_opened"]') - opened)) during the loopback run"
e2e_check "the daemon holds no socket afterwards" e2e_wait_for 5 e2e_idle "$API"

echo "--- AF_INET6 ---"
echo "  the kernel here (IPv6 on): $(ip netns exec "$HOST" "$HELPER" inet6 | paste -sd' ')"
e2e_expect_eq "dpm-run: socket(AF_INET6, ...) is EAFNOSUPPORT for TCP and UDP" \
  "inet6-stream: EAFNOSUPPORT|inet6-dgram: EAFNOSUPPORT" \
  "$(timeout 10 ip netns exec "$HOST" "${RUN[@]}" "$HELPER" inet6 2>&1 | paste -sd'|')"
e2e_finish
