#!/usr/bin/env bash
# e2e.dpm_addresses (root): per-socket addresses with DPM (docs/design.md §6,
# §7). DPM client 1 (10.77.1.2 on TUN c1, behind `dpmd gateway`) has a static pool
# 10.77.1.100-10.77.1.101; two of its sockets, each with an address of its own, fetch from
# nginx outside at once. Asserts: the gateway holds one DPM session per socket address — the
# internal endpoints are 10.77.1.100 and 10.77.1.101, not the client's common address (the
# driver sent each PEER request from, and for, the socket's address); each socket's
# dpm_getsockname is the registered endpoint nginx logged.
source "$(dirname "$0")/dpm_lib.sh"
e2e_require_root dpm_addresses
e2e_require_cmd nginx
e2e_init dpm_addresses
mkdir -p "$TMP/www"
echo "hello from wan" >"$TMP/www/hello"
DPM_C1_ARGS="--address-pool 10.77.1.100-10.77.1.101" dpm_topology 203.0.113.1
dpm_servers "$TMP/www"

fetch() {  # fetch NAME : GET /hello over a socket with its own address, held ~5 s
  (printf 'GET /hello HTTP/1.1\r\nHost: wan\r\n\r\n'; sleep 5) |
    ip netns exec "$LAN" timeout 15 "$DPMCAT" --socket "$C1_API" --tuple static 198.51.100.10 80 \
      >"$TMP/$1.out" 2>"$TMP/$1.err" &
}
fetch a
fetch b
for n in a b; do e2e_wait_for 10 grep -q "^dpm-cat: local" "$TMP/$n.err" || true; done
e2e_wait_for 5 sh -c "[ \$(grep -c 'GET /hello' '$TMP/nginx-access.log') -ge 2 ]" || true
cat "$TMP/a.err" "$TMP/b.err" | grep "^dpm-cat: local" | sed 's/^/  /'
sed 's/^/  nginx: /' "$TMP/nginx-access.log"
status=$("$DPMD" status --api-socket "$GW_API" --json)
internal=$("$PY" -c '
import json,sys
s=json.loads(sys.argv[1])["gateway"]["sessions"]
print(" ".join(sorted(x["internal"].split(":")[0] for x in s if x["dpm"])))' "$status")
echo "  the gateway's DPM sessions, internal addresses: $internal"
e2e_expect_eq "one DPM session per socket address, from the sockets' own addresses" "10.77.1.100 10.77.1.101" "$internal"
for n in a b; do
  reg=$(sed -n 's/^dpm-cat: local \([0-9.:]*\) peer.*/\1/p' "$TMP/$n.err")
  e2e_check "socket $n: its registered endpoint $reg is what nginx saw" grep -q "^$reg 198.51.100.10 \"GET /hello" "$TMP/nginx-access.log"
  e2e_check "socket $n: the reply arrived" grep -q "hello from wan" "$TMP/$n.out"
done
e2e_expect_eq "client 1 holds two addresses of its own" 2 "$(e2e_json "$C1_API" 's["addresses"]["in_use"]')"
e2e_finish
