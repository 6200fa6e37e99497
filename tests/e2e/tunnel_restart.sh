#!/usr/bin/env bash
# e2e.tunnel_restart (root): the roles recover by themselves from restarts (docs/tunnel.md
# "Operations: Reconnect", "Names").
# Asserts:
#   (a) with the service proxy killed (SIGKILL), a connect() by name gets EHOSTUNREACH
#       (proxy-down), blocking and non-blocking, and curl fails; the proxy started again
#       republishes and curl by the same name fetches the file again (checksum);
#   (b) with the tunnel server stopped and started again (same access file), the proxy and the
#       redirector reconnect by themselves (the server down 3 s: some attempts fail meanwhile):
#       both report state "up" within 10 s of the restart,
#       and curl by name works again (checksum);
#   (c) the pseudo names are the same across both restarts: the server lists the same set of
#       names each time, and the redirector resolves web.alpha to the same pseudo address.
source "$(dirname "$0")/tunnel_lib.sh"
e2e_require_root tunnel_restart
e2e_require_cmd curl openssl
e2e_require_preload
e2e_init tunnel_restart

tunnel_topology
tunnel_pki
tunnel_access
mkdir -p "$TMP/www"
head -c 1000000 /dev/urandom >"$TMP/www/file.bin"
tunnel_servers "$TMP/www"
WANT=$(sha "$TMP/www/file.bin")

# fetch TAG : curl by pseudo name under the hook; prints "EXIT_STATUS SHA256".
fetch() {
  local rc=0
  rm -f "$TMP/got-$1.bin"
  tunnel_run curl -sS --max-time 30 -o "$TMP/got-$1.bin" http://web.alpha.dpm.internal/file.bin 2>"$TMP/curl-$1.err" || rc=$?
  echo "$rc $(sha "$TMP/got-$1.bin" 2>/dev/null || echo none)"
}
names() { e2e_json "$TS_CTL" 'sorted(x["name"] for x in s["services"])'; }
pseudo_address() { tunnel_run getent ahostsv4 web.alpha.dpm.internal | awk 'NR == 1 {print $1}'; }
errno_of() {
  ip netns exec "$LANB" timeout 60 "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- "$PY" "$E2E_DIR/tunnel_connect_errno.py" \
    web.alpha.dpm.internal 80 "$1" 2>&1 | tail -n 1
}
# up_within SECONDS CTL : how many seconds (whole) until the role at CTL is up; "never" after SECONDS.
up_within() {
  local start=$SECONDS
  if e2e_wait_for "$1" tunnel_up "$2"; then echo $((SECONDS - start)); else echo never; fi
}

tunnel_chain
NAMES=$(names)
ADDR=$(pseudo_address)
echo "  names: $NAMES; web.alpha resolves to $ADDR"
e2e_expect_eq "curl by name at first" "0 $WANT" "$(fetch first)"

echo "--- (a) the service proxy killed ---"
kill -9 "$SP_PID"
wait "$SP_PID" 2>/dev/null || true
e2e_check "the server drops the proxy's connection" \
  e2e_wait_for 10 sh -c "[ \"\$('$DPMD' status --api-socket '$TS_CTL' --json | '$PY' -c 'import json,sys; print(sum(p[\"role\"] == \"proxy\" for p in json.load(sys.stdin)[\"peers\"]))')\" = 0 ]"
for mode in blocking nonblocking; do
  e2e_expect_eq "a $mode connect() by name while the proxy is down" EHOSTUNREACH "$(errno_of "$mode")"
done
out=$(fetch proxydown)
e2e_check "curl fails meanwhile ($out: $(head -c 100 "$TMP/curl-proxydown.err"))" test "${out%% *}" -ne 0
mv "$TMP/service-proxy.log" "$TMP/service-proxy-1.log"
tunnel_start_proxy
e2e_check "the proxy started again comes up" e2e_wait_for 20 tunnel_up "$SP_CTL"
e2e_check "and republishes web.alpha.dpm.internal" e2e_wait_for 10 tunnel_published web.alpha.dpm.internal
e2e_expect_eq "the server lists the same names" "$NAMES" "$(names)"
e2e_expect_eq "curl by the same name works again" "0 $WANT" "$(fetch proxyback)"

