#!/usr/bin/env bash
# e2e.vpm_cooperative (no root): cooperative virtual port multiplexing (docs/vpm.md
# "Cooperative mode"; the virtual port multiplexing patent, Figs. 6-7). Two dpm instances on a
# virtual link: A (10.77.9.1) connects, B (10.77.9.2) serves. On B two unmodified Python web
# servers of AIDs green and blue both listen on port 9000 (dpm-run --aid); B's port refuses
# every connection that was not negotiated. A's configurator names B as a cooperative peer for
# tcp/9000, and unmodified programs on A (curl, Python) connect with dpm-run --aid; a libdpm
# program (dpm-cat) that sets no AID gets its peer entry's default.
# Asserts: curl with AID green gets the green site and with blue the blue one (each several
# times); the green server's getsockname() and the Python client's getpeername() both say
# 9000; A's link capture shows the connections on B's hidden ports only (never 9000), every TCP
# checksum good, and the negotiation as PCP on UDP 5351 (tshark decodes opcode 96 and the
# result codes); B's status lists negotiated flows and counts the answers, A's the client
# flows; after B reloads its file to accept another prefix, A's connect gets EACCES
# (NOT_AUTHORIZED); connected UDP sockets on A reach the UDP servers of their AIDs on port 9053 of B the
# same way (the datagrams on B's hidden ports); a connection straight to a hidden port is refused (ECONNREFUSED, from A without the
# negotiation: a peer that is not cooperative); an AID with no server on B gets ECONNREFUSED
# (VPM_NO_LISTENER), a peer that never answers ETIMEDOUT after the file's timeout, and a
# socket with no AID EACCES.
source "$(dirname "$0")/preload_lib.sh"
e2e_require_cmd curl tshark
e2e_init vpm_cooperative
e2e_require_preload

cat >"$TMP/server.json" <<'JSON'
{
  "hidden_ports": "12760-12769",
  "ports": { "tcp/9000": { "default": "refuse" }, "tcp/9002": { "default": "refuse" },
             "udp/9053": { "default": "refuse" } },
  "cooperative": { "accept": ["10.77.9.0/24"] }
}
JSON
cat >"$TMP/client.json" <<'JSON'
{
  "cooperative": {
    "timeout_ms": 1500,
    "peers": [ { "destinations": ["10.77.9.2/32", "10.77.9.3/32"], "ports": ["tcp/9000", "udp/9053"] },
               { "destinations": ["10.77.9.2/32"], "ports": ["tcp/9002"], "default": "green" } ]
  }
}
JSON
API_A=$TMP/a.sock
API_B=$TMP/b.sock
e2e_dpmd - "$API_B" --virtual "$TMP/b.link,$TMP/a.link" --address 10.77.9.2/24 --gateway '' \
  --vpm-config "$TMP/server.json"
DPMD_B=$DPMD_PID
e2e_dpmd - "$API_A" --virtual "$TMP/a.link,$TMP/b.link" --address 10.77.9.1/24 --gateway '' \
  --vpm-config "$TMP/client.json" --pcap "$TMP/a.pcap"

# A web server answering "site NAME, local port P" (P: its getsockname() for the connection).
SERVER='import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2])))
s.listen(16)
print("listening", flush=True)
while True:
    c, peer = s.accept()
    c.recv(4096)
    body = ("site %s, local port %d\n" % (sys.argv[1], c.getsockname()[1])).encode()
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    c.close()'
for aid in green blue; do
  e2e_bg - "$DPMRUN" --api-socket "$API_B" --aid "$aid" -- "$PY" -c "$SERVER" "$aid" 9000 >"$TMP/$aid.out" 2>&1
  e2e_wait_for 10 grep -q listening "$TMP/$aid.out" || { cat "$TMP/$aid.out" >&2; e2e_fail "the $aid server did not start"; }
done
e2e_bg - "$DPMRUN" --api-socket "$API_B" --aid green -- "$PY" -c "$SERVER" green 9002 >"$TMP/green9002.out" 2>&1
e2e_wait_for 10 grep -q listening "$TMP/green9002.out" || e2e_fail "the green server on 9002 did not start"
e2e_status "$API_B" | sed -n '/^virtual ports/,/flows/p' | sed 's/^/  B: /'

