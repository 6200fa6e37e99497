#!/usr/bin/env bash
# The tunneling test network (docs/tunnel.md): two private networks, each behind its own
# `dpmd gateway`, and the tunnel server outside. Namespaces made for the run and removed after.
#
#   wan    the tunnel server on 198.51.100.20 (wan's loopback); routes to each gateway's pool
#   lana   private network A's router: gateway A (inside TUN gwin, 10.77.0.1; pool 203.0.113.1,
#          outside TUN gwouta moved into wan); the service proxy runs here; a veth to srva
#   srva   the real servers of network A on 10.77.3.2 (nginx :80, sshd :22, echo :7)
#   lanb   private network B's router: gateway B (pool 203.0.113.9, outside TUN gwoutb); the
#          redirector and the hooked programs run here
#
# Both private networks use 10.77.0.0/16: the same private addresses on both sides, as two
# companies' networks would; only the tunnel joins them.
source "$(dirname "${BASH_SOURCE[0]}")/dpm_lib.sh"

TUNNEL_SERVER_ADDR=198.51.100.20
TUNNEL_PORT=7443
TUNNEL_SUFFIX=dpm.internal

# tunnel_gateway NS POOL OUTSIDE_TUN API : a `dpmd gateway` in NS; its outside TUN goes into wan
# with a route to POOL. Sets LAST_GW_PID.
tunnel_gateway() {
  local ns=$1 pool=$2 out=$3 api=$4 log=$TMP/gw-$3.log
  e2e_bg "$ns" "$DPMD" gateway --inside-tun gwin --outside-tun "$out" --inside-host-address 10.77.0.254/16 \
    --address 10.77.0.1/16 --inside-network 10.77.0.0/16 --pool "$pool" --api-socket "$api" >"$log" 2>&1
  LAST_GW_PID=$LAST_PID
  e2e_wait_for 10 grep -q "gateway ready" "$log" || { cat "$log" >&2; e2e_fail "dpmd gateway in $ns did not start"; }
  ip -n "$ns" link set "$out" netns "$WAN"
  ip -n "$WAN" link set "$out" up
  ip -n "$WAN" route add "$pool/32" dev "$out"
  ip -n "$ns" route add default dev gwin
}

# tunnel_topology : builds it all; sets WAN LANA SRVA LANB GWA_API GWB_API GWA_PID GWB_PID.
tunnel_topology() {
  e2e_netns wan WAN
  e2e_netns lana LANA
  e2e_netns srva SRVA
  e2e_netns lanb LANB
  ip -n "$WAN" addr add "$TUNNEL_SERVER_ADDR/32" dev lo
  dpm_host_behind "$SRVA" "$LANA"
  GWA_API=$TMP/gwa.sock
  GWB_API=$TMP/gwb.sock
  tunnel_gateway "$LANA" 203.0.113.1 gwouta "$GWA_API"
  GWA_PID=$LAST_GW_PID
  tunnel_gateway "$LANB" 203.0.113.9 gwoutb "$GWB_API"
  GWB_PID=$LAST_GW_PID
}

# tunnel_pki : a test CA and a server certificate for tunnel.test and 198.51.100.20, made with
# the openssl CLI into $TMP/pki: ca.pem, server.pem, server.key. Also other-ca.pem (a CA that
# signed nothing here) and expired.pem/expired.key (signed by the CA, valid only in 2020).
tunnel_pki() {
  local d=$TMP/pki
  mkdir -p "$d/db"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=dpm test CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=another CA" \
    -keyout "$d/other-ca.key" -out "$d/other-ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=tunnel.test" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:tunnel.test,IP:%s\n' "$TUNNEL_SERVER_ADDR" >"$d/san.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/san.ext" -out "$d/server.pem" 2>/dev/null
  # An expired certificate: `openssl ca` takes explicit start and end dates.
  : >"$d/db/index.txt"
  echo 1000 >"$d/db/serial"
  cat >"$d/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
database = $d/db/index.txt
serial = $d/db/serial
new_certs_dir = $d/db
certificate = $d/ca.pem
private_key = $d/ca.key
default_md = sha256
policy = any
copy_extensions = copy
[any]
commonName = supplied
CNF
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=tunnel.test" \
    -addext "subjectAltName=DNS:tunnel.test,IP:$TUNNEL_SERVER_ADDR" \
    -keyout "$d/expired.key" -out "$d/expired.csr" 2>/dev/null
  openssl ca -batch -config "$d/ca.cnf" -in "$d/expired.csr" -out "$d/expired.pem" \
    -startdate 20200101000000Z -enddate 20200102000000Z >/dev/null 2>&1
  [ -s "$d/server.pem" ] && [ -s "$d/expired.pem" ] || e2e_fail "could not make the test certificates"
}

# tunnel_token NAME : a random token in $TMP/NAME.token (mode 0600); prints it.
tunnel_token() {
  local f=$TMP/$1.token
  (umask 077; head -c 24 /dev/urandom | base64 | tr -d '=+/' >"$f")
  cat "$f"
}

