#!/usr/bin/env bash
# The addresses-per-socket demo (README command 1, after the DPM demo).
# One program (examples/two_addresses.c) opens two sockets at once, each with an address of
# its own from dpmd's static pool — one through dpm_socket's tuple, one through the
# AF_INET_TUPLE family — each marked with its own DSCP, and fetches from a real nginx, whose
# access log shows two different source addresses: the two dpm_getsockname reported. dpmd's
# capture of its link, read by tshark, shows each address's packets with its DSCP. Also an
# e2e test (e2e.addresses_demo): exits non-zero if anything shown is not as stated.
#
#   HOST: dpmd 10.77.1.2 (TUN ad0), pool 10.77.1.100-10.77.1.109 ── forwards ── WAN: nginx 198.51.100.10
source "$(dirname "$0")/lib.sh"
e2e_require_root addresses_demo
e2e_require_cmd nginx tshark
e2e_init addresses_demo
e2e_topology
[ -x "$BUILD/two_addresses" ] || e2e_fail "no $BUILD/two_addresses (build first)"

echo
echo "dpm demo: several network addresses per socket (docs/design.md §7)"
echo "------------------------------------------------------------------------"
echo "host: dpmd client 10.77.1.2 on TUN ad0, static pool 10.77.1.100-10.77.1.109"
echo "wan:  nginx 198.51.100.10:80, logging each request's source address"
mkdir -p "$TMP/www"
echo "hello" >"$TMP/www/index.html"
NGINX_LOG_FORMAT='$remote_addr:$remote_port "$request" $status' e2e_nginx "$WAN" 198.51.100.10 80 "$TMP/www"
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun ad0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
  --address-pool 10.77.1.100-10.77.1.109 --pcap "$TMP/link.pcap"

echo
echo "== one program, two sockets (examples/two_addresses.c)"
out=$(ip netns exec "$HOST" env DPM_SOCKET="$API" "$BUILD/two_addresses" 198.51.100.10 80 /index.html 2>&1) ||
  { echo "$out"; e2e_fail "two_addresses failed"; }
sed 's/^/   /' <<<"$out"
one=$(sed -n 's/^call 1: local \([0-9.]*\):.*/\1/p' <<<"$out")
two=$(sed -n 's/^call 2: local \([0-9.]*\):.*/\1/p' <<<"$out")

echo
echo "== what nginx saw (access log: source address:port, request, status)"
e2e_wait_for 5 sh -c "[ \$(grep -c GET '$TMP/nginx-access.log') -ge 2 ]" || true
sed 's/^/   /' "$TMP/nginx-access.log"
e2e_check "two different pool addresses" sh -c "[ -n '$one' ] && [ -n '$two' ] && [ '$one' != '$two' ]"
e2e_check "nginx saw call 1 from its address" grep -q "^$one:[0-9]* \"GET /index.html" "$TMP/nginx-access.log"
e2e_check "nginx saw call 2 from its address" grep -q "^$two:[0-9]* \"GET /index.html" "$TMP/nginx-access.log"
e2e_check "both got 200" test "$(grep -c '" 200$' "$TMP/nginx-access.log")" = 2

echo
echo "== the DSCP of each address's packets on the link (dpmd --pcap, read by tshark)"
e2e_stop "$DPMD_PID"
for a in "$one" "$two"; do
  printf '   %s: DSCP %s\n' "$a" "$(tshark -r "$TMP/link.pcap" -Y "ip.src == $a" -T fields -e ip.dsfield.dscp 2>/dev/null | sort -u | xargs)"
done
e2e_expect_eq "call 1's packets all carry EF (46)" 46 \
  "$(tshark -r "$TMP/link.pcap" -Y "ip.src == $one" -T fields -e ip.dsfield.dscp 2>/dev/null | sort -u | xargs)"
e2e_expect_eq "call 2's packets all carry AF41 (34)" 34 \
  "$(tshark -r "$TMP/link.pcap" -Y "ip.src == $two" -T fields -e ip.dsfield.dscp 2>/dev/null | sort -u | xargs)"
e2e_finish
