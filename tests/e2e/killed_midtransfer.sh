#!/usr/bin/env bash
# e2e.killed_midtransfer: a program killed with SIGKILL leaves nothing behind in the daemon.
#  (a) dpm-cat fetching a 2 GB (sparse) file from nginx is killed mid-transfer: within a few
#      seconds the daemon holds no socket and no active TCP pcb, and nginx's connection ends.
#  (b) dpm-cat reading from a Linux sender that sends forever is killed: the sender sees the
#      connection reset.
#  (c) dpm-cat holding an idle outgoing connection is killed: the Linux server sees it end.
#  (d) dpm-cat -l holding a listener and an accepted idle connection is killed: both leave
#      the daemon and the Linux client sees the connection end.
#  (e) dpm-cat sending without end to a Linux sink is killed: the connection leaves the
#      daemon and the sink sees it end.
#  (f) dpm-cat holding a bound UDP socket is killed: the socket leaves the daemon.
source "$(dirname "$0")/lib.sh"
e2e_require_root killed_midtransfer
e2e_require_cmd nginx
e2e_init killed_midtransfer
e2e_topology

API=$TMP/api.sock
PEERS=$E2E_DIR/peers.py
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24

rx_bytes() { e2e_json "$API" 's["link"]["rx_bytes"]'; }
socket_count() { e2e_json "$API" 'len(s["sockets"])'; }
# wait_rx_beyond BYTES : until the link has received BYTES more than now.
wait_rx_beyond() {
  local target=$(($(rx_bytes) + $1)) deadline=$((SECONDS + 20))
  until [ "$(rx_bytes)" -ge "$target" ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}
kill9() { kill -9 "$1" 2>/dev/null || echo "  (process $1 had already exited)"; wait "$1" 2>/dev/null || true; }

echo "--- (a) nginx download killed mid-transfer ---"
mkdir -p "$TMP/www"
truncate -s 2G "$TMP/www/big"
e2e_nginx "$WAN" 198.51.100.10 80 "$TMP/www"
printf 'GET /big HTTP/1.0\r\n\r\n' >"$TMP/get"
e2e_bg "$HOST" "$DPMCAT" --socket "$API" 198.51.100.10 80 <"$TMP/get" >/dev/null 2>"$TMP/a.err"
READER=$LAST_PID
e2e_check "the transfer is under way (20 MB arrived)" wait_rx_beyond $((20 * 1024 * 1024))
e2e_expect_eq "the daemon lists the reader's connection" "tcp connected" \
  "$(e2e_json "$API" '" ".join(x["proto"] + " " + x["state"] for x in s["sockets"])')"
kill9 "$READER"
e2e_check "within 5 s the daemon holds no socket and no active pcb" e2e_wait_for 5 e2e_idle "$API"
e2e_status "$API" | sed 's/^/  /'
e2e_check "within 5 s nginx has no connection left" e2e_wait_for 5 bash -c \
  "[ -z \"\$(ip netns exec $WAN ss -Htn state all '( sport = :80 )' | grep -v LISTEN)\" ]"
e2e_wait_for 5 test -s "$TMP/nginx-access.log" || true
line=$(tail -n 1 "$TMP/nginx-access.log" 2>/dev/null || true)
echo "  nginx: $line"
sent=$(echo "$line" | awk '{print $10}')
e2e_check "nginx logged a partial response (0 < $sent < 2 GiB)" \
  test "${sent:-0}" -gt 0 -a "${sent:-0}" -lt $((2 * 1024 * 1024 * 1024))

echo "--- (b) Linux sender that never stops; reader killed ---"
e2e_bg "$WAN" "$PY" "$PEERS" tcp-sender 198.51.100.10 6000 "$TMP/b.result"
e2e_wait_for 10 test -e "$TMP/b.result.listening" || e2e_fail "sender did not start"
e2e_bg "$HOST" "$DPMCAT" --socket "$API" 198.51.100.10 6000 </dev/null >/dev/null 2>"$TMP/b.err"
READER=$LAST_PID
e2e_check "the transfer is under way (20 MB arrived)" wait_rx_beyond $((20 * 1024 * 1024))
kill9 "$READER"
e2e_check "within 5 s the sender's connection is reset" e2e_wait_for 5 test -e "$TMP/b.result"
e2e_expect_eq "the sender saw" reset "$(cat "$TMP/b.result" 2>/dev/null)"
e2e_check "within 5 s the daemon holds no socket and no active pcb" e2e_wait_for 5 e2e_idle "$API"

echo "--- (c) idle outgoing connection; holder killed ---"
e2e_bg "$WAN" "$PY" "$PEERS" tcp-idle-server 198.51.100.10 6001 "$TMP/c.result"
e2e_wait_for 10 test -e "$TMP/c.result.listening" || e2e_fail "server did not start"
e2e_bg "$HOST" "$DPMCAT" --socket "$API" 198.51.100.10 6001 </dev/null >/dev/null 2>"$TMP/c.err"
HOLDER=$LAST_PID
e2e_wait_for 10 test -e "$TMP/c.result.connected" || e2e_fail "dpm-cat did not connect"
e2e_expect_eq "the daemon lists the idle connection" 1 "$(socket_count)"
kill9 "$HOLDER"
e2e_check "within 5 s the Linux server sees the connection end" e2e_wait_for 5 test -e "$TMP/c.result"
echo "  server saw: $(cat "$TMP/c.result" 2>/dev/null)"
e2e_check "within 5 s the daemon holds no socket and no active pcb" e2e_wait_for 5 e2e_idle "$API"

echo "--- (d) listener plus an accepted idle connection; holder killed ---"
e2e_bg "$HOST" "$DPMCAT" --socket "$API" -l 9001 </dev/null >/dev/null 2>"$TMP/d.err"
HOLDER=$LAST_PID
e2e_wait_for 10 grep -q '^dpm-cat: local' "$TMP/d.err" || e2e_fail "dpm-cat did not listen"
e2e_bg "$WAN" "$PY" "$PEERS" tcp-idle-client 10.77.1.2 9001 "$TMP/d.result"
e2e_wait_for 10 grep -q 'peer 198.51.100.10' "$TMP/d.err" || e2e_fail "the client did not connect"
e2e_expect_eq "the daemon lists the listener and the accepted connection" "tcp connected,tcp listening" \
  "$(e2e_json "$API" '",".join(sorted(x["proto"] + " " + x["state"] for x in s["sockets"]))')"
kill9 "$HOLDER"
e2e_check "within 5 s the Linux client sees the connection end" e2e_wait_for 5 test -e "$TMP/d.result"
echo "  client saw: $(cat "$TMP/d.result" 2>/dev/null)"
e2e_check "within 5 s the daemon holds no socket, no listener and no active pcb" e2e_wait_for 5 e2e_idle "$API"

echo "--- (e) endless sender in the stack killed ---"
tx_bytes() { e2e_json "$API" 's["link"]["tx_bytes"]'; }
e2e_bg "$WAN" "$PY" "$PEERS" tcp-idle-server 198.51.100.10 6002 "$TMP/e.result"
e2e_wait_for 10 test -e "$TMP/e.result.listening" || e2e_fail "sink did not start"
e2e_bg "$HOST" "$DPMCAT" --socket "$API" 198.51.100.10 6002 </dev/zero >/dev/null 2>"$TMP/e.err"
SENDER=$LAST_PID
target=$(($(tx_bytes) + 20 * 1024 * 1024))
e2e_check "the transfer is under way (20 MB sent)" e2e_wait_for 20 bash -c \
  "[ \$('$DPMD' status --api-socket '$API' --json | '$PY' -c 'import json,sys; print(json.load(sys.stdin)[\"link\"][\"tx_bytes\"])') -ge $target ]"
kill9 "$SENDER"
e2e_check "within 5 s the Linux sink sees the connection end" e2e_wait_for 5 test -e "$TMP/e.result"
echo "  sink saw: $(cat "$TMP/e.result" 2>/dev/null)"
e2e_check "within 5 s the daemon holds no socket and no active pcb" e2e_wait_for 5 e2e_idle "$API"

echo "--- (f) bound UDP socket; holder killed ---"
e2e_bg "$HOST" "$DPMCAT" --socket "$API" -u -l 5005 -k </dev/null >/dev/null 2>"$TMP/f.err"
HOLDER=$LAST_PID
e2e_wait_for 10 grep -q '^dpm-cat: local' "$TMP/f.err" || e2e_fail "dpm-cat did not bind"
e2e_expect_eq "the daemon lists the UDP socket" "udp 0.0.0.0:5005" \
  "$(e2e_json "$API" '" ".join(x["proto"] + " " + x["local"] for x in s["sockets"])')"
kill9 "$HOLDER"
e2e_check "within 5 s the daemon holds no socket" e2e_wait_for 5 e2e_idle "$API"
e2e_status "$API" | sed 's/^/  /'
e2e_finish