echo "--- (b) the tunnel server restarted ---"
e2e_stop "$TS_PID"
e2e_check "the proxy sees its session down" e2e_wait_for 10 sh -c "! '$DPMD' status --api-socket '$SP_CTL' --json | grep -q '\"state\": \"up\"'"
e2e_check "the redirector sees its session down" e2e_wait_for 10 sh -c "! '$DPMD' status --api-socket '$RD_CTL' --json | grep -q '\"state\": \"up\"'"
sp_sessions=$(e2e_json "$SP_CTL" 's["sessions"]')
rd_sessions=$(e2e_json "$RD_CTL" 's["sessions"]')
mv "$TMP/tunnel-server.log" "$TMP/tunnel-server-1.log"
sleep 3  # down long enough for attempts to fail and the backoff to grow (1 s, 2 s, 4 s)
tunnel_start_server
restarted=$SECONDS
sp_after=$(up_within 10 "$SP_CTL")
rd_after=$(up_within $((10 - (SECONDS - restarted))) "$RD_CTL")
echo "  up again after: proxy $sp_after s, redirector $rd_after s (total $((SECONDS - restarted)) s)"
e2e_check "the proxy reconnects by itself within 10 s" test "$sp_after" != never
e2e_check "the redirector reconnects by itself within 10 s of the restart" test "$rd_after" != never
e2e_check "each on a new session" test "$(e2e_json "$SP_CTL" 's["sessions"]')" -gt "$sp_sessions" -a \
  "$(e2e_json "$RD_CTL" 's["sessions"]')" -gt "$rd_sessions"
e2e_check "the proxy republished web.alpha.dpm.internal" e2e_wait_for 10 tunnel_published web.alpha.dpm.internal
e2e_expect_eq "the restarted server lists the same names" "$NAMES" "$(names)"
e2e_expect_eq "curl by name works again" "0 $WANT" "$(fetch serverback)"

echo "--- (c) the same pseudo address ---"
e2e_expect_eq "web.alpha resolves to the same pseudo address" "$ADDR" "$(pseudo_address)"
"$DPMD" status --api-socket "$TS_CTL" | sed 's/^/  /'
echo "--- (d) keepalive: a proxy that stops answering is taken as dead ---"
# SIGSTOP: its TCP connection stays up but nothing answers the server's PINGs. With a 1 s
# keepalive the server drops it after three silent intervals; after SIGCONT the proxy finds its
# connection gone, reconnects and republishes.
e2e_stop "$TS_PID"
tunnel_start_server --keepalive 1
e2e_check "the proxy reconnects to the 1 s keepalive server" e2e_wait_for 20 tunnel_up "$SP_CTL"
e2e_check "and republishes" e2e_wait_for 10 tunnel_published web.alpha.dpm.internal
kill -STOP "$SP_PID"
e2e_check "the server drops the silent proxy within 10 s" e2e_wait_for 10 \
  sh -c "[ \"\$('$DPMD' status --api-socket '$TS_CTL' --json | '$PY' -c 'import json,sys; print(sum(p[\"role\"] == \"proxy\" for p in json.load(sys.stdin)[\"peers\"]))')\" = 0 ]"
grep -q "peer silent past three keepalive intervals" "$TMP/tunnel-server.log" && e2e_pass "the server logged why" ||
  e2e_fail "the server did not log the keepalive timeout"
kill -CONT "$SP_PID"
e2e_check "the proxy comes back by itself" e2e_wait_for 20 tunnel_up "$SP_CTL"
e2e_check "and its names work again" e2e_wait_for 20 tunnel_published web.alpha.dpm.internal
e2e_finish
