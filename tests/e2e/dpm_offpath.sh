#!/usr/bin/env bash
# e2e.dpm_offpath (root): the DPM gateway need not be the client's router, only reachable at
# its private address (the DPM patent, ¶38). The network:
#
#   lan     the private LAN, a plain Ethernet switch: bridge br0, no address, no forwarding.
#           The DPM client is `dpmd client --link tap` on TAP dc1, a port of br0: the stack
#           itself is the LAN host 10.77.0.11/24, default router 10.77.0.254, --dpm-gateway 10.77.0.1
#   router  the default router 10.77.0.254 (a veth port of br0): plain Linux, forwarding on,
#           no route beyond the LAN, so nothing it forwards could reach wan
#   gw      the host of `dpmd gateway`, beside the router: its LAN leg 10.77.0.2 answers ARP
#           for the gateway's private address 10.77.0.1 (proxy ARP) and routes 10.77.0.1 into
#           the inside TUN gwin; the outside TUN gwout is moved into wan
#   wan     nginx on 198.51.100.10; the pool 203.0.113.0/24 routed into gwout
#
# The driver aims the setup exchange at 10.77.0.1:1080 and the session's packets at the
# gateway endpoint 10.77.0.1:P, both on the LAN's own prefix, so the stack sends them to
# 10.77.0.1's MAC (gw's) and not to its default router; gw's kernel hands them to the gateway,
# whose replies go back to 10.77.0.11 on the LAN. Asserts: the router cannot reach wan and
# does receive the client's off-LAN packets (a UDP probe); a dpm-cat fetch arrives intact
# while the router receives not one IPv4 packet; dpm_getsockname and nginx both show the
# same registered address and port from the pool (not 10.77.0.11); the gateway's status lists
# the DPM session with its gateway endpoint on 10.77.0.1.
source "$(dirname "$0")/dpm_lib.sh"
e2e_require_root dpm_offpath
e2e_require_cmd nginx
e2e_init dpm_offpath

e2e_netns lan LAN
e2e_netns router ROUTER
e2e_netns gw GWNS
e2e_netns wan WAN
ip -n "$LAN" link add br0 type bridge
ip -n "$LAN" link set br0 up
# lan_port NS DEV ADDRESS : a veth from NS (DEV, ADDRESS) to a port of br0 in lan.
lan_port() {
  ip link add "$2" netns "$1" type veth peer name "p-$2" netns "$LAN"
  ip -n "$LAN" link set "p-$2" master br0 up
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$1" link set "$2" up
}
lan_port "$ROUTER" vr 10.77.0.254/24
ip netns exec "$ROUTER" sysctl -qw net.ipv4.ip_forward=1
lan_port "$GWNS" vg 10.77.0.2/24
ip netns exec "$GWNS" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.neigh.vg.proxy_delay=0
ip -n "$GWNS" neigh add proxy 10.77.0.1 dev vg

ip -n "$WAN" addr add 198.51.100.10/32 dev lo
dpm_run_gateway "$GWNS" 203.0.113.1-203.0.113.8 # gwin without an address of the kernel's
ip -n "$GWNS" route add 10.77.0.1/32 dev gwin

mkdir -p "$TMP/www"
echo "hello off the path" >"$TMP/www/hello"
NGINX_LOG_FORMAT='$remote_addr:$remote_port "$request" $status' e2e_nginx "$WAN" 198.51.100.10 80 "$TMP/www"

API=$TMP/c1.sock
e2e_dpmd "$LAN" "$API" --link tap --tun dc1 --address 10.77.0.11/24 --gateway 10.77.0.254 \
  --dpm-gateway 10.77.0.1 --private-network 10.77.0.0/16
ip -n "$LAN" link set dc1 master br0
log="$TMP/dpmd-$(basename "$API").log"
sed 's/^/  /' "$log"
e2e_check "the client's default router is the plain router" grep -q "gateway 10.77.0.254 " "$log"

