#!/usr/bin/env bash
# e2e.dpm_gateway (root): DPM clients and a plain Linux host reach real servers through
# `dpmd gateway` (docs/design.md §6). Asserts: a DPM client's fetch arrives intact, and nginx sees
# the registered address and port that dpm_getsockname reported (claims 6, 11); two clients
# share one fixed external port towards different servers (claims 8-10, RFC 7857 §3) and a
# third use of it towards the same server fails with EADDRINUSE (CANNOT_PROVIDE_EXTERNAL); a
# replaceable port is replaced; the plain host's curl and iperf3 cross the same gateway (NAPT);
# natpmpc reads the public address; tshark decodes the setup exchange as PCP.
source "$(dirname "$0")/dpm_lib.sh"
e2e_require_root dpm_gateway
e2e_require_cmd natpmpc
e2e_init dpm_gateway

mkdir -p "$TMP/www"
head -c 3000000 /dev/urandom >"$TMP/www/file.bin"
dpm_topology 203.0.113.1
dpm_servers "$TMP/www"

echo "--- a DPM client fetches from nginx ---"
printf 'GET /file.bin HTTP/1.0\r\n\r\n' |
  ip netns exec "$LAN" timeout 20 "$DPMCAT" --socket "$C1_API" 198.51.100.10 80 >"$TMP/resp" 2>"$TMP/c1.err" || true
cat "$TMP/c1.err"
e2e_expect_eq "body checksum" "$(sha "$TMP/www/file.bin")" "$(strip_http "$TMP/resp" | sha256sum | cut -d" " -f1)"
local_ep=$(sed -n 's/^dpm-cat: local \([0-9.:]*\) peer.*/\1/p' "$TMP/c1.err")
peer_ep=$(sed -n 's/^dpm-cat: local .* peer \([0-9.:]*\)$/\1/p' "$TMP/c1.err")
e2e_check "getsockname gives a registered address ($local_ep)" grep -q '^203\.0\.113\.1:' <<<"$local_ep"
e2e_expect_eq "getpeername gives the true destination" "198.51.100.10:80" "$peer_ep"
e2e_wait_for 5 grep -q "file.bin" "$TMP/nginx-access.log" || true
e2e_check "nginx saw exactly that address and port" grep -q "^$local_ep 198.51.100.10 \"GET /file.bin" "$TMP/nginx-access.log"

echo "--- offload: nginx's TCP super-packets cross the NAT, the client's lwIP checks them ---"
# nginx's kernel hands gwout 64 KiB TCP super-packets with partial checksums (TUN offload,
# dpmd's default); the NAT updates them in place; the kernel on the inside finishes each
# segment's checksum from what the NAT left, and the DPM client's lwIP verifies every one.
# A wrong update would have failed the fetch above; the counters say it really went so.
gw_json=$("$DPMD" status --api-socket "$GW_API" --json)
c1_json=$("$DPMD" status --api-socket "$C1_API" --json)
read -r gw_rx_super gw_tx_super < <(/usr/bin/python3 -c '
import json,sys
o=json.loads(sys.argv[1])["gateway"]["offload"]
print(o["outside"]["rx_super_packets"] if o["outside"]["enabled"] else -1, o["inside"]["tx_super_packets"])' "$gw_json")
c1_bad=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["drops"]["lwip_tcp_chksum"])' "$c1_json")
echo "  super-packets from nginx: $gw_rx_super, written to the inside: $gw_tx_super; client TCP checksum errors: $c1_bad"
e2e_check "the gateway read TCP super-packets from outside" test "$gw_rx_super" -gt 0
e2e_check "and wrote them on inside as super-packets" test "$gw_tx_super" -gt 0
e2e_expect_eq "the DPM client saw no bad TCP checksum" 0 "$c1_bad"

