#!/usr/bin/env bash
# The gateway restarts under a live session (RFC 6887 §8.5): the DPM driver sees
# the epoch go back in the next reply (here a renewal: the gateway grants at most 4 s, so the
# driver renews every 2 s), asks again for every grant it holds, suggesting the same registered
# endpoint, and the session carries on through the new gateway with the same external port.
source "$(dirname "$0")/dpm_lib.sh"
e2e_require_root dpm_restart
e2e_init dpm_restart

DPM_GW_ARGS="--min-lifetime 2 --max-lifetime 4"
dpm_topology 203.0.113.1
e2e_bg "$WAN" /usr/bin/python3 "$(dirname "$0")/udp_echo.py" "$TMP/echo.log" 7 198.51.100.10 >"$TMP/echo.out" 2>&1
e2e_wait_for 5 grep -q "udp_echo ready" "$TMP/echo.out" || e2e_fail "the UDP echo server did not start"

gw_json() { "$DPMD" status --api-socket "$GW_API" --json 2>/dev/null; }
udp_session() {  # "internal external" of the gateway's UDP DPM session, if any
  gw_json | /usr/bin/python3 -c '
import json,sys
for x in json.load(sys.stdin)["gateway"]["sessions"]:
    if x["proto"] == "udp" and x["dpm"]: print(x["internal"], x["external"])' 2>/dev/null
}
echoes() { wc -l <"$TMP/pings.out"; }

# One UDP session, a datagram every 0.2 s for about 16 s.
(for i in $(seq 1 80); do echo "ping $i"; sleep 0.2; done) |
  ip netns exec "$LAN" timeout 40 "$DPMCAT" --socket "$C1_API" -u -w 2 198.51.100.10 7 >"$TMP/pings.out" 2>"$TMP/pings.err" &
PINGER=$!
e2e_wait_for 10 grep -q "ping 5" "$TMP/pings.out" || true
before=$(udp_session)
echo "  before: session $before, epoch $(gw_json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["gateway"]["epoch"])')"
e2e_check "the session is echoed through the first gateway" test "$(echoes)" -ge 5
sleep 4  # let the first gateway's epoch grow

echo "--- the gateway stops and starts again (no state survives) ---"
dpm_stop_gateway
stopped_at=$(echoes)
sleep 1
dpm_start_gateway 203.0.113.1
echo "  restarted: epoch $(gw_json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["gateway"]["epoch"])')"
e2e_wait_for 10 sh -c "[ \$(wc -l <'$TMP/pings.out') -ge $((stopped_at + 5)) ]" || true
after=$(udp_session)
echo "  after: session $after; echoes $stopped_at at the stop, $(echoes) now"
e2e_check "echoes resume through the restarted gateway" test "$(echoes)" -ge $((stopped_at + 5))
e2e_check "the driver re-created the mapping there" test -n "$after"
e2e_expect_eq "with the same internal and registered endpoints" "$before" "$after"
restarts=$("$DPMD" status --api-socket "$C1_API" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["dpm_driver"]["gateway_restarts"])')
e2e_check "the driver saw the epoch go back ($restarts restart)" test "$restarts" -ge 1
e2e_check "the echo server saw one source address and port throughout" \
  test "$(cut -d' ' -f1 "$TMP/echo.log" | sort -u | wc -l)" -eq 1
wait "$PINGER" || true
e2e_finish
