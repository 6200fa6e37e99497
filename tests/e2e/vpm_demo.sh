#!/usr/bin/env bash
# The virtual port multiplexing demo (README command 1, after the tunneling demo; docs/vpm.md).
# One `dpmd client`; two unmodified nginx serving different sites both listen on port 80 in it
# (dpm-run --aid green and --aid blue). The configurator sends new connections from
# 198.51.100.11 to green and every other source to blue; curl from each source gets its site,
# and both programs and the wire only ever see port 80. Also an e2e test (e2e.vpm_demo): exits
# non-zero if anything shown is not as stated.
#
#   wan: curl from 198.51.100.10 and .11 ── host: dpmd client (10.77.1.2) ─┬─ nginx A, --aid green
#                                                                          └─ nginx B, --aid blue
source "$(dirname "$0")/preload_lib.sh"
e2e_require_root vpm_demo
e2e_require_cmd nginx curl
e2e_init vpm_demo
e2e_require_preload

echo
echo "dpm demo: two web servers on one port (virtual port multiplexing, docs/vpm.md)"
echo "------------------------------------------------------------------------"
e2e_topology
ip -n "$WAN" addr add 198.51.100.11/24 dev "$VETH_WAN"
cat >"$TMP/vpm.json" <<'JSON'
{
  "ports": { "tcp/80": { "default": "blue" } },
  "applications": [ { "aid": "green", "ports": ["tcp/80"], "sources": ["198.51.100.11/32"] } ]
}
JSON
echo "the configurator file (dpmd client --vpm-config):"
sed 's/^/  /' "$TMP/vpm.json"
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
  --vpm-config "$TMP/vpm.json"
for site in A:green B:blue; do
  echo "\$ dpm-run --aid ${site#*:} -- nginx -c ${site%%:*}/nginx.conf      (listen 80)"
  vpm_site "${site%%:*}" "${site#*:}"
done
two() { [ "$(socket_rows "$API" | awk '$2 == "listening" && $3 == "0.0.0.0:80"' | wc -l)" = 2 ]; }
e2e_wait_for 10 two || true
echo
echo "\$ dpmd status    (the sockets, and the virtual streams behind port 80)"
"$DPMD" status --api-socket "$API" | grep -E "listening|^virtual|PORT|tcp/80" | sed 's/^/  /'
e2e_check "two nginx listen on 0.0.0.0:80 in one instance" two
for from in 198.51.100.10 198.51.100.11; do
  echo
  echo "\$ curl --interface $from http://10.77.1.2/     (in wan)"
  out=$(ip netns exec "$WAN" curl -sS --max-time 10 --interface "$from" http://10.77.1.2/ 2>&1 || true)
  echo "$out" | sed 's/^/  /'
  want="this is site B"
  [ "$from" = 198.51.100.11 ] && want="this is site A"
  e2e_expect_eq "curl from $from got its site" "$want" "$out"
done
e2e_finish
