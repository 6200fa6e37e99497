#!/usr/bin/env bash
# e2e.udp_both_ways: UDP through dpmd on a TUN device, both directions.
#  (a) dpm-cat -u in the stack talks to a Linux UDP echo server in "wan" and gets its
#      datagrams back; the server saw them come from 10.77.1.2.
#  (b) dpm-cat -u -l 5001 -e in the stack echoes datagrams a Linux client in "wan" sends;
#      the client checks every reply's bytes and that it came from 10.77.1.2:5001.
#  (c) a datagram larger than the MTU crosses in both directions (IP fragmentation and
#      reassembly in lwIP).
source "$(dirname "$0")/lib.sh"
e2e_require_root udp_both_ways
e2e_init udp_both_ways
e2e_topology

API=$TMP/api.sock
PEERS=$E2E_DIR/peers.py
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24

echo "--- (a) stack -> Linux echo server ---"
e2e_bg "$WAN" "$PY" "$PEERS" udp-echo 198.51.100.10 5000 "$TMP/echo.log"
e2e_wait_for 10 grep -q ready "$TMP/echo.log" || e2e_fail "echo server did not start"
# Three writes with pauses between them, so dpm-cat reads (and sends) them as three datagrams.
(printf 'first datagram\n'; sleep 0.3; printf 'second datagram\n'; sleep 0.3; printf 'third\n') |
  timeout 20 ip netns exec "$HOST" "$DPMCAT" --socket "$API" -u -w 1 198.51.100.10 5000 >"$TMP/a.out" 2>"$TMP/a.err" ||
  echo "dpm-cat exited with $?"
sed 's/^/  /' "$TMP/a.err"
e2e_expect_eq "the echoed bytes equal the sent bytes" "$(printf 'first datagram\nsecond datagram\nthird\n' | sha256sum)" \
  "$(sha256sum <"$TMP/a.out")"
e2e_expect_eq "the echo server got 3 datagrams" 3 "$(grep -c '^10\.77\.1\.2:' "$TMP/echo.log" || true)"
e2e_expect_eq "every datagram came from the stack's address" 0 "$(grep -v ready "$TMP/echo.log" | grep -vc '^10\.77\.1\.2:' || true)"
src_port=$(grep -m1 '^10\.77\.1\.2:' "$TMP/echo.log" | cut -d' ' -f1 | cut -d: -f2 || true)
e2e_check "dpm-cat's local line names the port the server saw ($src_port)" \
  grep -Eq "^dpm-cat: local [0-9.]+:$src_port peer 198\.51\.100\.10:5000$" "$TMP/a.err"
# A kernel UDP socket's connect() picks the source address, and getsockname() shows it.
e2e_check "getsockname of a connected UDP socket gives the stack's address 10.77.1.2" \
  grep -q "^dpm-cat: local 10\.77\.1\.2:" "$TMP/a.err"

echo "--- (b) Linux client -> stack echo (dpm-cat -u -l 5001 -e) ---"
e2e_bg "$HOST" "$DPMCAT" --socket "$API" -u -l 5001 -e 2>"$TMP/b.err"
CAT_PID=$LAST_PID
e2e_wait_for 10 grep -q '^dpm-cat: local' "$TMP/b.err" || e2e_fail "dpm-cat did not bind"
e2e_check "a Linux client gets 20 datagrams echoed from 10.77.1.2:5001" \
  ip netns exec "$WAN" "$PY" "$PEERS" udp-client 10.77.1.2 5001 20
e2e_check "dpm-cat saw the client's address" grep -Eq '^dpm-cat: datagram from 198\.51\.100\.10:[0-9]+$' "$TMP/b.err"
e2e_stop "$CAT_PID"

echo "--- (c) datagrams over the MTU (fragmented) ---"
e2e_bg "$HOST" "$DPMCAT" --socket "$API" -u -l 5002 -e 2>"$TMP/c.err"
CAT_PID=$LAST_PID
e2e_wait_for 10 grep -q '^dpm-cat: local' "$TMP/c.err" || e2e_fail "dpm-cat did not bind"
e2e_check "a 6000-byte datagram is echoed whole by the stack" ip netns exec "$WAN" "$PY" - <<'EOF'
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
payload = os.urandom(6000)
for attempt in range(3):
    s.sendto(payload, ("10.77.1.2", 5002))
    try:
        data, peer = s.recvfrom(65535)
        break
    except socket.timeout:
        data, peer = None, None
print("  reply: %s bytes from %s" % (len(data) if data else None, peer))
sys.exit(0 if data == payload and peer == ("10.77.1.2", 5002) else 1)
EOF
e2e_stop "$CAT_PID"
e2e_check "the daemon holds no socket afterwards" e2e_wait_for 5 e2e_idle "$API"
e2e_finish
