#!/usr/bin/env bash
# e2e.gateway_mappings (root): what a plain host's real NAT-PMP client sees through a gateway
# with a pool of eight addresses, and which dpmd a program reaches and may use.
#  - natpmpc is told the pool address the host is paired with (RFC 4787 REQ-2; RFC 6886
#    §3.2) — the one nginx sees its traffic come from — and a mapping `natpmpc -a` makes
#    there is reachable from outside at that address;
#  - the mapping shows in `dpmd status` (text and JSON: internal, external, protocol,
#    lifetime left, made by nat-pmp, filters) before any connection uses it;
#  - the default API sockets are per network namespace: `dpmd status` in lan finds the
#    gateway on @dpm/gateway unasked; two `dpmd client`s in two namespaces both use the
#    default @dpm/dpmd and each namespace's programs reach their own; a namespace without one
#    reaches none;
#  - access: another user is refused (EACCES, logged, counted) unless in --api-group; a
#    file-path API socket is mode 0600.
source "$(dirname "$0")/dpm_lib.sh"
e2e_require_root gateway_mappings
e2e_require_cmd natpmpc nginx curl socat
e2e_init gateway_mappings

DPM_GW_API=@dpm/gateway dpm_topology 203.0.113.1-203.0.113.8
mkdir -p "$TMP/www"
echo "hello from wan" >"$TMP/www/index.html"
dpm_servers "$TMP/www"

echo "--- the plain host's traffic and what natpmpc is told ---"
ip netns exec "$PLAIN" curl -s -m 10 -o /dev/null http://198.51.100.10/index.html || true
seen=$(sed -n 's/^\(203\.0\.113\.[0-9]*\):[0-9]* .*GET \/index.html.*/\1/p' "$TMP/nginx-access.log" | head -n 1)
echo "  nginx saw the plain host as $seen"
e2e_check "nginx saw the plain host on a pool address" test -n "$seen"
np=$(ip netns exec "$PLAIN" timeout 10 natpmpc -g 10.77.0.1 2>&1 || true)
echo "$np" | grep -i "public ip" || echo "$np"
e2e_check "natpmpc is told the address the host's traffic uses ($seen)" \
  grep -qi "Public IP address : $seen\$" <<<"$np"

echo "--- a mapping natpmpc makes is on that address, and listed before it is used ---"
np=$(ip netns exec "$PLAIN" timeout 10 natpmpc -g 10.77.0.1 -a 5000 5000 tcp 3600 2>&1 || true)
echo "$np" | grep -i "mapped\|public" || echo "$np"
ext_port=$(sed -n 's/.*Mapped public port \([0-9]*\) protocol TCP to local port 5000.*/\1/p' <<<"$np" | head -n 1)
e2e_check "natpmpc mapped TCP port 5000 (public port '$ext_port')" test -n "$ext_port"
text=$(ip netns exec "$LAN" "$DPMD" status)
echo "$text" | sed -n '/^mappings/,$p'
e2e_check "status lists the mapping: internal, external, made by nat-pmp, lifetime, any remote" \
  grep -Eq "^tcp +10\.77\.3\.2:5000 +$seen:$ext_port +nat-pmp +3[0-9]{3} +0 +any remote" <<<"$text"
