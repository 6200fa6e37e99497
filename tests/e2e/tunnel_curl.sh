#!/usr/bin/env bash
# e2e.tunnel_curl (root): TCP service tunneling across two private networks, each behind its own
# `dpmd gateway` (docs/tunnel.md). A service proxy in network A publishes nginx, sshd and a TCP
# echo of A to the tunnel server outside; in network B unmodified programs run under
# `dpm-run --tunnel` and reach them by pseudo DNS name through the redirector.
# Asserts: curl fetches a 3 MB file from nginx in A by name (checksum); ssh runs a command on
# the sshd in A; a half-close travels both ways; a program's reset reaches the real server as an
# RST, and a real server's reset ends the program's stream (EOF, ECONNRESET or, when it came
# before the proxy's connect was answered, ECONNREFUSED); 1,000 concurrent tunneled echo
# connections each get their own bytes back; the
# hook resolves only pseudo names (a name outside the suffix goes to the C library); each role's
# status lists the service and its streams, the server's metrics count them; nginx saw every
# request from the proxy's side of network A, never from B.
source "$(dirname "$0")/tunnel_lib.sh"
e2e_require_root tunnel_curl
e2e_require_cmd curl ssh ssh-keygen /usr/sbin/sshd openssl
e2e_require_preload
e2e_init tunnel_curl

tunnel_topology
tunnel_pki
tunnel_access
mkdir -p "$TMP/www"
head -c 3000000 /dev/urandom >"$TMP/www/file.bin"
tunnel_servers "$TMP/www"

e2e_sshd "$SRVA" 10.77.3.2:22 ssh.alpha.dpm.internal

tunnel_start_server --metrics "$TUNNEL_SERVER_ADDR:9100"
tunnel_start_proxy --service reset=10.77.3.2:8 --service sink=10.77.3.2:9
e2e_check "the proxy's session comes up" e2e_wait_for 20 tunnel_up "$SP_CTL"
e2e_check "the server publishes web.alpha.dpm.internal" e2e_wait_for 10 tunnel_published web.alpha.dpm.internal
tunnel_start_redirector bob
e2e_check "the redirector's session comes up" e2e_wait_for 20 tunnel_up "$RD_CTL"

echo "--- the hook resolves pseudo names only ---"
e2e_require_test_program e2e_tunnel_resolve
out=$(tunnel_run "$TEST_PROGRAM" resolve web.alpha.dpm.internal 2>&1 || true)
echo "$out" | sed 's/^/  /'
e2e_check "getaddrinfo gives a pseudo address in 100.64.0.0/10" grep -Eq 'getaddrinfo web.alpha.dpm.internal -> 100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.' <<<"$out"
out=$(tunnel_run getent ahostsv4 localhost 2>&1 || true)
e2e_check "a name outside the suffix goes to the C library (localhost -> 127.0.0.1)" grep -q '^127\.0\.0\.1' <<<"$out"

echo "--- curl by pseudo name across both gateways ---"
rc=0
tunnel_run curl -sS --max-time 60 -o "$TMP/got.bin" http://web.alpha.dpm.internal/file.bin 2>"$TMP/curl.err" || rc=$?
cat "$TMP/curl.err"
e2e_expect_eq "curl exit status" 0 "$rc"
e2e_expect_eq "the file arrived intact" "$(sha "$TMP/www/file.bin")" "$(sha "$TMP/got.bin" 2>/dev/null || echo none)"
e2e_check "nginx saw the request from network A's side (the proxy, 10.77.3.1)" \
  e2e_wait_for 5 grep -q '^10\.77\.3\.1 .*GET /file.bin' "$TMP/nginx-access.log"

echo "--- ssh runs a command on the sshd in network A ---"
rc=0
out=$(timeout 60 ip netns exec "$LANB" "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- ssh -F /dev/null -i "$TMP/id" \
  -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$TMP/known_hosts" -o StrictHostKeyChecking=yes \
  -o CheckHostIP=no -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=20 root@ssh.alpha.dpm.internal \
  echo hello-from-network-a 2>"$TMP/ssh.err") || rc=$?
sed 's/^/  /' "$TMP/ssh.err"
e2e_expect_eq "ssh ran the command" "0 hello-from-network-a" "$rc $out"

