#!/usr/bin/env bash
# e2e.virtual_link_tcp (no root): two dpmd instances joined by a virtual link (UNIX datagram
# sockets), 10.77.9.1 and 10.77.9.2. A dpm-cat sender on A pushes 50 MB of random data to a
# dpm-cat listener on B; the checksums match and both daemons are left with no sockets.
# Then a UDP ping-pong over the same link.
source "$(dirname "$0")/lib.sh"
e2e_init virtual_link_tcp
e2e_virtual_pair

echo "--- TCP: 50 MB from A to B ---"
head -c $((50 * 1024 * 1024)) /dev/urandom >"$TMP/data"
e2e_bg - "$DPMCAT" --socket "$API_B" -l 7000 </dev/null >"$TMP/received" 2>"$TMP/listener.err"
LISTENER=$LAST_PID
e2e_wait_for 10 grep -q '^dpm-cat: local' "$TMP/listener.err" || e2e_fail "listener did not start"
start=$(date +%s.%N)
timeout 60 "$DPMCAT" --socket "$API_A" -N 10.77.9.2 7000 <"$TMP/data" >/dev/null 2>"$TMP/sender.err" ||
  echo "sender exited with $?"
e2e_wait_for 10 bash -c "! kill -0 $LISTENER" || echo "listener still running"
end=$(date +%s.%N)
sed 's/^/  sender: /' "$TMP/sender.err"
sed 's/^/  listener: /' "$TMP/listener.err"
awk -v a="$start" -v b="$end" -v n="$(file_size "$TMP/received")" 'BEGIN {printf "  %.1f MB in %.2f s\n", n/1e6, b-a}'
e2e_expect_eq "B received every byte" "$(file_size "$TMP/data")" "$(file_size "$TMP/received")"
e2e_expect_eq "sha256 of received data equals sent data" "$(sha "$TMP/data")" "$(sha "$TMP/received")"
e2e_check "sender's local address is A's (10.77.9.1), peer B:7000" \
  grep -Eq '^dpm-cat: local 10\.77\.9\.1:[0-9]+ peer 10\.77\.9\.2:7000$' "$TMP/sender.err"
e2e_check "listener's connection is B:7000 from A" \
  grep -Eq '^dpm-cat: local 10\.77\.9\.2:7000 peer 10\.77\.9\.1:[0-9]+$' "$TMP/listener.err"
e2e_check "A holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API_A"
e2e_check "B holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API_B"
e2e_expect_eq "A's status lists zero sockets" 0 "$(e2e_json "$API_A" 'len(s["sockets"])')"
e2e_expect_eq "B's status lists zero sockets" 0 "$(e2e_json "$API_B" 'len(s["sockets"])')"
# Informational: a virtual link drops a packet when the peer's socket queue is full
# (net.unix.max_dgram_qlen); TCP recovers, but many drops cost throughput.
echo "  NOTE: packets dropped on the virtual link: A $(e2e_json "$API_A" 's["link"]["tx_dropped"]')," \
  "B $(e2e_json "$API_B" 's["link"]["tx_dropped"]') (net.unix.max_dgram_qlen=$(cat /proc/sys/net/unix/max_dgram_qlen))"

echo "--- UDP ping-pong: B echoes, A sends ---"
e2e_bg - "$DPMCAT" --socket "$API_B" -u -l 5001 -e 2>"$TMP/udp-echo.err"
ECHO=$LAST_PID
e2e_wait_for 10 grep -q '^dpm-cat: local' "$TMP/udp-echo.err" || e2e_fail "UDP echo did not start"
for i in 1 2 3 4 5; do
  printf 'ping %d %s\n' "$i" "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$TMP/ping"
  timeout 10 "$DPMCAT" --socket "$API_A" -u -c 1 -w 2 10.77.9.2 5001 <"$TMP/ping" >"$TMP/pong" 2>"$TMP/ping.err" || true
  if ! cmp -s "$TMP/ping" "$TMP/pong"; then
    echo "  round $i: sent '$(cat "$TMP/ping")' got '$(cat "$TMP/pong")'"
    break
  fi
done
e2e_check "5 UDP round trips A -> B -> A returned the same bytes" cmp -s "$TMP/ping" "$TMP/pong"
e2e_check "the echo saw datagrams from A (10.77.9.1)" grep -Eq '^dpm-cat: datagram from 10\.77\.9\.1:[0-9]+$' "$TMP/udp-echo.err"
e2e_stop "$ECHO"
e2e_check "B holds no socket after the UDP echo is stopped" e2e_wait_for 5 e2e_idle "$API_B"
e2e_finish
