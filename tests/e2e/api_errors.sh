#!/usr/bin/env bash
# e2e.api_errors (no root): libdpm's errors and concurrency against live daemons.
#  - e2e_api_errno_test (GoogleTest) runs against instance A, with instance B on the other
#    end of a virtual link serving e2e_echo_server: every bad call gives the kernel's errno,
#    names after connect/accept are right, 8 threads at once work, garbage on the control
#    socket does not disturb the daemon.
#  - 12 dpm-cat processes at once each echo their own data through B's echo server.
#  - Afterwards both daemons still serve an ordinary exchange, `dpmd status` works and no
#    socket is left behind.
source "$(dirname "$0")/lib.sh"
e2e_init api_errors
[ -x "$E2E_BIN/e2e_api_errno_test" ] || e2e_fail "no $E2E_BIN/e2e_api_errno_test (build the tests)"
e2e_virtual_pair

ECHO_PORT=7
e2e_bg - "$E2E_BIN/e2e_echo_server" --socket "$API_B" --port $ECHO_PORT 2>"$TMP/echo.err"
ECHO_PID=$LAST_PID
e2e_wait_for 10 grep -q ready "$TMP/echo.err" || { cat "$TMP/echo.err"; e2e_fail "echo_server did not start"; }

echo "--- GoogleTest: e2e_api_errno_test against instance A ---"
rc=0
DPM_SOCKET=$API_A DPM_TEST_PEER_API=$API_B DPM_TEST_LOCAL_ADDR=10.77.9.1 DPM_TEST_PEER_ADDR=10.77.9.2 \
  DPM_TEST_ECHO_PORT=$ECHO_PORT DPM_TEST_CLOSED_PORT=9 \
  timeout 60 "$E2E_BIN/e2e_api_errno_test" --gtest_color=no >"$TMP/gtest.out" 2>&1 || rc=$?
grep -E '^\[( +OK|  FAILED|  PASSED|  SKIPPED) |Failure|Expected|Which is|actual|getsockname|still' "$TMP/gtest.out" | sed 's/^/  /'
e2e_expect_eq "every GoogleTest case passed (exit status)" 0 "$rc"

echo "--- 12 dpm-cat processes at once ---"
pids=()
for i in $(seq 12); do
  head -c $((100000 + i * 7919)) /dev/urandom >"$TMP/in.$i"
  timeout 30 "$DPMCAT" --socket "$API_A" -N -q 10.77.9.2 $ECHO_PORT <"$TMP/in.$i" >"$TMP/out.$i" 2>"$TMP/err.$i" &
  pids+=($!)
done
bad=0
for i in $(seq 12); do
  wait "${pids[$((i - 1))]}" || { echo "  dpm-cat $i exited with $?: $(cat "$TMP/err.$i")"; bad=$((bad + 1)); continue; }
  cmp -s "$TMP/in.$i" "$TMP/out.$i" || { echo "  dpm-cat $i: echoed data differs"; bad=$((bad + 1)); }
done
e2e_expect_eq "12 concurrent dpm-cat processes got their own data back" 0 "$bad"

echo "--- afterwards ---"
printf 'still alive\n' >"$TMP/last.in"
timeout 10 "$DPMCAT" --socket "$API_A" -N -q 10.77.9.2 $ECHO_PORT <"$TMP/last.in" >"$TMP/last.out" 2>&1 || true
e2e_check "A still serves an ordinary TCP exchange" cmp -s "$TMP/last.in" "$TMP/last.out"
status_ok() { e2e_status "$1" >/dev/null && e2e_status "$1" --json >/dev/null; }
e2e_check "dpmd status of A works" status_ok "$API_A"
e2e_check "dpmd status of B works" status_ok "$API_B"
echo "  A: bad_requests=$(e2e_json "$API_A" 's["drops"]["bad_requests"]')" \
  "opened=$(e2e_json "$API_A" 's["sockets_opened"]') closed=$(e2e_json "$API_A" 's["sockets_closed"]')"
e2e_check "A counted the garbage requests (bad_requests > 0)" \
  test "$(e2e_json "$API_A" 's["drops"]["bad_requests"]')" -gt 0
e2e_check "A holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API_A"
e2e_stop "$ECHO_PID"
e2e_check "B holds no socket and no active pcb once the echo server is gone" e2e_wait_for 5 e2e_idle "$API_B"
e2e_check "both daemons are still running" kill -0 "$DPMD_A" "$DPMD_B"
e2e_finish