# tunnel_access [SERVICES_OF_BOB] : the access file $TMP/access.json: proxy "alpha" (token
# $TMP/alpha.token), redirector "bob" allowed SERVICES_OF_BOB (default "*.alpha"), redirector
# "eve" allowed only "nothing.alpha". Extra JSON members of the top object: $TUNNEL_ACCESS_EXTRA.
tunnel_access() {
  local bob=${1:-*.alpha}
  local alpha eve_tok bob_tok
  alpha=$(tunnel_token alpha)
  bob_tok=$(tunnel_token bob)
  eve_tok=$(tunnel_token eve)
  cat >"$TMP/access.json" <<JSON
{
  "proxies": { "alpha": { "token": "$alpha" } },
  "redirectors": {
    "bob": { "token": "$bob_tok", "services": ["$bob"] },
    "eve": { "token": "$eve_tok", "services": ["nothing.alpha"] }
  }${TUNNEL_ACCESS_EXTRA:+, $TUNNEL_ACCESS_EXTRA}
}
JSON
}

# tunnel_start_server [ARGS...] : `dpmd tunnel-server` in wan; sets TS_PID, TS_CTL (its
# control socket), log $TMP/tunnel-server.log.
tunnel_start_server() {
  TS_CTL=$TMP/ts.sock
  e2e_bg "$WAN" "$DPMD" tunnel-server --listen "$TUNNEL_SERVER_ADDR:$TUNNEL_PORT" --cert "$TMP/pki/server.pem" \
    --key "$TMP/pki/server.key" --access "$TMP/access.json" --control-socket "$TS_CTL" "$@" \
    >>"$TMP/tunnel-server.log" 2>&1
  TS_PID=$LAST_PID
  e2e_wait_for 10 grep -q "listening on" "$TMP/tunnel-server.log" ||
    { cat "$TMP/tunnel-server.log" >&2; e2e_fail "dpmd tunnel-server did not start"; }
}

# tunnel_start_proxy [ARGS...] : `dpmd service-proxy` "alpha" in lana publishing web (nginx),
# ssh (sshd) and echo (TCP echo) of srva; sets SP_PID, SP_CTL, log $TMP/service-proxy.log.
tunnel_start_proxy() {
  SP_CTL=$TMP/sp.sock
  e2e_bg "$LANA" "$DPMD" service-proxy --server "$TUNNEL_SERVER_ADDR:$TUNNEL_PORT" --ca "$TMP/pki/ca.pem" \
    --name alpha --token-file "$TMP/alpha.token" --service web=10.77.3.2:80 --service ssh=10.77.3.2:22 \
    --service echo=10.77.3.2:7 --control-socket "$SP_CTL" "$@" >>"$TMP/service-proxy.log" 2>&1
  SP_PID=$LAST_PID
}

# tunnel_start_redirector NAME [ARGS...] : `dpmd redirector` NAME in lanb; sets RD_PID, RD_CTL,
# log $TMP/redirector-NAME.log.
tunnel_start_redirector() {
  local name=$1; shift
  RD_CTL=$TMP/rd-$name.sock
  e2e_bg "$LANB" "$DPMD" redirector --server "$TUNNEL_SERVER_ADDR:$TUNNEL_PORT" --ca "$TMP/pki/ca.pem" \
    --name "$name" --token-file "$TMP/$name.token" --control-socket "$RD_CTL" "$@" >>"$TMP/redirector-$name.log" 2>&1
  RD_PID=$LAST_PID
}

# tunnel_up CTL : true once the role at control socket CTL reports its session up.
tunnel_up() { [ "$(e2e_json "$1" 's["state"]')" = up ]; }

# tunnel_published NAME : true once the tunnel server lists pseudo name NAME.
tunnel_published() {
  [ "$(e2e_json "$TS_CTL" "any(x['name'] == '$1' for x in s['services'])")" = True ]
}

# tunnel_run CMD... : runs CMD in lanb under the hook in tunnel mode, against redirector $RD_CTL.
tunnel_run() { ip netns exec "$LANB" "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- "$@"; }

# tunnel_servers DOCROOT : nginx on 10.77.3.2:80 (docroot DOCROOT) and a TCP echo on :7 in srva.
tunnel_servers() {
  e2e_nginx "$SRVA" 10.77.3.2 80 "$1"
  e2e_tcp_echo "$SRVA" 10.77.3.2 7 "$TMP/echo-sources.log"
}

# tunnel_chain [PROXY_ARGS...] : the server, the proxy (more flags: PROXY_ARGS) and redirector
# bob, each checked (e2e_check) to come up; the server publishes web.alpha.dpm.internal.
tunnel_chain() {
  tunnel_start_server
  tunnel_start_proxy "$@"
  e2e_check "the proxy's session comes up" e2e_wait_for 20 tunnel_up "$SP_CTL"
  e2e_check "the server publishes web.alpha.dpm.internal" e2e_wait_for 10 tunnel_published web.alpha.dpm.internal
  tunnel_start_redirector bob
  e2e_check "the redirector's session comes up" e2e_wait_for 20 tunnel_up "$RD_CTL"
}
