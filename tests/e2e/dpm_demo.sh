#!/usr/bin/env bash
# The DPM demo (README command 1, through scripts/demo.sh). Builds a private
# network ("lan": a `dpmd gateway`, two DPM clients on TUN devices, a plain Linux host) and an
# outside one ("wan": real nginx and iperf3), then shows, step by step:
#   1. a DPM client fetching a file from nginx with dpm-cat, and nginx's access log seeing the
#      registered address and port that dpm_getsockname reported (claims 6, 11);
#   2. both clients using the same fixed source port towards two different servers at once
#      (one shared external port, claims 8-10), and a clear error when one aims at the same
#      server (PCP CANNOT_PROVIDE_EXTERNAL → EADDRINUSE);
#   3. a replaceable (ephemeral) port being replaced by the DPM server (claims 1, 20);
#   4. the plain host running curl and iperf3 through the same gateway (standard NAPT);
#   5. natpmpc reading the public address; the setup exchange decoded by tshark as PCP;
#   6. the gateway's session table.
# Needs root. Everything it creates is removed when it ends.
if [ "$(id -u)" != 0 ]; then
  echo "demo: must run as root: it creates network namespaces and TUN devices (try: sudo $0)" >&2
  exit 1
fi
source "$(dirname "$0")/dpm_lib.sh"
for c in nginx iperf3 curl natpmpc tshark ip; do
  command -v "$c" >/dev/null || { echo "demo: '$c' is missing; run scripts/setup.sh first" >&2; exit 1; }
done
e2e_init demo
ok=1
say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
check() { if "$@"; then :; else ok=0; say "   !! check failed: $*"; fi; }

mkdir -p "$TMP/www"
head -c $((8 * 1024 * 1024)) /dev/urandom >"$TMP/www/file.bin"
dpm_topology 203.0.113.1
dpm_servers "$TMP/www"

say "dpm demo: Dynamic Port Management through a cooperative NAT"
say "------------------------------------------------------------------------"
say "lan (private 10.77.0.0/16)                     wan (outside)"
say "  dpmd gateway: DPM server 10.77.0.1:1080/5351   nginx 198.51.100.10:80, 198.51.100.11:80"
say "                registered pool 203.0.113.1       iperf3 198.51.100.10:5201"
say "  DPM client 1: dpmd client 10.77.1.2 (TUN c1)"
say "  DPM client 2: dpmd client 10.77.2.2 (TUN c2)"
say "  plain Linux host 10.77.3.2 (no driver)"

step "1. DPM client 1 fetches /file.bin from nginx with dpm-cat"
printf 'GET /file.bin HTTP/1.0\r\n\r\n' |
  ip netns exec "$LAN" timeout 30 "$DPMCAT" --socket "$C1_API" 198.51.100.10 80 >"$TMP/resp" 2>"$TMP/c1.err" || true
local_ep=$(sed -n 's/^dpm-cat: local \([0-9.:]*\) peer.*/\1/p' "$TMP/c1.err")
peer_ep=$(sed -n 's/^dpm-cat: local .* peer \([0-9.:]*\)$/\1/p' "$TMP/c1.err")
want=$(sha "$TMP/www/file.bin")
got=$(strip_http "$TMP/resp" | sha256sum | cut -d' ' -f1)
say "   dpm_getsockname: $local_ep   (registered address and port)"
say "   dpm_getpeername: $peer_ep   (the true destination)"
say "   body sha256 $got — $([ "$want" = "$got" ] && echo match || echo MISMATCH)"
check [ "$want" = "$got" ]
e2e_wait_for 5 grep -q "file.bin" "$TMP/nginx-access.log" || true
say "   nginx access log: $(grep file.bin "$TMP/nginx-access.log" | head -1)"
check grep -q "^$local_ep " "$TMP/nginx-access.log"

