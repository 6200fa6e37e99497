#!/usr/bin/env bash
# e2e.vpm_udp (root): virtual port multiplexing of UDP (docs/vpm.md). Two DNS-style UDP servers
# (unmodified Python, through dpm-run with --aid red and --aid black) both bind port 53 in one
# `dpmd client`; the configurator sends new flows from 198.51.100.11 to red and everything else
# to black.
# Asserts: both bind port 53 (getsockname gives 53 to each); kernel clients in "wan" asking from
# 198.51.100.10 get black's answer, from 198.51.100.11 red's, each answer from port 53 (a kernel
# socket connected to :53 accepts nothing else) with a UDP checksum the kernel accepted, and
# several clients on several ports each get their own answers; a server that sends first (to
# a new client that never asked) is seen from port 53 and the client's reply comes back to that
# same server; status lists two UDP streams and the flows; the link's capture shows UDP on port
# 53 only, never a hidden port.
source "$(dirname "$0")/preload_lib.sh"
e2e_require_root vpm_udp
e2e_require_cmd tshark
e2e_init vpm_udp
e2e_require_preload
e2e_topology
ip -n "$WAN" addr add 198.51.100.11/24 dev "$VETH_WAN"
ip -n "$WAN" addr add 198.51.100.12/24 dev "$VETH_WAN"

cat >"$TMP/vpm.json" <<'JSON'
{
  "hidden_ports": "41000-41009",
  "ports": { "udp/53": { "default": "black" } },
  "applications": [ { "aid": "red", "ports": ["udp/53"], "sources": ["198.51.100.11/32"] } ]
}
JSON
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
  --vpm-config "$TMP/vpm.json" --pcap "$TMP/link.pcap"

# A server answers every datagram with "NAME:" + the datagram; with a third argument it first
# sends "hello from NAME" to 198.51.100.12:5000 and logs what comes back.
SERVER='import socket, sys
name = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
print("bound", s.getsockname()[1], flush=True)
if len(sys.argv) > 2:
    s.sendto(b"hello from " + name.encode(), ("198.51.100.12", 5000))
while True:
    data, peer = s.recvfrom(2048)
    if peer == ("198.51.100.12", 5000):
        print("got back", data.decode(), flush=True)
        continue
    s.sendto(name.encode() + b":" + data, peer)'
e2e_bg "$HOST" "$DPMRUN" --api-socket "$API" --aid red -- "$PY" -c "$SERVER" red >"$TMP/red.log" 2>&1
e2e_bg "$HOST" "$DPMRUN" --api-socket "$API" --aid black -- "$PY" -c "$SERVER" black >"$TMP/black.log" 2>&1
e2e_check "red bound port 53 (getsockname: 53)" e2e_wait_for 10 grep -qx "bound 53" "$TMP/red.log"
e2e_check "black bound port 53 too (getsockname: 53)" e2e_wait_for 10 grep -qx "bound 53" "$TMP/black.log"

# ask SOURCE SPORT : one question from SOURCE:SPORT on a socket connected to 10.77.1.2:53.
ask() {
  ip netns exec "$WAN" "$PY" -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.connect(("10.77.1.2", 53))
s.settimeout(3)
s.send(b"q%s" % sys.argv[2].encode())
try:
    print(s.recv(2048).decode())
except socket.timeout:
    print("no answer")' "$1" "$2" 2>&1 || true
}
echo "--- each source gets its server ---"
for port in 6001 6002 6003; do
  e2e_expect_eq "from 198.51.100.10:$port (no rule: black)" "black:q$port" "$(ask 198.51.100.10 $port)"
  e2e_expect_eq "from 198.51.100.11:$port (the rule: red)" "red:q$port" "$(ask 198.51.100.11 $port)"
done

echo "--- a server that sends first ---"
ip netns exec "$WAN" "$PY" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.12", 5000))
s.settimeout(10)
data, peer = s.recvfrom(2048)
print(data.decode(), peer[1], flush=True)
s.sendto(b"reply to " + data, peer)' >"$TMP/first.log" 2>&1 &
FIRST=$!
sleep 0.3
e2e_bg "$HOST" "$DPMRUN" --api-socket "$API" --aid red -- "$PY" -c "$SERVER" red2 first >"$TMP/red2.log" 2>&1
wait "$FIRST" || true
e2e_expect_eq "its datagram arrives from port 53" "hello from red2 53" "$(cat "$TMP/first.log")"
e2e_check "the client's reply comes back to that same server" \
  e2e_wait_for 5 grep -qx "got back reply to hello from red2" "$TMP/red2.log"

"$DPMD" status --api-socket "$API" | sed -n '/^virtual ports/,$p' | sed 's/^/  /'
streams=$(e2e_json "$API" '" ".join(sorted("%s:%s:%d" % (x["port"], x["aid"], x["members"]) for x in s["vpm"]["streams"]))')
e2e_expect_eq "status lists two UDP streams (red with two sockets)" "udp/53:black:1 udp/53:red:2" "$streams"
flows=$(e2e_json "$API" 'len([f for f in s["vpm"]["flows"] if f["protocol"] == "udp"])')
e2e_expect_eq "and a flow per conversation" 7 "$flows"

e2e_stop "$DPMD_PID"  # flushes the capture
vpm_wire_checks "$TMP/link.pcap" udp 53 41000 41009 12
e2e_finish
