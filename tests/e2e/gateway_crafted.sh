#!/usr/bin/env bash
# e2e.gateway_crafted (no root): Scapy-crafted traffic against a running `dpmd gateway` whose
# links are virtual (UNIX datagram sockets the test holds the other ends of). Truncated and
# oversized setup messages, a spoofed client address, setup requests on the outside link (no
# state created), bad checksums, TTL 1 and fragments (dropped and counted), and a plain
# host's packet translated with correct checksums. See gateway_crafted.py.
source "$(dirname "$0")/lib.sh"
/usr/bin/python3 -c 'import scapy' 2>/dev/null || { echo "SKIP: python3-scapy missing"; exit 77; }
e2e_init gateway_crafted
e2e_bg - "$DPMD" gateway --inside-virtual "$TMP/gw-in.link,$TMP/net-in.link" \
  --outside-virtual "$TMP/gw-out.link,$TMP/net-out.link" --address 10.77.0.1/16 --pool 203.0.113.1 \
  --api-socket "$TMP/gw.sock" >"$TMP/gw.log" 2>&1
e2e_wait_for 10 grep -q "gateway ready" "$TMP/gw.log" || { cat "$TMP/gw.log"; e2e_fail "gateway did not start"; }
rc=0
/usr/bin/python3 "$E2E_DIR/gateway_crafted.py" "$TMP/gw-in.link" "$TMP/net-in.link" "$TMP/gw-out.link" \
  "$TMP/net-out.link" "$DPMD" "$TMP/gw.sock" || rc=$?
"$DPMD" status --api-socket "$TMP/gw.sock" | sed -n '/^gateway/,/^sessions/p' | sed 's/^/  /'
[ $rc = 0 ] && echo "RESULT: all checks passed" || echo "RESULT: $rc check(s) failed"
exit $rc
