#!/usr/bin/env bash
# e2e.socket_addresses (root): per-socket addresses from the static pool (docs/design.md
# §7). dpmd on TUN in "host" with --address-pool of two addresses; a real nginx in
# "wan" logs each request's source address. Asserts: two sockets held open at once have two
# different pool addresses, each what dpm_getsockname reported and what nginx saw, neither
# the instance's common address; a third socket asking for one gets EADDRNOTAVAIL (never a
# shared address); after close the address returns to the pool and lwIP stops answering it
# (ping); a listening socket with a pool address accepts and echoes a connection from wan on
# it; a common-address socket still uses 10.77.1.2; with --address-at bind the address is
# taken at connect; bind to an address not the socket's own is EADDRNOTAVAIL. DSCP per
# address (item 5): every packet of a socket's address carries the DSCP it set
# (DPM_ADDRESS_DSCP), others none (dpmd's --pcap read by tshark). AF_INET_TUPLE (the patent's
# second form) gets a pool address too.
source "$(dirname "$0")/lib.sh"
e2e_require_root socket_addresses
e2e_require_cmd nginx tshark
e2e_init socket_addresses
e2e_topology

mkdir -p "$TMP/www"
echo "hello from wan" >"$TMP/www/hello"
NGINX_LOG_FORMAT='$remote_addr:$remote_port "$request" $status' e2e_nginx "$WAN" 198.51.100.10 80 "$TMP/www"
API=$TMP/api.sock
# 10.77.1.0/24 is routed to the TUN by its host address; the pool lies inside it.
e2e_dpmd "$HOST" "$API" --tun sa0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
  --address-pool 10.77.1.100-10.77.1.101 --pcap "$TMP/link.pcap"

# fetch NAME TUPLE [dpm-cat args...] : GET /hello, holding the connection ~3 s after the reply.
fetch() {
  local name=$1 tuple=$2; shift 2
  (printf 'GET /hello HTTP/1.1\r\nHost: wan\r\n\r\n'; sleep 3) |
    ip netns exec "$HOST" timeout 15 "$DPMCAT" --socket "$API" --tuple "$tuple" "$@" 198.51.100.10 80 \
      >"$TMP/$name.out" 2>"$TMP/$name.err" &
  FETCHES+=($!)
}
# Waits for the fetches started so far (not for nginx and dpmd, also in the background).
wait_fetches() {
  local p
  for p in "${FETCHES[@]}"; do wait "$p" 2>/dev/null || true; done
  FETCHES=()
}
FETCHES=()

echo "--- two sockets, two addresses of their own ---"
fetch a static --dscp 46
fetch b static
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/a.err" || true
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/b.err" || true
a=$(local_of a)
b=$(local_of b)
echo "  socket a: $a, socket b: $b"
e2e_check "socket a has a pool address" grep -Eq '^10\.77\.1\.10[01]$' <<<"$a"
e2e_check "socket b has a pool address" grep -Eq '^10\.77\.1\.10[01]$' <<<"$b"
e2e_check "and they differ" test -n "$a" -a "$a" != "$b"
e2e_wait_for 5 sh -c "grep -c 'GET /hello' '$TMP/nginx-access.log' | grep -qx 2" || true
cat "$TMP/nginx-access.log" | sed 's/^/  nginx: /'
e2e_check "nginx saw socket a's address" grep -q "^$a:[0-9]* \"GET /hello" "$TMP/nginx-access.log"
e2e_check "nginx saw socket b's address" grep -q "^$b:[0-9]* \"GET /hello" "$TMP/nginx-access.log"

echo "--- the pool is empty: a third socket gets EADDRNOTAVAIL ---"
out=$(ip netns exec "$HOST" timeout 5 "$DPMCAT" --socket "$API" --tuple static 198.51.100.10 80 </dev/null 2>&1 || true)
echo "  $out"
e2e_check "EADDRNOTAVAIL, not a shared address" grep -q "Cannot assign requested address" <<<"$out"
status=$("$DPMD" status --api-socket "$API" --json)
exhausted=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["drops"]["address_exhausted"])' "$status")
e2e_expect_eq "status counts the refusal" 1 "$exhausted"
e2e_check "while held, the kernel side reaches a's address (ping)" ip netns exec "$HOST" ping -c1 -W2 "$a"

echo "--- close gives the address back ---"
wait_fetches
e2e_wait_for 5 sh -c "! ip netns exec '$HOST' ping -c1 -W1 '$a' >/dev/null" || true
e2e_check "after close, a's address is not answered any more" sh -c "! ip netns exec '$HOST' ping -c1 -W1 '$a' >/dev/null"
fetch c new
fetch d common
wait_fetches
c=$(local_of c)
echo "  socket c (AF_INET_TUPLE): $c, socket d (common): $(local_of d)"
e2e_check "a closed socket's address is handed out again, to an AF_INET_TUPLE socket" \
  grep -Eq '^10\.77\.1\.10[01]$' <<<"$c"
