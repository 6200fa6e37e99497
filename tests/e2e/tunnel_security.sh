#!/usr/bin/env bash
# e2e.tunnel_security (root): the security model of docs/tunnel.md, against the running roles.
# Asserts:
#   (f) a token file readable by others (0644) is refused at start by the service proxy and by
#       the redirector (non-zero exit, "readable by others");
#   (a) a proxy with a wrong token is refused: its log says "authentication failed", the server
#       counts refused_auth and publishes nothing; a redirector with a wrong token likewise (and
#       the server lists no redirector);
#   (b) a proxy trusting another CA never gets a session and logs "server certificate not
#       accepted"; against a server with an expired certificate it logs "certificate has
#       expired"; with a wrong --server-name it logs "hostname mismatch"; none of them reaches
#       the server's authentication (refused_auth unchanged, nothing published);
#   (c) with --handshake-timeout 2, a TCP connection that sends nothing is closed by the server
#       (EOF) after 1.5-6 s, one that completes TLS (ALPN dpm-tunnel/1, verified chain) but
#       sends no HELLO is closed within 6 s too, and so is one sending only the first 6 bytes of
#       a HELLO (after 1.5-6 s); the server counts handshake_timeouts (>= 3);
#   (g) plain HTTP sent to the TLS port is closed within 6 s; a TLS client offering another
#       ALPN protocol, or none, is refused during the handshake (no_application_protocol) within
#       6 s, even one that would then send a valid HELLO (no WELCOME); the server counts these
#       TLS failures; a proxy facing a TLS server that selects no ALPN logs it and never gets a
#       session; the server keeps running, its status answers, and a good proxy then connects
#       and publishes;
#   (d) no service-existence oracle: a redirector allowed only web.alpha and ghost.alpha (not
#       published) gets the same EACCES, blocking and non-blocking, for an existing forbidden
#       name (echo.alpha), an unknown one (nosuch.alpha), a permitted but unpublished one
#       (ghost.alpha) and an unknown proxy; web.alpha connects; the server's services list is
#       the same after the probes (no entry for any probed name);
#   (e) no token (the three of the access file, nor the wrong one) appears in any role's log,
#       status (text and JSON) or metrics.
source "$(dirname "$0")/tunnel_lib.sh"
e2e_require_root tunnel_security
e2e_require_cmd openssl
e2e_require_preload
e2e_init tunnel_security

tunnel_topology
tunnel_pki
tunnel_access '*.alpha'
# bob may use only web.alpha and ghost.alpha (the latter is never published).
"$PY" - "$TMP/access.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
a["redirectors"]["bob"]["services"] = ["web.alpha", "ghost.alpha"]
json.dump(a, open(sys.argv[1], "w"))
PY
WRONG=$(tunnel_token wrong)
mkdir -p "$TMP/www"
echo hello >"$TMP/www/index.html"
tunnel_servers "$TMP/www"
CA=$TMP/pki/ca.pem
SERVER=$TUNNEL_SERVER_ADDR:$TUNNEL_PORT

# proxy_with TAG ARGS... : a service proxy "alpha" publishing web and echo, log $TMP/sp-TAG.log,
# control socket $PX_CTL, pid $PX_PID; ARGS give --server/--ca/--token-file and the rest.
proxy_with() {
  local tag=$1; shift
  PX_CTL=$TMP/sp-$tag.sock
  e2e_bg "$LANA" "$DPMD" service-proxy --name alpha --service web=10.77.3.2:80 --service echo=10.77.3.2:7 \
    --control-socket "$PX_CTL" "$@" >"$TMP/sp-$tag.log" 2>&1
  PX_PID=$LAST_PID
}
refused_auth() { e2e_json "$TS_CTL" 's["counters"]["refused_auth"]'; }
published_count() { e2e_json "$TS_CTL" 'len(s["services"])'; }
counter() { e2e_json "$TS_CTL" "s['counters']['$1']"; }

