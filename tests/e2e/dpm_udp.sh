#!/usr/bin/env bash
# UDP through the DPM driver (the DPM patent, ¶33): a libdpm datagram socket that
# connects or sends to an outside address gets its setup exchange first, aims its datagrams
# at the gateway endpoint, sees replies from the true peer, and gives the grant back on close.
# A real UDP echo server in "wan" logs the source address and port it saw.
source "$(dirname "$0")/dpm_lib.sh"
e2e_require_root dpm_udp
e2e_init dpm_udp

dpm_topology 203.0.113.1
e2e_bg "$WAN" /usr/bin/python3 "$(dirname "$0")/udp_echo.py" "$TMP/echo.log" 7 198.51.100.10 198.51.100.11 \
  >"$TMP/echo.out" 2>&1
e2e_wait_for 5 grep -q "udp_echo ready" "$TMP/echo.out" || e2e_fail "the UDP echo server did not start"

dpm_udp_sessions() {  # the gateway's UDP DPM sessions: "internal external remote" per line
  "$DPMD" status --api-socket "$GW_API" --json | /usr/bin/python3 -c '
import json,sys
for x in json.load(sys.stdin)["gateway"]["sessions"]:
    if x["proto"] == "udp" and x["dpm"]: print(x["internal"], x["external"], x["remote"])'
}

echo "--- connect(): the registered endpoint and the true peer ---"
printf 'hello dpm\n' | ip netns exec "$LAN" timeout 10 "$DPMCAT" --socket "$C1_API" -u -w 3 -c 1 198.51.100.10 7 \
  >"$TMP/c.out" 2>"$TMP/c.err" || true
cat "$TMP/c.err"
local_ep=$(sed -n 's/^dpm-cat: local \([0-9.:]*\) peer.*/\1/p' "$TMP/c.err")
e2e_expect_eq "the echo came back" "hello dpm" "$(cat "$TMP/c.out")"
e2e_check "getsockname gives a registered address ($local_ep)" grep -q '^203\.0\.113\.1:[0-9]' <<<"$local_ep"
e2e_check "getpeername gives the true peer" grep -q "peer 198.51.100.10:7$" "$TMP/c.err"
e2e_check "the server saw exactly that address and port" grep -q "^$local_ep 198.51.100.10$" "$TMP/echo.log"
e2e_wait_for 5 sh -c "! \"$DPMD\" status --api-socket \"$GW_API\" --json | grep -q '\"external\":\"$local_ep\"'" || true
e2e_check "closing the socket released the grant (lifetime 0)" \
  sh -c "! \"$DPMD\" status --api-socket \"$GW_API\" --json | grep -q '\"external\":\"$local_ep\"'"

echo "--- sendto() without connect: held until the grant, replies from the true peer ---"
printf 'via sendto\n' | ip netns exec "$LAN" timeout 10 "$DPMCAT" --socket "$C1_API" -u --sendto -w 3 -c 1 \
  198.51.100.11 7 >"$TMP/s.out" 2>"$TMP/s.err" || true
cat "$TMP/s.err"
e2e_expect_eq "the first datagram, sent before the grant, was echoed" "via sendto" "$(cat "$TMP/s.out")"
e2e_check "recvfrom names the true peer, not the gateway endpoint" grep -q "datagram from 198.51.100.11:7$" "$TMP/s.err"
e2e_check "the server saw the registered address" grep -q '^203\.0\.113\.1:[0-9]* 198.51.100.11$' "$TMP/echo.log"

echo "--- one fixed UDP port, two clients, two servers (claims 8-10) ---"
hold() {  # hold API SERVER TAG : a datagram session from fixed port 40001, kept for a while
  (printf 'hold\n'; sleep 5) | ip netns exec "$LAN" timeout 10 "$DPMCAT" --socket "$1" -u -p 40001 -w 1 "$2" 7 \
    >/dev/null 2>"$TMP/hold-$3.err" &
  HOLDS+=" $!"
}
HOLDS=""
hold "$C1_API" 198.51.100.10 c1
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/hold-c1.err" || true
hold "$C2_API" 198.51.100.11 c2
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/hold-c2.err" || true
cat "$TMP"/hold-*.err
e2e_check "client 1 holds 203.0.113.1:40001 towards .10" grep -q "local 203.0.113.1:40001 peer 198.51.100.10:7" "$TMP/hold-c1.err"
e2e_check "client 2 shares 203.0.113.1:40001 towards .11" grep -q "local 203.0.113.1:40001 peer 198.51.100.11:7" "$TMP/hold-c2.err"
e2e_wait_for 3 grep -q "^203.0.113.1:40001 198.51.100.11$" "$TMP/echo.log" || true
e2e_check "both servers saw source port 40001" \
  sh -c "grep -q '^203.0.113.1:40001 198.51.100.10$' '$TMP/echo.log' && grep -q '^203.0.113.1:40001 198.51.100.11$' '$TMP/echo.log'"
dpm_udp_sessions | sed 's/^/  /'
out=$(ip netns exec "$LAN" timeout 10 "$DPMCAT" --socket "$C2_API" -u -p 40001 198.51.100.10 7 </dev/null 2>&1 || true)
echo "$out"
e2e_check "the same fixed port towards the same server is refused (EADDRINUSE)" grep -q "connect: Address already in use" <<<"$out"
wait $HOLDS
e2e_finish
