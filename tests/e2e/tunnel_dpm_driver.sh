#!/usr/bin/env bash
# e2e.tunnel_dpm_driver (root): the service proxy makes its outbound connections through a
# `dpmd client` with the DPM driver in network A (`--api-socket`, docs/tunnel.md "Across NATs"),
# so gateway A sets up each mapping before the first SYN.
# Asserts:
#   - the proxy's session comes up and curl by pseudo name from network B fetches a file from
#     nginx in A (checksum);
#   - the proxy's status says through_dpm true;
#   - gateway A's status holds a DPM session (dpm true) from the dpm client (internal
#     10.77.1.2:*) whose remote is the tunnel server, 198.51.100.20:7443;
#   - the dpm client's status lists a connected socket to 198.51.100.20:7443 holding DPM
#     grants (protocol "tcp*", docs/dpmd.md), bound to the external endpoint of that gateway
#     session;
#   - the proxy's connection to the real server went through the dpm client too: nginx saw
#     the request from 10.77.1.2 (the client's stack), not from the router 10.77.3.1.
source "$(dirname "$0")/tunnel_lib.sh"
e2e_require_root tunnel_dpm_driver
e2e_require_cmd curl openssl
e2e_require_preload
e2e_init tunnel_dpm_driver

tunnel_topology
tunnel_pki
tunnel_access
mkdir -p "$TMP/www"
head -c 2000000 /dev/urandom >"$TMP/www/file.bin"
tunnel_servers "$TMP/www"

# A DPM client in network A, as client 1 of dpm_lib.sh's dpm_topology.
C1_API=$TMP/c1.sock
e2e_dpmd "$LANA" "$C1_API" --tun c1 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
  --dpm-gateway 10.77.0.1 --private-network 10.77.0.0/16

tunnel_chain --api-socket "$C1_API"

rc=0
tunnel_run curl -sS --max-time 60 -o "$TMP/got.bin" http://web.alpha.dpm.internal/file.bin 2>"$TMP/curl.err" || rc=$?
cat "$TMP/curl.err"
e2e_expect_eq "curl by pseudo name from network B" "0 $(sha "$TMP/www/file.bin")" "$rc $(sha "$TMP/got.bin" 2>/dev/null || echo none)"

e2e_expect_eq "the proxy's status says through_dpm" True "$(e2e_json "$SP_CTL" 's["through_dpm"]')"
"$DPMD" status --api-socket "$GWA_API" | sed -n '/^sessions/,/^mappings/p' | sed 's/^/  gateway A: /'
e2e_expect_eq "gateway A holds a DPM session from the dpm client to the tunnel server" True \
  "$(e2e_json "$GWA_API" 'any(x["dpm"] and x["proto"] == "tcp" and x["internal"].startswith("10.77.1.2:") and x["remote"] == "198.51.100.20:7443" for x in s["gateway"]["sessions"])')"
e2e_json "$C1_API" '"\n".join("%s %s %s -> %s" % (x["proto"], x["state"], x["local"], x["peer"]) for x in s["sockets"])' | sed 's/^/  dpm client socket: /'
e2e_expect_eq "the dpm client lists the connected socket to the tunnel server" True \
  "$(e2e_json "$C1_API" 'any(x["proto"] == "tcp*" and x["state"] == "connected" and x["peer"] == "198.51.100.20:7443" for x in s["sockets"])')"
external=$(e2e_json "$GWA_API" '" ".join(x["external"] for x in s["gateway"]["sessions"] if x["dpm"] and x["remote"] == "198.51.100.20:7443")')
local_ep=$(e2e_json "$C1_API" '" ".join(x["local"] for x in s["sockets"] if x["peer"] == "198.51.100.20:7443")')
e2e_expect_eq "the socket's local endpoint is the gateway session's external one" "$external" "$local_ep"
e2e_check "nginx saw the request from the dpm client's stack (10.77.1.2)" \
  e2e_wait_for 5 grep -q '^10\.77\.1\.2 .*GET /file.bin' "$TMP/nginx-access.log"
e2e_finish
