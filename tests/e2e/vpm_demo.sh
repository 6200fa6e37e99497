#!/usr/bin/env bash
# The virtual port multiplexing demo (README command 1, after the tunneling demo; docs/vpm.md).
# One `dpmd client`; two unmodified nginx serving different sites both listen on port 80 in it
# (dpm-run --aid green and --aid blue). The configurator sends new connections from
# 198.51.100.11 to green and every other source to blue; curl from each source gets its site,
# and both programs and the wire only ever see port 80. Then cooperative mode: two instances on
# a virtual link; a Python web server of AID green on port 9000 of B, and curl on A with --aid
# green reaches it while the connection travels on the hidden port B's VPM named. Also an e2e
# test (e2e.vpm_demo): exits non-zero if anything shown is not as stated.
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

echo
echo "cooperative mode: instance A (10.77.9.1) asks instance B (10.77.9.2) for the hidden port"
cat >"$TMP/b.json" <<'JSON'
{ "hidden_ports": "12760-12769", "ports": { "tcp/9000": { "default": "refuse" } },
  "cooperative": { "accept": ["10.77.9.0/24"] } }
JSON
cat >"$TMP/a.json" <<'JSON'
{ "cooperative": { "peers": [ { "destinations": ["10.77.9.2/32"], "ports": ["tcp/9000"] } ] } }
JSON
sed 's/^/  B: /' "$TMP/b.json"
sed 's/^/  A: /' "$TMP/a.json"
e2e_dpmd - "$TMP/b.sock" --virtual "$TMP/b.link,$TMP/a.link" --address 10.77.9.2/24 --gateway '' --vpm-config "$TMP/b.json"
e2e_dpmd - "$TMP/a.sock" --virtual "$TMP/a.link,$TMP/b.link" --address 10.77.9.1/24 --gateway '' --vpm-config "$TMP/a.json"
mkdir -p "$TMP/green" && echo "the green server on port 9000" >"$TMP/green/index.html"
echo "\$ dpm-run --aid green -- python3 -m http.server 9000    (on B)"
e2e_bg - "$DPMRUN" --api-socket "$TMP/b.sock" --aid green -- "$PY" -m http.server 9000 --directory "$TMP/green" \
  >/dev/null 2>&1
e2e_wait_for 10 has_listener "$TMP/b.sock" 0.0.0.0:9000 || true
echo "\$ dpm-run --aid green -- curl http://10.77.9.2:9000/        (on A)"
out=$("$DPMRUN" --api-socket "$TMP/a.sock" --aid green -- curl -sS --max-time 10 http://10.77.9.2:9000/ 2>&1 || true)
echo "$out" | sed 's/^/  /'
e2e_expect_eq "curl with AID green reached the green server" "the green server on port 9000" "$out"
echo "\$ dpmd status    (on A: the client flow, 9000 for curl, the hidden port on the wire)"
"$DPMD" status --api-socket "$TMP/a.sock" | grep -E "^  client " | sed 's/^/  /'
e2e_check "A recorded the client flow to B's hidden port" \
  sh -c "'$DPMD' status --api-socket '$TMP/a.sock' | grep -qE '^  client .*9000 -> 1276[0-9]'"
e2e_finish