echo "--- one fixed port, two clients, two servers ---"
hold() {  # hold API SERVER : a connection from fixed port 40000 kept open for a while
  (sleep 6) | ip netns exec "$LAN" timeout 10 "$DPMCAT" --socket "$1" -p 40000 "$2" 80 >/dev/null 2>>"$TMP/hold-$(basename "$1").err" &
}
hold "$C1_API" 198.51.100.10
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/hold-c1.sock.err" || true
hold "$C2_API" 198.51.100.11
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/hold-c2.sock.err" || true
cat "$TMP"/hold-*.err
e2e_check "client 1 holds 203.0.113.1:40000 towards .10" grep -q "local 203.0.113.1:40000 peer 198.51.100.10:80" "$TMP/hold-c1.sock.err"
e2e_check "client 2 shares 203.0.113.1:40000 towards .11" grep -q "local 203.0.113.1:40000 peer 198.51.100.11:80" "$TMP/hold-c2.sock.err"
out=$(ip netns exec "$LAN" timeout 10 "$DPMCAT" --socket "$C2_API" -p 40000 198.51.100.10 80 </dev/null 2>&1 || true)
echo "$out"
e2e_check "the same fixed port towards the same server is refused (EADDRINUSE)" grep -q "connect: Address already in use" <<<"$out"

echo "--- replaceable port ---"
(sleep 4) | ip netns exec "$LAN" timeout 8 "$DPMCAT" --socket "$C1_API" 198.51.100.11 80 >/dev/null 2>"$TMP/eph.err" &
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/eph.err" || true
registered=$(sed -n 's/^dpm-cat: local \([0-9.:]*\) peer.*/\1/p' "$TMP/eph.err")
status=$("$DPMD" status --api-socket "$GW_API" --json)
internal=$(/usr/bin/python3 -c '
import json,sys
s=json.loads(sys.argv[1])["gateway"]["sessions"]
print(" ".join(x["internal"] for x in s if x["dpm"] and x["external"]==sys.argv[2]))' "$status" "$registered")
echo "  registered $registered for internal $internal"
e2e_check "the session's registered endpoint is in the gateway's table" test -n "$internal"
e2e_check "the ephemeral port was replaced by another one (claims 1, 20)" \
  test -n "$internal" -a "${internal##*:}" != "${registered##*:}"

# The capture so far holds every setup exchange; bulk traffic follows, so tshark reads this copy.
cp "$TMP/gw-inside.pcap" "$TMP/setup.pcap"

echo "--- a plain Linux host through the same gateway ---"
ip netns exec "$PLAIN" curl -s -o "$TMP/curl.out" http://198.51.100.10/file.bin || true
e2e_expect_eq "curl from the plain host" "$(sha "$TMP/www/file.bin")" "$(sha "$TMP/curl.out")"
e2e_check "nginx saw the plain host as 203.0.113.1" grep -q '^203\.0\.113\.1:[0-9]* 198.51.100.10 "GET /file.bin HTTP/1.1" 200' "$TMP/nginx-access.log"
ip netns exec "$PLAIN" timeout 20 iperf3 -c 198.51.100.10 -t 2 -J >"$TMP/iperf3.json" 2>&1 || true
bps=$(/usr/bin/python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$TMP/iperf3.json" 2>/dev/null || echo 0)
echo "  iperf3 through the gateway: $((bps / 1000000)) Mbit/s"
e2e_check "iperf3 from the plain host moved data" test "$bps" -gt 0

echo "--- natpmpc ---"
np=$(ip netns exec "$PLAIN" timeout 10 natpmpc -g 10.77.0.1 2>&1 || true)
echo "$np" | grep -i "public ip" || echo "$np"
e2e_check "natpmpc reads the public address 203.0.113.1" grep -qi "Public IP address : 203.0.113.1" <<<"$np"

echo "--- the setup exchange in tshark ---"
# Port 1080 is SOCKS to tshark; "decode as" tells it the DPM port carries PCP.
pcp=$(timeout 30 tshark -r "$TMP/setup.pcap" -d udp.port==1080,portcontrol -Y portcontrol 2>/dev/null | head -4)
echo "$pcp"
e2e_check "tshark decodes the setup exchange as PCP" grep -q "Port Control Protocol\|PCP\|Peer" <<<"$pcp"

echo "--- gateway session table ---"
"$DPMD" status --api-socket "$GW_API" | sed 's/^/  /'
e2e_finish