step "2. Both clients use fixed source port 40000, towards two different servers at once"
(sleep 5) | ip netns exec "$LAN" timeout 8 "$DPMCAT" --socket "$C1_API" -p 40000 198.51.100.10 80 >/dev/null 2>"$TMP/h1.err" &
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/h1.err" || true
(sleep 5) | ip netns exec "$LAN" timeout 8 "$DPMCAT" --socket "$C2_API" -p 40000 198.51.100.11 80 >/dev/null 2>"$TMP/h2.err" &
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/h2.err" || true
say "   client 1: $(grep '^dpm-cat: local' "$TMP/h1.err" | sed 's/^dpm-cat: //')"
say "   client 2: $(grep '^dpm-cat: local' "$TMP/h2.err" | sed 's/^dpm-cat: //')"
check grep -q "local 203.0.113.1:40000" "$TMP/h1.err"
check grep -q "local 203.0.113.1:40000" "$TMP/h2.err"
say "   client 2 now aims port 40000 at the server client 1 uses:"
err=$(ip netns exec "$LAN" timeout 8 "$DPMCAT" --socket "$C2_API" -p 40000 198.51.100.10 80 </dev/null 2>&1 || true)
say "   $err   (PCP CANNOT_PROVIDE_EXTERNAL)"
check grep -q "Address already in use" <<<"$err"

step "3. A replaceable (ephemeral) port is replaced"
(sleep 4) | ip netns exec "$LAN" timeout 8 "$DPMCAT" --socket "$C1_API" 198.51.100.11 80 >/dev/null 2>"$TMP/e.err" &
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/e.err" || true
registered=$(sed -n 's/^dpm-cat: local \([0-9.:]*\) peer.*/\1/p' "$TMP/e.err")
internal=$("$DPMD" status --api-socket "$GW_API" --json | /usr/bin/python3 -c '
import json,sys
s=json.load(sys.stdin)["gateway"]["sessions"]
print(" ".join(x["internal"] for x in s if x["dpm"] and x["external"]==sys.argv[1]))' "$registered")
say "   the client's own port: $internal  →  registered: $registered"
check [ -n "$internal" ]

cp "$TMP/gw-inside.pcap" "$TMP/setup.pcap"  # every setup exchange so far, before bulk traffic

step "4. The plain host (no driver) uses curl and iperf3 through the same gateway"
ip netns exec "$PLAIN" curl -s -o "$TMP/curl.out" -w '   curl: HTTP %{http_code}, %{size_download} bytes\n' http://198.51.100.10/file.bin || true
say "   curl body sha256 $(sha "$TMP/curl.out") — $([ "$(sha "$TMP/curl.out")" = "$want" ] && echo match || echo MISMATCH)"
check [ "$(sha "$TMP/curl.out")" = "$want" ]
ip netns exec "$PLAIN" timeout 20 iperf3 -c 198.51.100.10 -t 3 -J >"$TMP/iperf3.json" 2>&1 || true
bps=$(/usr/bin/python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$TMP/iperf3.json" 2>/dev/null || echo 0)
say "   iperf3: $((bps / 1000000)) Mbit/s through the gateway"
check [ "$bps" -gt 0 ]
say "   nginx saw the plain host as: $(grep 'HTTP/1.1' "$TMP/nginx-access.log" | head -1 | cut -d' ' -f1)"

step "5. natpmpc (Debian's NAT-PMP client) on the plain host, and the setup exchange in tshark"
np=$(ip netns exec "$PLAIN" timeout 10 natpmpc -g 10.77.0.1 2>&1 | grep -i "public ip" || true)
say "   natpmpc: ${np:-no answer}"
check grep -q "203.0.113.1" <<<"$np"
timeout 30 tshark -r "$TMP/setup.pcap" -d udp.port==1080,portcontrol -Y portcontrol 2>/dev/null | head -4 | sed 's/^/   /'

step "6. The gateway's session table (dpmd status)"
"$DPMD" status --api-socket "$GW_API" | sed -n '/^gateway/,$p' | sed 's/^/   /'

say "------------------------------------------------------------------------"
if [ $ok = 1 ]; then say "demo: OK"; exit 0; fi
say "demo: some checks failed (see !! lines above)"
exit 1
