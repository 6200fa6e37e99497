#!/usr/bin/env bash
# e2e.tunnel_errors (root): every failure along the chain hook → redirector → tunnel server →
# service proxy → real server reaches the program's connect() as the errno of docs/tunnel.md
# "Errors", for a blocking and for a non-blocking connect() alike:
#   the service's proxy not connected        EHOSTUNREACH
#   a service the proxy does not publish     EACCES
#   a service this access token may not use  EACCES (the same answer: no existence oracle)
#   the real server refusing                 ECONNREFUSED
#   the real server not answering            ETIMEDOUT (SYNs dropped by nftables in srva)
#   the tunnel server down                   ENETUNREACH
#   the redirector not running               ECONNREFUSED (by address; names do not resolve)
#   a good service, for contrast             OK
source "$(dirname "$0")/tunnel_lib.sh"
e2e_require_root tunnel_errors
e2e_require_cmd openssl nft
e2e_require_preload
e2e_init tunnel_errors

tunnel_topology
tunnel_pki
tunnel_access
mkdir -p "$TMP/www"
echo hello >"$TMP/www/index.html"
tunnel_servers "$TMP/www"
# Port 81 in srva drops SYNs: a real server that does not answer.
ip netns exec "$SRVA" nft -f - <<'NFT'
table inet blackhole {
  chain input {
    type filter hook input priority 0;
    tcp dport 81 drop
  }
}
NFT

# connect_as NAME HOST MODE : the errno name a program under redirector NAME's hook sees.
connect_as() {
  local rd=$TMP/rd-$1.sock
  ip netns exec "$LANB" timeout 90 "$DPMRUN" --tunnel --api-socket "$rd" -- "$PY" "$E2E_DIR/tunnel_connect_errno.py" \
    "$2" 80 "$3" 2>&1 | tail -n 1
}
# expect NAME HOST ERRNO : both connect modes give ERRNO.
expect() {
  local mode
  for mode in blocking nonblocking; do
    e2e_expect_eq "$2 for $1, $mode connect" "$3" "$(connect_as "$1" "$2" "$mode")"
  done
}

tunnel_start_server
tunnel_start_redirector bob
bob_ctl=$RD_CTL
tunnel_start_redirector eve
eve_ctl=$RD_CTL
e2e_check "bob's session comes up" e2e_wait_for 20 tunnel_up "$bob_ctl"
e2e_check "eve's session comes up" e2e_wait_for 20 tunnel_up "$eve_ctl"

echo "--- no proxy connected ---"
expect bob web.alpha.dpm.internal EHOSTUNREACH

echo "--- the proxy connected ---"
tunnel_start_proxy --service refused=10.77.3.2:9 --service silent=10.77.3.2:81 --service-timeout 2
e2e_check "the proxy's session comes up" e2e_wait_for 20 tunnel_up "$SP_CTL"
expect bob web.alpha.dpm.internal OK
expect bob nosuch.alpha.dpm.internal EACCES
expect bob web.nosuchproxy.dpm.internal EACCES
expect eve web.alpha.dpm.internal EACCES
expect eve nosuch.alpha.dpm.internal EACCES
expect bob refused.alpha.dpm.internal ECONNREFUSED
expect bob silent.alpha.dpm.internal ETIMEDOUT
e2e_expect_eq "a name outside the suffix is not resolved by the hook" "GAI" \
  "$(connect_as bob web.alpha.dpm.example blocking | cut -d' ' -f1)"

echo "--- a stream limit reached ---"
# A second redirector for bob with --max-streams 2: two connections held open, the third is
# refused with EAGAIN (limit) and a connection works again once one is closed.
e2e_bg "$LANB" "$DPMD" redirector --server "$TUNNEL_SERVER_ADDR:$TUNNEL_PORT" --ca "$TMP/pki/ca.pem" --name bob \
  --token-file "$TMP/bob.token" --control-socket "$TMP/rd-bob2.sock" --max-streams 2 >"$TMP/redirector-bob2.log" 2>&1
e2e_check "the limited redirector's session comes up" e2e_wait_for 20 tunnel_up "$TMP/rd-bob2.sock"
ip netns exec "$LANB" "$DPMRUN" --tunnel --api-socket "$TMP/rd-bob2.sock" -- "$PY" -c 'import socket, sys, time
held = [socket.create_connection(("web.alpha.dpm.internal", 80), timeout=10) for _ in range(2)]
open(sys.argv[1], "w").write("held\n"); time.sleep(8)' "$TMP/held" &
holder=$!
e2e_wait_for 10 test -s "$TMP/held" || true
e2e_expect_eq "a third connection over --max-streams 2" EAGAIN "$(connect_as bob2 web.alpha.dpm.internal blocking)"
wait "$holder" 2>/dev/null || true
e2e_check "and a connection works again once they are closed" \
  e2e_wait_for 10 sh -c "[ \"\$(ip netns exec '$LANB' '$DPMRUN' --tunnel --api-socket '$TMP/rd-bob2.sock' -- '$PY' '$E2E_DIR/tunnel_connect_errno.py' web.alpha.dpm.internal 80 blocking 2>&1 | tail -n 1)\" = OK ]"

echo "--- the tunnel server down ---"
e2e_stop "$TS_PID"
e2e_check "bob sees the session down" e2e_wait_for 10 sh -c "! '$DPMD' status --api-socket '$bob_ctl' --json | grep -q '\"state\": \"up\"'"
expect bob web.alpha.dpm.internal ENETUNREACH

echo "--- the redirector not running ---"
# Its pseudo address, known from before; with the redirector gone names do not resolve
# (EAI_AGAIN) and a connect() to a pseudo address is refused.
pseudo=$(ip netns exec "$LANB" "$DPMRUN" --tunnel --api-socket "$eve_ctl" -- getent ahostsv4 web.alpha.dpm.internal |
  awk 'NR == 1 {print $1}')
e2e_stop "$RD_PID"  # eve's
for mode in blocking nonblocking; do
  e2e_expect_eq "$mode connect to $pseudo with the redirector gone" ECONNREFUSED \
    "$(ip netns exec "$LANB" env DPM_TUNNEL=1 DPM_SOCKET="$eve_ctl" LD_PRELOAD="$PRELOAD_LIB" "$PY" \
       "$E2E_DIR/tunnel_connect_errno.py" "$pseudo" 80 "$mode" 2>&1 | tail -n 1)"
done
e2e_expect_eq "and the name does not resolve" "GAI" \
  "$(ip netns exec "$LANB" env DPM_TUNNEL=1 DPM_SOCKET="$eve_ctl" LD_PRELOAD="$PRELOAD_LIB" "$PY" \
     "$E2E_DIR/tunnel_connect_errno.py" web.alpha.dpm.internal 80 blocking 2>&1 | tail -n 1 | cut -d' ' -f1)"
"$DPMD" status --api-socket "$bob_ctl" | sed 's/^/  /'
e2e_finish