echo "--- half-close and reset cross the tunnel ---"
# The program writes, shuts its write side and reads to end-of-file: the echo server sees the
# end (END_STREAM, then shutdown at the proxy), echoes and closes, and the program's read ends.
out=$(tunnel_run "$TEST_PROGRAM" connect echo.alpha.dpm.internal 7 half-closed 2>&1 || true)
echo "$out" | sed 's/^/  /'
e2e_check "a half-close travels both ways (the echo and then end-of-file)" grep -q "received 11 bytes: half-closed" <<<"$out"
# A program that closes with unread data resets its connection: the real server sees the reset
# (RST_STREAM CONNECT_ERROR along the chain, then an RST from the proxy).
e2e_bg "$SRVA" "$PY" "$E2E_DIR/peers.py" tcp-sender 10.77.3.2 9 "$TMP/sender.result"
e2e_wait_for 10 ip netns exec "$SRVA" sh -c "ss -ltn | grep -q 10.77.3.2:9" || e2e_fail "the sending server did not start"
tunnel_run "$PY" -c 'import socket, time
s = socket.create_connection(("sink.alpha.dpm.internal", 9), timeout=10)
s.recv(1000); time.sleep(0.5); s.close()' || true
e2e_check "a reset by the program reaches the real server as a reset" \
  e2e_wait_for 10 grep -qx reset "$TMP/sender.result"
# A real server that resets: the program's stream ends — end-of-file, or ECONNRESET when the
# reset came before the program asked (SO_ERROR, as the kernel reports it), or ECONNREFUSED
# when it reached the proxy before its connect to the server had been answered — and does
# not hang. Any other outcome is printed by name.
e2e_bg "$SRVA" "$PY" "$E2E_DIR/peers.py" tcp-resetter 10.77.3.2 8 "$TMP/resetter.log"
e2e_wait_for 10 grep -q ready "$TMP/resetter.log" || e2e_fail "the resetting server did not start"
out=$(timeout 20 ip netns exec "$LANB" "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- "$PY" -c 'import errno, socket
try:
    s = socket.create_connection(("reset.alpha.dpm.internal", 8), timeout=10)
    print("eof" if s.recv(100) == b"" else "data")
except ConnectionResetError:
    print("reset")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print(errno.errorcode.get(e.errno, repr(e)))' 2>&1 | tail -n 1) || true
e2e_check "a reset by the real server ends the program's stream ($out)" grep -Eqx "eof|reset|refused" <<<"$out"

echo "--- 1,000 concurrent tunneled echo connections ---"
rc=0
out=$(ulimit -n 8192; tunnel_run "$PY" "$E2E_DIR/tunnel_echo_many.py" echo.alpha.dpm.internal 7 1000 4096 2>&1) || rc=$?
echo "$out" | sed 's/^/  /'
e2e_expect_eq "every one of 1,000 streams echoed its own bytes" "0 ok 1000" "$rc $(grep -o '^ok [0-9]*' <<<"$out" || echo "$out" | tail -n 1)"

echo "--- status and metrics ---"
"$DPMD" status --api-socket "$TS_CTL" | sed 's/^/  /'
"$DPMD" status --api-socket "$SP_CTL" | sed 's/^/  /'
"$DPMD" status --api-socket "$RD_CTL" | sed 's/^/  /'
opened=$(e2e_json "$TS_CTL" "[x['streams_opened'] for x in s['services'] if x['name'] == 'echo.alpha.dpm.internal'][0]")
e2e_check "the server counted at least 1,000 echo streams ($opened)" test "$opened" -ge 1000
e2e_expect_eq "the proxy lists web, its target, published" True \
  "$(e2e_json "$SP_CTL" "any(x['service'] == 'web' and x['target'] == '10.77.3.2:80' and x['published'] for x in s['services'])")"
e2e_expect_eq "the redirector lists the services it may use" True \
  "$(e2e_json "$RD_CTL" "set(s['services']) == {'web.alpha.dpm.internal', 'ssh.alpha.dpm.internal', 'echo.alpha.dpm.internal', 'reset.alpha.dpm.internal', 'sink.alpha.dpm.internal'}")"
metrics=$(ip netns exec "$WAN" curl -s "http://$TUNNEL_SERVER_ADDR:9100/metrics")
e2e_check "the metrics count web's streams" grep -Eq '^dpm_tunnel_streams_total\{service="web.alpha.dpm.internal"\} [1-9]' <<<"$metrics"
e2e_check "and its bytes from the service" grep -Eq '^dpm_tunnel_bytes_total\{service="web.alpha.dpm.internal",direction="from_service"\} [0-9]{7}' <<<"$metrics"
e2e_check "all streams end: none open at the server" e2e_wait_for 10 sh -c "[ \"\$('$DPMD' status --api-socket '$TS_CTL' --json | '$PY' -c 'import json,sys; print(json.load(sys.stdin)[\"streams\"])')\" = 0 ]"
e2e_finish