# wan_probe MODE : a raw TCP client from wan to the server. MODE silent: sends nothing; http:
# sends an HTTP GET. Prints "EOF|RESET|DATA|OPEN SECONDS": how the connection ended, read
# with a 6 s timeout (DATA: bytes came, then EOF).
wan_probe() {
  ip netns exec "$WAN" "$PY" - "$TUNNEL_SERVER_ADDR" "$TUNNEL_PORT" "$1" <<'PY'
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
if sys.argv[3] == "http":
    s.sendall(b"GET / HTTP/1.1\r\nHost: tunnel.test\r\n\r\n")
start = time.monotonic()
s.settimeout(6)
got = b""
try:
    while True:
        left = 6 - (time.monotonic() - start)
        if left <= 0:
            raise socket.timeout()
        s.settimeout(left)
        d = s.recv(4096)
        if not d:
            print("%s %.1f" % ("DATA" if got else "EOF", time.monotonic() - start))
            break
        got += d
except socket.timeout:
    print("OPEN %.1f" % (time.monotonic() - start))
except ConnectionResetError:
    print("RESET %.1f" % (time.monotonic() - start))
PY
}

# s_client_seconds OUT ARGS... : openssl s_client from wan to the server, its stdin held open
# (it sends nothing); its output in OUT; prints the seconds until it ended (at most 10: `timeout`).
s_client_seconds() {
  local out=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  # Process substitution, not a pipe: the shell does not wait for the `sleep`.
  timeout 10 ip netns exec "$WAN" openssl s_client -connect "$SERVER" -CAfile "$CA" -servername tunnel.test \
    "$@" >"$out" 2>&1 < <(sleep 11) || true
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }'
}
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

tunnel_start_server --handshake-timeout 2 --metrics "$TUNNEL_SERVER_ADDR:9100"

echo "--- (f) a token file readable by others is refused at start ---"
cp "$TMP/alpha.token" "$TMP/open.token"
chmod 644 "$TMP/open.token"
rc=0
timeout 10 ip netns exec "$LANA" "$DPMD" service-proxy --server "$SERVER" --ca "$CA" --name alpha \
  --token-file "$TMP/open.token" --service web=10.77.3.2:80 --control-socket "$TMP/sp-open.sock" \
  >"$TMP/sp-open.log" 2>&1 || rc=$?
sed 's/^/  /' "$TMP/sp-open.log"
e2e_check "the proxy exits with an error (status $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
e2e_check "and says the token file is readable by others" grep -q "open.token: readable by others" "$TMP/sp-open.log"
rc=0
timeout 10 ip netns exec "$LANB" "$DPMD" redirector --server "$SERVER" --ca "$CA" --name bob \
  --token-file "$TMP/open.token" --control-socket "$TMP/rd-open.sock" >"$TMP/rd-open.log" 2>&1 || rc=$?
e2e_check "the redirector exits with an error (status $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
e2e_check "and says the token file is readable by others" grep -q "open.token: readable by others" "$TMP/rd-open.log"

echo "--- (a) wrong tokens ---"
proxy_with wrongtoken --server "$SERVER" --ca "$CA" --token-file "$TMP/wrong.token"
e2e_check "the proxy with a wrong token logs 'authentication failed'" \
  e2e_wait_for 10 grep -q "tunnel server refused: authentication failed" "$TMP/sp-wrongtoken.log"
grep -m 1 "refused" "$TMP/sp-wrongtoken.log" | sed 's/^/  /' || true
e2e_check "the server counts it in refused_auth" test "$(refused_auth)" -ge 1
e2e_check "the server logged the refusal" grep -q "proxy refused: authentication failed" "$TMP/tunnel-server.log"
e2e_expect_eq "nothing is published" 0 "$(published_count)"
e2e_expect_eq "the proxy never had a session" 0 "$(e2e_json "$PX_CTL" 's["sessions"]')"
e2e_stop "$PX_PID"
before=$(refused_auth)
e2e_bg "$LANB" "$DPMD" redirector --server "$SERVER" --ca "$CA" --name bob --token-file "$TMP/wrong.token" \
  --control-socket "$TMP/rd-wrongtoken.sock" >"$TMP/rd-wrongtoken.log" 2>&1
bad_rd=$LAST_PID
e2e_check "the redirector with a wrong token logs 'authentication failed'" \
  e2e_wait_for 10 grep -q "tunnel server refused: authentication failed" "$TMP/rd-wrongtoken.log"
e2e_check "the server counts it in refused_auth ($before before)" test "$(refused_auth)" -gt "$before"
e2e_expect_eq "the server lists no redirector" 0 "$(e2e_json "$TS_CTL" 'len([p for p in s["peers"] if p["role"] == "redirector"])')"
e2e_expect_eq "the redirector never had a session" 0 "$(e2e_json "$TMP/rd-wrongtoken.sock" 's["sessions"]')"
e2e_stop "$bad_rd"

