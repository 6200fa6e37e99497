#!/usr/bin/env bash
# The dpm demo (README command 1, through scripts/demo.sh): a real nginx in namespace "wan"
# serves a 20 MiB random file; `dpmd client` runs the dpm stack on a TUN device in namespace
# "host"; dpm-cat (a netcat on libdpm) fetches the file through the stack. Prints what
# happened and exits 0 only if the fetched body's checksum matches the original.
#
# Needs root (network namespaces, TUN). Everything it creates is removed when it ends.
if [ "$(id -u)" != 0 ]; then
  echo "demo: must run as root: it creates network namespaces and a TUN device (try: sudo $0)" >&2
  exit 1
fi
source "$(dirname "$0")/lib.sh"
for c in nginx ip sha256sum; do
  command -v "$c" >/dev/null || { echo "demo: '$c' is missing; run scripts/setup.sh first" >&2; exit 1; }
done
e2e_init demo
e2e_topology

SIZE=$((20 * 1024 * 1024))
API=$TMP/dpmd.sock
mkdir -p "$TMP/www"
head -c $SIZE /dev/urandom >"$TMP/www/file.bin"
e2e_nginx "$WAN" 198.51.100.10 80 "$TMP/www"
e2e_dpmd "$HOST" "$API" --tun dpm0 --mtu 1500 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24

start=$(date +%s%N)
printf 'GET /file.bin HTTP/1.0\r\n\r\n' |
  timeout 60 ip netns exec "$HOST" "$DPMCAT" --socket "$API" 198.51.100.10 80 >"$TMP/response" 2>"$TMP/dpm-cat.err" ||
  echo "demo: dpm-cat failed: $(cat "$TMP/dpm-cat.err")" >&2
ms=$((($(date +%s%N) - start) / 1000000))
strip_http "$TMP/response" >"$TMP/body"
e2e_wait_for 5 test -s "$TMP/nginx-access.log" || true

names=$(grep -m1 '^dpm-cat: local' "$TMP/dpm-cat.err" || true)
local_ep=$(echo "$names" | awk '{print $3}')
peer_ep=$(echo "$names" | awk '{print $5}')
total=$(file_size "$TMP/response")
body=$(file_size "$TMP/body")
want=$(sha "$TMP/www/file.bin")
got=$(sha "$TMP/body")
match=no
[ "$want" = "$got" ] && [ "$body" = "$SIZE" ] && match=yes

rule() { printf '%s\n' "------------------------------------------------------------------------"; }
echo
echo "dpm demo: a file from a real nginx, fetched through the dpm user-space TCP/IP stack"
rule
echo "Network (namespaces made for this run, removed when it ends)"
printf '  %-22s %s\n' "host namespace" "$HOST"
printf '  %-22s %s\n' "  dpm stack" "10.77.1.2/24 on TUN dpm0 (dpmd client; kernel side 10.77.1.1)"
printf '  %-22s %s\n' "wan namespace" "$WAN"
printf '  %-22s %s\n' "  nginx" "198.51.100.10:80 serving /file.bin ($SIZE bytes of random data)"
echo
echo "Fetch: printf 'GET /file.bin HTTP/1.0\\r\\n\\r\\n' | dpm-cat 198.51.100.10 80"
printf '  %-22s %s\n' "local (the stack)" "${local_ep:-?}"
printf '  %-22s %s\n' "peer (nginx)" "${peer_ep:-?}"
printf '  %-22s %s\n' "bytes received" "$total ($((total - body)) of HTTP header, $body of body)"
printf '  %-22s %s\n' "time" "$(awk -v ms="$ms" -v n="$total" 'BEGIN {printf "%.2f s (%.0f Mbit/s)", ms/1000, (ms > 0 ? n*8/ms/1000 : 0)}')"
echo
echo "Checksums (sha256)"
printf '  %-22s %s\n' "original file" "$want"
printf '  %-22s %s\n' "fetched body" "$got"
printf '  %-22s %s\n' "checksum match:" "$match"
echo
echo "nginx access log"
sed 's/^/  /' "$TMP/nginx-access.log"
echo
echo "dpmd status"
e2e_status "$API" | sed 's/^/  /'
rule
if [ $match = yes ]; then
  echo "demo: OK: the file crossed the dpm stack intact"
  exit 0
fi
echo "demo: FAILED: the fetched body does not match the original" >&2
exit 1