e2e_expect_eq "a common-address socket keeps the instance's address" 10.77.1.2 "$(local_of d)"
e2e_check "the HTTP replies arrived" grep -q "hello from wan" "$TMP/c.out"

echo "--- a listening socket with an address of its own ---"
ip netns exec "$HOST" timeout 20 "$DPMCAT" --socket "$API" --tuple static -l -e 8080 </dev/null \
  >"$TMP/l.out" 2>"$TMP/l.err" &
LISTENER=$!
e2e_wait_for 5 grep -q "^dpm-cat: local" "$TMP/l.err" || true
l=$(sed -n 's/^dpm-cat: local \([0-9.]*\):8080$/\1/p' "$TMP/l.err" | head -1)
echo "  listener: $l:8080"
e2e_check "the listener has a pool address" grep -Eq '^10\.77\.1\.10[01]$' <<<"$l"
echo_back=$(ip netns exec "$WAN" timeout 5 bash -c "exec 3<>/dev/tcp/$l/8080; echo ping >&3; read -r line <&3; echo \$line" || true)
e2e_expect_eq "a connection from wan to that address is accepted and echoed" ping "$echo_back"
e2e_wait_for 3 sh -c "grep -q 'peer 198.51.100.10' '$TMP/l.err'" || true
e2e_check "the accepted connection's address is the listener's" grep -q "^dpm-cat: local $l:8080 peer 198.51.100.10:" "$TMP/l.err"
kill "$LISTENER" 2>/dev/null || true
wait "$LISTENER" 2>/dev/null || true

echo "--- bind to an address not the socket's own ---"
out=$(ip netns exec "$HOST" timeout 5 "$DPMCAT" --socket "$API" --tuple static -s 10.77.1.2 198.51.100.10 80 </dev/null 2>&1 || true)
echo "  $out"
e2e_check "bind to the common address from a static socket: EADDRNOTAVAIL" grep -q "bind: Cannot assign requested address" <<<"$out"
out=$(ip netns exec "$HOST" timeout 5 "$DPMCAT" --socket "$API" --tuple dynamic 198.51.100.10 80 </dev/null 2>&1 || true)
e2e_check "a dynamic address without --dhcp: EADDRNOTAVAIL" grep -q "Cannot assign requested address" <<<"$out"

echo "--- DSCP per address, on the wire ---"
e2e_stop "$DPMD_PID"
# dscps SRC PORT: the distinct DSCP values of the TCP packets sent from SRC:PORT, in the capture.
dscps() {
  tshark -r "$TMP/link.pcap" -Y "ip.src == $1 && tcp.srcport == $2" -T fields -e ip.dsfield.dscp 2>/dev/null |
    sort -u | xargs
}
echo "  a: $(dscps "$a" "$(port_of a)"); b: $(dscps "$b" "$(port_of b)"); c: $(dscps "$c" "$(port_of c)");" \
  "d (common): $(dscps 10.77.1.2 "$(port_of d)")"
e2e_expect_eq "every packet of socket a's address carries the DSCP it set (46, EF)" 46 "$(dscps "$a" "$(port_of a)")"
e2e_check "socket a sent data packets (the request)" \
  test "$(tshark -r "$TMP/link.pcap" -Y "ip.src == $a && tcp.len > 0" 2>/dev/null | wc -l)" -ge 1
e2e_expect_eq "another socket's address, the same address after release, and the common address are not marked" \
  "0 0 0" "$(dscps "$b" "$(port_of b)") $(dscps "$c" "$(port_of c)") $(dscps 10.77.1.2 "$(port_of d)")"

echo "--- the deferred embodiment (--address-at bind) ---"
e2e_dpmd "$HOST" "$API" --tun sa0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
  --address-pool 10.77.1.100-10.77.1.100 --address-at bind
fetch e static
fetch f static
wait_fetches
echo "  socket e: $(local_of e); f: $(grep -h 'dpm-cat:' "$TMP/f.err" | head -1)"
one=$(cat "$TMP/e.err" "$TMP/f.err" | grep -c "^dpm-cat: local 10.77.1.100:" || true)
refused=$(cat "$TMP/e.err" "$TMP/f.err" | grep -c "Cannot assign requested address" || true)
e2e_expect_eq "one socket got the single address at connect, the other was refused there" "1 1" "$one $refused"
e2e_finish