echo "--- (b) certificates the proxy does not accept ---"
auth_before=$(refused_auth)
proxy_with otherca --server "$SERVER" --ca "$TMP/pki/other-ca.pem" --token-file "$TMP/alpha.token"
e2e_check "a proxy trusting another CA logs that the server certificate was not accepted" \
  e2e_wait_for 10 grep -q "server certificate not accepted" "$TMP/sp-otherca.log"
grep -m 1 "not accepted" "$TMP/sp-otherca.log" | sed 's/^/  /' || true
sleep 1.5  # a retry or two
e2e_expect_eq "it never gets a session" "0 False" \
  "$(e2e_json "$PX_CTL" 's["sessions"]') $(e2e_json "$PX_CTL" 's["state"] == "up"')"
e2e_stop "$PX_PID"

e2e_bg "$WAN" "$DPMD" tunnel-server --listen "$TUNNEL_SERVER_ADDR:7444" --cert "$TMP/pki/expired.pem" \
  --key "$TMP/pki/expired.key" --access "$TMP/access.json" --control-socket "$TMP/ts-expired.sock" \
  >"$TMP/tunnel-server-expired.log" 2>&1
expired_ts=$LAST_PID
e2e_wait_for 10 grep -q "listening on" "$TMP/tunnel-server-expired.log" || e2e_fail "the expired server did not start"
proxy_with expired --server "$TUNNEL_SERVER_ADDR:7444" --ca "$CA" --token-file "$TMP/alpha.token"
e2e_check "a server with an expired certificate: the proxy logs 'certificate has expired'" \
  e2e_wait_for 10 grep -q "server certificate not accepted: certificate has expired" "$TMP/sp-expired.log"
e2e_expect_eq "it never gets a session" 0 "$(e2e_json "$PX_CTL" 's["sessions"]')"
e2e_expect_eq "the expired server published nothing, authenticated no one" "0 0" \
  "$(e2e_json "$TMP/ts-expired.sock" 'len(s["services"])') $(e2e_json "$TMP/ts-expired.sock" 'len(s["peers"])')"
e2e_stop "$PX_PID"
e2e_stop "$expired_ts"

proxy_with wrongname --server "$SERVER" --ca "$CA" --token-file "$TMP/alpha.token" --server-name wrong.test
e2e_check "a wrong --server-name: the proxy logs 'hostname mismatch'" \
  e2e_wait_for 10 grep -q "server certificate not accepted: hostname mismatch" "$TMP/sp-wrongname.log"
e2e_expect_eq "it never gets a session" 0 "$(e2e_json "$PX_CTL" 's["sessions"]')"
e2e_stop "$PX_PID"
e2e_expect_eq "none of them reached the server's authentication" "$auth_before" "$(refused_auth)"
e2e_expect_eq "nothing is published" 0 "$(published_count)"

echo "--- (c) a handshake held open ---"
out=$(wan_probe silent)
echo "  a silent TCP connection: $out"
e2e_check "is closed by the server (EOF) after 1.5-6 s" \
  sh -c "[ '${out%% *}' = EOF ] && awk -v t='${out#* }' 'BEGIN { exit !(t >= 1.5 && t < 6) }'"
e2e_check "the server counts a handshake timeout" test "$(counter handshake_timeouts)" -ge 1
secs=$(s_client_seconds "$TMP/s_client-nohello.txt" -alpn dpm-tunnel/1 -verify_return_error)
e2e_check "a TLS client (chain verified) got ALPN dpm-tunnel/1" \
  sh -c "grep -q 'ALPN protocol: dpm-tunnel/1' '$TMP/s_client-nohello.txt' && grep -q 'Verify return code: 0 (ok)' '$TMP/s_client-nohello.txt'"
e2e_check "and, sending no HELLO, is closed by the server within 6 s (${secs} s)" lt "$secs" 6
out=$(ip netns exec "$WAN" "$PY" "$E2E_DIR/tunnel_tls_probe.py" "$TUNNEL_SERVER_ADDR" "$TUNNEL_PORT" "$CA" partial-hello)
echo "  TLS, then 6 bytes of a HELLO and nothing more: $out"
e2e_check "is closed by the server (EOF) after 1.5-6 s" \
  sh -c "[ '${out%% *}' = EOF ] && awk -v t='${out#* }' 'BEGIN { exit !(t >= 1.5 && t < 6) }'"