echo "--- curl on A reaches the server of its AID on port 9000 ---"
fetch() { "$DPMRUN" --api-socket "$API_A" --aid "$1" -- curl -sS --max-time 10 http://10.77.9.2:9000/ 2>&1 || true; }
for i in 1 2 3; do
  e2e_expect_eq "curl with AID green, try $i" "site green, local port 9000" "$(fetch green)"
  e2e_expect_eq "curl with AID blue, try $i" "site blue, local port 9000" "$(fetch blue)"
done

# A client reporting its connect() result by errno name, and getpeername()'s port.
CLIENT='import errno, socket, sys
s = socket.socket()
try:
    s.connect((sys.argv[1], 9000))
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno)); sys.exit(0)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
data = b""
while True:
    d = s.recv(4096)
    if not d: break
    data += d
print("peer port %d: %s" % (s.getpeername()[1], data.split(b"\r\n\r\n", 1)[-1].decode().strip()))'
connect_as() { "$DPMRUN" --api-socket "$API_A" ${1:+--aid "$1"} -- "$PY" -c "$CLIENT" "$2" 2>&1; }
e2e_expect_eq "both programs see port 9000 (Python client, AID green)" "peer port 9000: site green, local port 9000" \
  "$(connect_as green 10.77.9.2)"

# A libdpm program that sets no AID: the peer entry's default (green) is its AID.
cat_out=$(printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 "$DPMCAT" --socket "$API_A" -q -N 10.77.9.2 9002 2>&1 | tail -n 1)
e2e_expect_eq "dpm-cat (libdpm, no AID) on port 9002: the entry's default AID, green" "site green, local port 9002" \
  "$cat_out"

echo "--- refusals and timeouts reach connect() as errno ---"
e2e_expect_eq "an AID with no server on B (VPM_NO_LISTENER)" ECONNREFUSED "$(connect_as red 10.77.9.2)"
t0=$(date +%s%N)
e2e_expect_eq "a cooperative peer that never answers" ETIMEDOUT "$(connect_as green 10.77.9.3)"
ms=$((($(date +%s%N) - t0) / 1000000))
e2e_check "ETIMEDOUT after the file's timeout_ms of 1500 ($ms ms)" test "$ms" -ge 1400 -a "$ms" -lt 6000
e2e_expect_eq "a socket with no AID, no rule and no default" EACCES "$(connect_as '' 10.77.9.2)"

echo "--- a connected UDP socket negotiates too ---"
UDP_SERVER='import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9053))
print("listening", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b"%s on %d: %s" % (sys.argv[1].encode(), s.getsockname()[1], data), peer)'
for aid in green blue; do
  e2e_bg - "$DPMRUN" --api-socket "$API_B" --aid "$aid" -- "$PY" -c "$UDP_SERVER" "$aid" >"$TMP/udp-$aid.out" 2>&1
  e2e_wait_for 10 grep -q listening "$TMP/udp-$aid.out" || { cat "$TMP/udp-$aid.out" >&2; e2e_fail "the UDP $aid server did not start"; }
done
UDP_CLIENT='import errno, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
try:
    s.connect(("10.77.9.2", 9053))
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno)); sys.exit(0)
s.send(b"hello")
print("peer port %d: %s" % (s.getpeername()[1], s.recv(2048).decode()))'
udp_as() { "$DPMRUN" --api-socket "$API_A" --aid "$1" -- "$PY" -c "$UDP_CLIENT" 2>&1; }
e2e_expect_eq "UDP with AID green reaches the green server; both see 9053" "peer port 9053: green on 9053: hello" \
  "$(udp_as green)"
e2e_expect_eq "UDP with AID blue reaches the blue server" "peer port 9053: blue on 9053: hello" "$(udp_as blue)"
e2e_expect_eq "UDP connect() with an AID that has no server on B" ECONNREFUSED "$(udp_as red)"

echo "--- B's hidden ports take only negotiated connections ---"
hidden=$(e2e_json "$API_B" '[x["hidden_port"] for x in s["vpm"]["streams"] if x["aid"] == "green"][0]')
# From B itself (no negotiation): the connection comes in on the hidden port, un-negotiated.
direct=$("$DPMRUN" --api-socket "$API_A" -- "$PY" -c 'import errno, socket, sys
s = socket.socket()
try:
    s.connect(("10.77.9.2", int(sys.argv[1]))); print("connected")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))' "$hidden" 2>&1)
e2e_expect_eq "a connect straight to green's hidden port $hidden" ECONNREFUSED "$direct"

