#!/usr/bin/env bash
# e2e.preload_python: Debian's Python asyncio (epoll selector, non-blocking connect and accept)
# under dpm-run, with checksums (tests/e2e/asyncio_peer.py).
#  - client: three connections at once from the hooked program to a kernel asyncio echo server
#    in "wan"; every echo's sha256 matches, the server saw them come from the stack
#    (10.77.1.2), and the client's own getsockname() says the same.
#  - refused: open_connection to a closed port in "wan" raises ConnectionRefusedError
#    (ECONNREFUSED, which asyncio reads from SO_ERROR once the socket is writable).
#  - server: asyncio.start_server under dpm-run listens inside the stack; a kernel client in
#    "wan" exchanges three echoes with it through 10.77.1.2; the daemon lists the listener.
# Each part runs first on the kernel alone (client and server in "host") as the control.
source "$(dirname "$0")/lib.sh"
e2e_require_root preload_python
e2e_require_cmd /usr/bin/python3
e2e_init preload_python
e2e_topology
PYTHON=/usr/bin/python3  # Debian's, not a pyenv shim: what the hook is documented for
PEER=$E2E_DIR/asyncio_peer.py
SIZES=(1000 300001 3000017)

e2e_bg "$WAN" "$PYTHON" "$PEER" server 198.51.100.10 8000 "$TMP/wan.ready" >"$TMP/wan-server.log" 2>&1
e2e_wait_for 10 test -e "$TMP/wan.ready" || e2e_fail "the server in wan did not start"

# client_checks LABEL OUT SOURCE : the client's output OUT shows every size echoed intact, from
# SOURCE, with the epoll selector; the wan server saw each connection from SOURCE.
client_checks() {
  local label=$1 out=$2 src=$3 s
  sed 's/^/  /' "$out"
  e2e_check "$label: asyncio's selector is epoll" grep -qx 'selector EpollSelector' "$out"
  for s in "${SIZES[@]}"; do
    e2e_check "$label: $s bytes echoed with a matching sha256, sent from $src" \
      grep -Eq "^client ${src//./\\.}:[0-9]+ $s sha256-ok$" "$out"
    e2e_check "$label: the server in wan served $s bytes to $src" \
      e2e_wait_for 5 grep -Eq "^served ${src//./\\.}:[0-9]+ on 198\.51\.100\.10:8000 $s$" "$TMP/wan-server.log"
  done
}

echo "--- control: the kernel in \"host\" ---"
rc=0
timeout 60 ip netns exec "$HOST" "$PYTHON" "$PEER" client 198.51.100.10 8000 "${SIZES[@]}" >"$TMP/k-client.out" 2>&1 || rc=$?
e2e_expect_eq "kernel: the client's exit status" 0 "$rc"
client_checks kernel "$TMP/k-client.out" 198.51.100.1
rc=0
timeout 60 ip netns exec "$HOST" "$PYTHON" "$PEER" refused 198.51.100.10 8009 >"$TMP/k-refused.out" 2>&1 || rc=$?
e2e_expect_eq "kernel: a closed port raises ConnectionRefusedError (ECONNREFUSED)" \
  "0 refused ConnectionRefusedError errno ECONNREFUSED" "$rc $(cat "$TMP/k-refused.out")"
e2e_bg "$HOST" "$PYTHON" "$PEER" server 0.0.0.0 8100 "$TMP/k.ready" >"$TMP/k-server.log" 2>&1
K_SERVER=$LAST_PID
e2e_wait_for 10 test -e "$TMP/k.ready" || e2e_fail "the kernel server in host did not start"
rc=0
timeout 60 ip netns exec "$WAN" "$PYTHON" "$PEER" client 198.51.100.1 8100 "${SIZES[@]}" >"$TMP/k-wanclient.out" 2>&1 || rc=$?
e2e_expect_eq "kernel: a client in wan got every echo from the server in host" 0 "$rc"
e2e_stop "$K_SERVER"

e2e_require_preload
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24
opened_before=$(e2e_json "$API" 's["sockets_opened"]')

echo "--- asyncio client under dpm-run ---"
rc=0
timeout 60 ip netns exec "$HOST" "$DPMRUN" --api-socket "$API" -- "$PYTHON" "$PEER" client 198.51.100.10 8000 "${SIZES[@]}" \
  >"$TMP/d-client.out" 2>&1 || rc=$?
e2e_expect_eq "dpm-run: the client's exit status" 0 "$rc"
client_checks dpm-run "$TMP/d-client.out" 10.77.1.2
e2e_check "the daemon opened a socket for each connection (sockets_opened grew by at least 3)" \
  test "$(e2e_json "$API" 's["sockets_opened"]')" -ge $((opened_before + 3))

echo "--- connect to a closed port under dpm-run ---"
rc=0
timeout 60 ip netns exec "$HOST" "$DPMRUN" --api-socket "$API" -- "$PYTHON" "$PEER" refused 198.51.100.10 8009 \
  >"$TMP/d-refused.out" 2>&1 || rc=$?
e2e_expect_eq "dpm-run: a closed port raises ConnectionRefusedError (ECONNREFUSED)" \
  "0 refused ConnectionRefusedError errno ECONNREFUSED" "$rc $(cat "$TMP/d-refused.out")"
e2e_check "the daemon holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API"

echo "--- asyncio server under dpm-run, inside the stack ---"
e2e_bg "$HOST" "$DPMRUN" --api-socket "$API" -- "$PYTHON" "$PEER" server 0.0.0.0 8100 "$TMP/d.ready" >"$TMP/d-server.log" 2>&1
D_SERVER=$LAST_PID
e2e_wait_for 10 test -e "$TMP/d.ready" || { cat "$TMP/d-server.log"; e2e_fail "the server under dpm-run did not start"; }
e2e_expect_eq "the daemon lists the server's listener" "tcp listening 0.0.0.0:8100" \
  "$(e2e_json "$API" '" ".join(x["proto"] + " " + x["state"] + " " + x["local"] for x in s["sockets"])')"
rc=0
timeout 60 ip netns exec "$WAN" "$PYTHON" "$PEER" client 10.77.1.2 8100 "${SIZES[@]}" >"$TMP/d-wanclient.out" 2>&1 || rc=$?
sed 's/^/  /' "$TMP/d-wanclient.out"
e2e_expect_eq "a kernel client in wan got every echo from the server in the stack" 0 "$rc"
for s in "${SIZES[@]}"; do
  e2e_check "the server under dpm-run served $s bytes to 198.51.100.10 on 10.77.1.2:8100" \
    e2e_wait_for 5 grep -Eq "^served 198\.51\.100\.10:[0-9]+ on 10\.77\.1\.2:8100 $s$" "$TMP/d-server.log"
done
sed 's/^/  /' "$TMP/d-server.log"
e2e_stop "$D_SERVER"
e2e_check "the daemon holds no socket, no listener and no active pcb once the server is gone" \
  e2e_wait_for 5 e2e_idle "$API"
e2e_finish