e2e_check "the server counts the three handshake timeouts" test "$(counter handshake_timeouts)" -ge 3

echo "--- (g) clients of other protocols ---"
tls_before=$(counter tls_failures)
out=$(wan_probe http)
echo "  plain HTTP to the TLS port: $out"
e2e_check "is closed within 6 s" sh -c "case '${out%% *}' in EOF|RESET|DATA) true;; *) false;; esac"
e2e_check "the server counts a TLS failure" test "$(counter tls_failures)" -gt "$tls_before"
secs=$(s_client_seconds "$TMP/s_client-h2.txt" -alpn h2)
e2e_check "a TLS client offering only ALPN h2 is refused (no_application_protocol) within 6 s (${secs} s)" \
  sh -c "grep -qi 'no application protocol' '$TMP/s_client-h2.txt' && awk -v t='$secs' 'BEGIN { exit !(t < 6) }'"
secs=$(s_client_seconds "$TMP/s_client-noalpn.txt")
e2e_check "a TLS client offering no ALPN is refused (no_application_protocol) within 6 s (${secs} s)" \
  sh -c "grep -qi 'no application protocol' '$TMP/s_client-noalpn.txt' && awk -v t='$secs' 'BEGIN { exit !(t < 6) }'"
out=$(ip netns exec "$WAN" "$PY" "$E2E_DIR/tunnel_tls_probe.py" "$TUNNEL_SERVER_ADDR" "$TUNNEL_PORT" "$CA" hello-no-alpn \
  bob "$TMP/bob.token")
echo "  TLS offering no ALPN, then a valid HELLO of bob: $out"
e2e_check "is refused during the handshake: no WELCOME" test "${out%% *}" = TLS-ERROR
e2e_check "the server counted the TLS failures" test "$(counter tls_failures)" -ge $((tls_before + 4))
e2e_check "the server still runs" kill -0 "$TS_PID"
e2e_expect_eq "and its status answers" tunnel-server "$(e2e_json "$TS_CTL" 's["role"]')"
e2e_expect_eq "it holds none of these connections" 0 "$(e2e_json "$TS_CTL" 's["connections"]')"
# A TLS server with the right certificate that ignores ALPN: the proxy does not go on.
e2e_bg "$WAN" openssl s_server -accept "$TUNNEL_SERVER_ADDR:7445" -cert "$TMP/pki/server.pem" \
  -key "$TMP/pki/server.key" -tls1_3 -www >"$TMP/s_server.txt" 2>&1
s_server=$LAST_PID
e2e_wait_for 10 ip netns exec "$WAN" bash -c "exec 3<>/dev/tcp/$TUNNEL_SERVER_ADDR/7445" || e2e_fail "s_server did not start"
proxy_with noalpn --server "$TUNNEL_SERVER_ADDR:7445" --ca "$CA" --token-file "$TMP/alpha.token"
e2e_check "a server that selects no ALPN: the proxy logs it and sends no HELLO" \
  e2e_wait_for 10 grep -q "the server did not select ALPN dpm-tunnel/1" "$TMP/sp-noalpn.log"
e2e_expect_eq "it never gets a session" 0 "$(e2e_json "$PX_CTL" 's["sessions"]')"
e2e_stop "$PX_PID"
e2e_stop "$s_server"
tunnel_start_proxy
e2e_check "a good proxy then connects" e2e_wait_for 20 tunnel_up "$SP_CTL"
e2e_check "and publishes web.alpha.dpm.internal" e2e_wait_for 10 tunnel_published web.alpha.dpm.internal

echo "--- (d) probing for service names ---"
tunnel_start_redirector bob
e2e_check "bob's session comes up" e2e_wait_for 20 tunnel_up "$RD_CTL"
services_before=$(e2e_json "$TS_CTL" 'sorted(x["name"] for x in s["services"])')
probe() {
  ip netns exec "$LANB" timeout 60 "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- "$PY" "$E2E_DIR/tunnel_connect_errno.py" \
    "$1" 80 "$2" 2>&1 | tail -n 1
}
for mode in blocking nonblocking; do
  e2e_expect_eq "web.alpha (allowed), $mode" OK "$(probe web.alpha.dpm.internal "$mode")"
  answers=""
  for name in echo.alpha nosuch.alpha ghost.alpha web.nosuchproxy; do
    answers="$answers $name=$(probe "$name.dpm.internal" "$mode")"
  done
  e2e_expect_eq "forbidden, unknown, permitted-unpublished and unknown-proxy names alike, $mode" \
    " echo.alpha=EACCES nosuch.alpha=EACCES ghost.alpha=EACCES web.nosuchproxy=EACCES" "$answers"