row=$(ip netns exec "$LAN" "$DPMD" status --json | "$PY" -c '
import json, sys
s = json.load(sys.stdin)
m = [m for m in s["gateway"]["mappings"] if m["internal"] == "10.77.3.2:5000"]
print(m[0]["proto"], m[0]["external"], m[0]["made_by"], m[0]["explicit"], 3000 < m[0]["lifetime_left_s"] <= 3600,
      m[0]["filters"], s["role"])' 2>&1)
e2e_expect_eq "the JSON row" "tcp $seen:$ext_port nat-pmp True True [] gateway" "$row"
e2e_bg "$PLAIN" socat TCP-LISTEN:5000,bind=10.77.3.2,reuseaddr SYSTEM:"echo inbound-ok" >"$TMP/socat.out" 2>&1
e2e_wait_for 5 ip netns exec "$PLAIN" sh -c "ss -ltn | grep -q ':5000 '" || true
got=$(ip netns exec "$WAN" timeout 10 socat -u TCP:"$seen":"$ext_port",connect-timeout=5 - 2>&1 || true)
e2e_expect_eq "an outside host reaches the mapping at the announced address" "inbound-ok" "$got"

echo "--- which dpmd a program reaches: the default names are per network namespace ---"
e2e_check "dpmd status in lan finds the gateway without --api-socket" \
  bash -c "ip netns exec '$LAN' '$DPMD' status | grep -q '^dpmd .* gateway; api @dpm/gateway'"
e2e_netns other OTHER
mkdir -p "$TMP/v"
e2e_bg "$PLAIN" "$DPMD" client --virtual "$TMP/v/p.link,$TMP/v/pp.link" --address 10.77.9.1/24 --gateway '' \
  --api-group 65534 >"$TMP/plain-dpmd.log" 2>&1
e2e_bg "$WAN" "$DPMD" client --virtual "$TMP/v/w.link,$TMP/v/ww.link" --address 10.77.9.2/24 --gateway '' \
  >"$TMP/wan-dpmd.log" 2>&1
e2e_wait_for 10 grep -q "dpmd: ready.*api @dpm/dpmd" "$TMP/plain-dpmd.log" || cat "$TMP/plain-dpmd.log"
e2e_wait_for 10 grep -q "dpmd: ready.*api @dpm/dpmd" "$TMP/wan-dpmd.log" || cat "$TMP/wan-dpmd.log"
e2e_check "a second dpmd client on the default socket starts in another namespace" \
  grep -q "dpmd: ready.*api @dpm/dpmd" "$TMP/wan-dpmd.log"
link_of() { ip netns exec "$1" "$DPMD" status --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["link"]["name"])'; }
e2e_expect_eq "a program in plain reaches plain's dpmd" "virtual:$TMP/v/p.link" "$(link_of "$PLAIN")"
e2e_expect_eq "a program in wan reaches wan's dpmd" "virtual:$TMP/v/w.link" "$(link_of "$WAN")"
e2e_bg "$PLAIN" "$DPMCAT" -u -l 6000 </dev/null >"$TMP/cat6000.out" 2>&1
e2e_check "dpm-cat in plain opened its socket on plain's dpmd" \
  e2e_wait_for 5 bash -c "ip netns exec '$PLAIN' '$DPMD' status | grep -q '0.0.0.0:6000'"
err=$(ip netns exec "$OTHER" "$DPMCAT" 198.51.100.10 80 </dev/null 2>&1 || true)
e2e_check "a namespace without a dpmd reaches none: '$err'" grep -q "no dpmd answers at @dpm/dpmd" <<<"$err"

echo "--- who may use the API ---"
if setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$DPMD"; then
  nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  err=$(ip netns exec "$LAN" "${nobody[@]}" "$DPMD" status 2>&1 || true)
  e2e_check "another user is refused by the gateway: '$err'" grep -q "refuses this user" <<<"$err"
  e2e_check "  and the gateway logged it" grep -q "API connection refused: pid [0-9]* uid 65534" "$TMP/gw.log"
  e2e_check "  and counted it" bash -c "ip netns exec '$LAN' '$DPMD' status --json | grep -q '\"api_refused\":[1-9]'"
  err=$(ip netns exec "$WAN" "${nobody[@]}" "$DPMCAT" -u 10.77.9.9 7 </dev/null 2>&1 || true)
  e2e_check "another user's dpm-cat is refused by wan's dpmd: '$err'" grep -q "refuses this user" <<<"$err"
  e2e_check "a member of plain's --api-group (gid 65534) may use it" \
    bash -c "ip netns exec '$PLAIN' ${nobody[*]} '$DPMD' status | grep -q '^link'"
else
  echo "  (skipped: user nobody cannot run $DPMD from here)"
fi
e2e_expect_eq "a file-path API socket is owner-only" 600 "$(stat -c %a "$C1_API")"
e2e_finish