# ip_in NS : unicast IPv4 packets the kernel of NS has received: Ip InReceives
# (/proc/net/snmp) less IpExt InMcastPkts and InBcastPkts (/proc/net/netstat). Multicast is left
# out because the kernels of the namespaces on br0 send IGMP membership reports of their own
# (RFC 3376 §5.1, repeated after a link comes up) at times no test controls.
ip_in() {
  ip netns exec "$1" awk '
    $1 == "Ip:" { if (ip++) receives = $4 }
    $1 == "IpExt:" { if (!ext++) { for (i = 2; i <= NF; i++) col[$i] = i } else { mcast = $col["InMcastPkts"]; bcast = $col["InBcastPkts"] } }
    END { print receives - mcast - bcast }' /proc/net/snmp /proc/net/netstat
}

echo "--- the router: no way to wan, but on the client's default path ---"
e2e_check "the router has no route to 198.51.100.10" sh -c "! ip -n '$ROUTER' route get 198.51.100.10 >/dev/null 2>&1"
before=$(ip_in "$ROUTER")
# 10.77.5.5 is private (no DPM setup) and off the LAN: the stack sends it to its router.
echo probe | ip netns exec "$LAN" timeout 5 "$DPMCAT" --socket "$API" -u -q -w 0.5 10.77.5.5 9 || true
e2e_wait_for 3 test "$(ip_in "$ROUTER")" -gt "$before" || true
e2e_check "a datagram to another private network reaches the router" test "$(ip_in "$ROUTER")" -gt "$before"

echo "--- a DPM fetch through the gateway beside it ---"
# The probe's tail (whatever of it is still on the way) must not count against the fetch: the
# count is taken once it has stood still for half a second.
before=$(ip_in "$ROUTER")
for _ in 1 2 3 4 5 6; do
  sleep 0.5
  now=$(ip_in "$ROUTER")
  [ "$now" = "$before" ] && break
  before=$now
done
(printf 'GET /hello HTTP/1.1\r\nHost: wan\r\n\r\n'; sleep 3) |
  ip netns exec "$LAN" timeout 15 "$DPMCAT" --socket "$API" -N 198.51.100.10 80 >"$TMP/c1.out" 2>"$TMP/c1.err" &
FETCH=$!
e2e_wait_for 5 grep -q "hello off the path" "$TMP/c1.out" || true
cat "$TMP/c1.err"
e2e_check "the page arrived" grep -q "hello off the path" "$TMP/c1.out"
ext=$(local_of c1):$(port_of c1)
e2e_check "dpm_getsockname gives a registered address from the pool ($ext)" grep -Eq '^203\.0\.113\.[1-8]:[0-9]+$' <<<"$ext"
e2e_wait_for 5 grep -q "GET /hello" "$TMP/nginx-access.log" || true
sed 's/^/  nginx: /' "$TMP/nginx-access.log"
e2e_check "nginx saw that registered address and port, not 10.77.0.11" \
  grep -q "^$ext \"GET /hello HTTP/1.1\" 200" "$TMP/nginx-access.log"
sessions=$(e2e_json "$GW_API" '" ".join(x["internal"] + ">" + x["external"] + ">" + x["gateway_endpoint"] for x in s["gateway"]["sessions"] if x["dpm"])')
echo "  gateway's DPM sessions (internal>external>gateway endpoint): $sessions"
e2e_check "the gateway lists the DPM session" \
  grep -Eq "^10\.77\.0\.11:[0-9]+>$ext>10\.77\.0\.1:[0-9]+$" <<<"$sessions"
wait "$FETCH" 2>/dev/null || true
e2e_expect_eq "the router received no IPv4 packet during the fetch: InReceives" "$before" "$(ip_in "$ROUTER")"

echo "--- gateway status ---"
e2e_status "$GW_API" | sed 's/^/  /'
e2e_finish