done
e2e_expect_eq "the server's services list did not grow from the probes" "$services_before" \
  "$(e2e_json "$TS_CTL" 'sorted(x["name"] for x in s["services"])')"
e2e_expect_eq "no entry for any probed name" False \
  "$(e2e_json "$TS_CTL" 'any(x["name"].split(".")[0] in ("nosuch", "ghost") or ".nosuchproxy." in x["name"] for x in s["services"])')"
e2e_expect_eq "the redirector was told only of web.alpha" "['web.alpha.dpm.internal']" "$(e2e_json "$RD_CTL" 's["services"]')"

echo "--- (h) a second proxy for names already held ---"
# Names are under the proxy's own name, so taking alpha's names needs alpha's token: another
# token is refused and alpha's session goes on; alpha's own token replaces the old connection.
# another_alpha TOKEN_FILE NAME : one more proxy named alpha with that token; pid in $LAST_PID,
# log $TMP/sp-NAME.log.
another_alpha() {
  e2e_bg "$LANA" "$DPMD" service-proxy --server "$TUNNEL_SERVER_ADDR:$TUNNEL_PORT" --ca "$TMP/pki/ca.pem" \
    --name alpha --token-file "$1" --service web=10.77.3.2:80 --control-socket "$TMP/sp-$2.sock" \
    >"$TMP/sp-$2.log" 2>&1
}
cp "$TMP/bob.token" "$TMP/not-alpha.token"
another_alpha "$TMP/not-alpha.token" impostor
impostor=$LAST_PID
e2e_check "a proxy named alpha without alpha's token is refused" \
  e2e_wait_for 10 grep -q "tunnel server refused: authentication failed" "$TMP/sp-impostor.log"
e2e_stop "$impostor"
e2e_expect_eq "alpha's first connection still holds web.alpha" OK "$(probe web.alpha.dpm.internal blocking)"
first_peer=$(e2e_json "$TS_CTL" '[p["address"] for p in s["peers"] if p["role"] == "proxy"]')
another_alpha "$TMP/alpha.token" second
second=$LAST_PID
e2e_check "a second connection with alpha's token takes the names over" \
  e2e_wait_for 10 grep -q "replaced by a new connection of the same proxy" "$TMP/tunnel-server.log"
e2e_check "the server holds one proxy connection, the new one" e2e_wait_for 5 sh -c \
  "[ \"\$('$DPMD' status --api-socket '$TS_CTL' --json | '$PY' -c 'import json,sys; print([p[\"address\"] for p in json.load(sys.stdin)[\"peers\"] if p[\"role\"] == \"proxy\"])')\" != \"$first_peer\" ]"
e2e_expect_eq "web.alpha works through it" OK "$(probe web.alpha.dpm.internal blocking)"
e2e_stop "$second"

echo "--- (e) tokens are never logged ---"
for ctl in "$TS_CTL" "$SP_CTL" "$RD_CTL"; do
  n=$(basename "$ctl" .sock)
  "$DPMD" status --api-socket "$ctl" >"$TMP/status-$n.txt"
  "$DPMD" status --api-socket "$ctl" --json >"$TMP/status-$n.json"
done
ip netns exec "$WAN" curl -s "http://$TUNNEL_SERVER_ADDR:9100/metrics" >"$TMP/status-metrics.txt"
e2e_check "the role logs and status outputs exist" test -s "$TMP/tunnel-server.log" -a -s "$TMP/service-proxy.log" \
  -a -s "$TMP/status-ts.json" -a -s "$TMP/status-metrics.txt"
for who in alpha bob eve wrong; do
  tok=$(cat "$TMP/$who.token")
  # The check can fail: the token is in the access file (or its own file), so grep finds it there.
  e2e_check "$who's token is found where it belongs" grep -rqF "$tok" "$TMP/access.json" "$TMP/wrong.token"
  e2e_check "$who's token is in no log, status or metrics" sh -c "! grep -qF '$tok' '$TMP'/*.log '$TMP'/status-*"
done
e2e_finish