echo "--- status ---"
e2e_status "$API_B" | sed -n '/^virtual ports/,$p' | sed 's/^/  B: /'
e2e_status "$API_A" | sed -n '/^virtual ports/,$p' | sed 's/^/  A: /'
answers=$(e2e_json "$API_B" '" ".join("%s:%d" % kv for kv in sorted(s["vpm"]["cooperative"]["server"]["answers"].items()))')
e2e_expect_eq "B counts its answers by result" "SUCCESS:10 VPM_NO_LISTENER:2" "$answers"
e2e_expect_eq "B refused the un-negotiated SYN to a hidden port" 1 "$(e2e_json "$API_B" 's["vpm"]["drops"]["hidden_port"]')"
kinds=$(e2e_json "$API_B" '" ".join(sorted(set(f["kind"] for f in s["vpm"]["flows"])))')
e2e_expect_eq "B's flows are negotiated ones" negotiated "$kinds"
client=$(e2e_json "$API_A" '"%d/%d" % (s["vpm"]["cooperative"]["client"]["timeouts"], len([f for f in s["vpm"]["flows"] if f["kind"] == "client"]))')
e2e_expect_eq "A counts the timeout and holds the 10 client flows (timeouts/flows)" 1/10 "$client"

echo "--- B reloaded to take negotiations from 10.77.8.0/24 only: A is not authorized ---"
sed -i 's|10.77.9.0/24|10.77.8.0/24|' "$TMP/server.json"
kill -HUP "$DPMD_B"
reloaded() { [ "$(e2e_json "$API_B" 's["vpm"]["reloads"]')" = 1 ]; }
e2e_wait_for 5 reloaded || true
e2e_expect_eq "a connect after B's reload (NOT_AUTHORIZED)" EACCES "$(connect_as green 10.77.9.2)"
e2e_expect_eq "B counts the NOT_AUTHORIZED answer" 1 \
  "$(e2e_json "$API_B" 's["vpm"]["cooperative"]["server"]["answers"].get("NOT_AUTHORIZED", 0)')"

echo "--- the wire (A's link) ---"
e2e_stop "$DPMD_PID"  # flushes A's capture
ports=$(tshark -r "$TMP/a.pcap" -Y "tcp && ip.dst == 10.77.9.2" -T fields -e tcp.dstport 2>/dev/null | sort -un | xargs)
echo "  B's TCP ports on the link: $ports"
e2e_check "the connections went to B's hidden ports 12760-12769 only, never 9000 ($ports)" \
  "$PY" -c 'import sys; p = [int(x) for x in sys.argv[1].split()]; sys.exit(not (p and all(12760 <= x <= 12769 for x in p)))' "$ports"
count=$(tshark -r "$TMP/a.pcap" -Y "tcp && ip.addr == 10.77.9.2" 2>/dev/null | wc -l)
good=$(tshark -r "$TMP/a.pcap" -o tcp.check_checksum:TRUE -Y "tcp && ip.addr == 10.77.9.2 && tcp.checksum.status == 1" 2>/dev/null | wc -l)
e2e_check "the capture holds the connections ($count TCP packets)" test "$count" -ge 40
e2e_expect_eq "every TCP checksum on the link verifies" "$count" "$good"
uports=$(tshark -r "$TMP/a.pcap" -Y "udp && ip.dst == 10.77.9.2 && !portcontrol" -T fields -e udp.dstport 2>/dev/null | sort -un | xargs)
e2e_check "the UDP datagrams went to B's hidden ports only, never 9053 ($uports)" \
  "$PY" -c 'import sys; p = [int(x) for x in sys.argv[1].split()]; sys.exit(not (len(p) == 2 and all(12760 <= x <= 12769 for x in p)))' "$uports"
ugood=$(tshark -r "$TMP/a.pcap" -o udp.check_checksum:TRUE -Y "udp && !portcontrol && udp.checksum.status == 1" 2>/dev/null | wc -l)
ucount=$(tshark -r "$TMP/a.pcap" -Y "udp && !portcontrol" 2>/dev/null | wc -l)
e2e_expect_eq "every UDP checksum of the datagrams verifies ($ucount)" 4 "$ugood"
pcp=$(tshark -r "$TMP/a.pcap" -Y portcontrol -T fields -e portcontrol.opcode -e portcontrol.result_code 2>/dev/null | sort | uniq -c | awk '{print $2 "/" $3 "x" $1}' | xargs)
echo "  PCP on the link (opcode/result x count): $pcp"
decoded=$(tshark -r "$TMP/a.pcap" -Y portcontrol 2>/dev/null | wc -l)
e2e_check "tshark decodes the negotiation as PCP ($decoded messages)" test "$decoded" -ge 16
e2e_check "requests carry opcode 96" grep -q "96/" <<<"$pcp"
e2e_check "the refusals carry result codes 192 and 2" grep -q "/192.*/2x\|/2x.*/192" <<<"$pcp"
e2e_finish
