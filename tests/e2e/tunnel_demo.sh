#!/usr/bin/env bash
# The TCP service tunneling demo (README command 1, after the addresses demo; docs/tunnel.md).
# Two private networks, each behind its own `dpmd gateway`, both using 10.77.0.0/16; a
# `dpmd tunnel-server` outside. In network A a `dpmd service-proxy` publishes nginx as
# web.alpha.dpm.internal; in network B an unmodified curl run with `dpm-run --tunnel` fetches
# from it by that name through a `dpmd redirector`. Nothing in either network listens for the
# outside. Also an e2e test (e2e.tunnel_demo): exits non-zero if anything shown is not as stated.
#
#   srva: nginx 10.77.3.2 ── lana: service-proxy ── gateway A ─┐
#                                                              wan: tunnel-server 198.51.100.20:7443
#   lanb: curl (dpm-run --tunnel) ── redirector ── gateway B ──┘
source "$(dirname "$0")/tunnel_lib.sh"
e2e_require_root tunnel_demo
e2e_require_cmd curl openssl
e2e_require_preload
e2e_init tunnel_demo

echo
echo "dpm demo: TCP service tunneling by pseudo DNS name across two NATs (docs/tunnel.md)"
echo "------------------------------------------------------------------------"
tunnel_topology
tunnel_pki
tunnel_access
mkdir -p "$TMP/www"
echo "hello from network A's nginx" >"$TMP/www/index.html"
tunnel_servers "$TMP/www"
echo "network A: nginx on 10.77.3.2:80, behind gateway A (public 203.0.113.1)"
echo "network B: behind gateway B (public 203.0.113.9); the tunnel server on 198.51.100.20:7443"
tunnel_start_server
tunnel_start_proxy
e2e_wait_for 20 tunnel_up "$SP_CTL" || e2e_fail "the service proxy did not connect"
e2e_wait_for 10 tunnel_published web.alpha.dpm.internal || e2e_fail "web.alpha.dpm.internal was not published"
tunnel_start_redirector bob
e2e_wait_for 20 tunnel_up "$RD_CTL" || e2e_fail "the redirector did not connect"
echo
echo "\$ dpmd status --api-socket <tunnel server>"
"$DPMD" status --api-socket "$TS_CTL" | sed 's/^/  /'
echo
echo "\$ dpm-run --tunnel -- curl -sS http://web.alpha.dpm.internal/     (in network B)"
out=$(tunnel_run curl -sS --max-time 20 http://web.alpha.dpm.internal/ 2>&1 || true)
echo "$out" | sed 's/^/  /'
e2e_expect_eq "curl in network B got network A's page by pseudo name" "hello from network A's nginx" "$out"
echo
echo "\$ dpm-run --tunnel -- curl http://nosuch.alpha.dpm.internal/    (not published: EACCES)"
out=$(tunnel_run curl -sS --max-time 20 http://nosuch.alpha.dpm.internal/ 2>&1 || true)
echo "$out" | sed 's/^/  /'
e2e_check "an unknown service is refused at connect()" grep -q "Permission denied\|Couldn't connect\|Failed to connect" <<<"$out"
e2e_check "nginx saw the request from inside network A (the proxy, 10.77.3.1)" \
  e2e_wait_for 5 grep -q '^10\.77\.3\.1 ' "$TMP/nginx-access.log"
e2e_finish
