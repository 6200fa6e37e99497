#!/usr/bin/env bash
# e2e.nginx_fetch: a real nginx in "wan" serves a random file; dpm-cat in "host" fetches it
# through dpmd on a TUN device, at MTU 1500 and at MTU 9000. Checks: body checksum, nginx's
# access log (source address, full byte count), dpm-cat's local address, and the MSS of the
# stack's SYN in the capture (MTU - 40).
source "$(dirname "$0")/lib.sh"
e2e_require_root nginx_fetch
e2e_require_cmd nginx tshark
e2e_init nginx_fetch
e2e_topology

mkdir -p "$TMP/www"
head -c $((6 * 1024 * 1024 + 12345)) /dev/urandom >"$TMP/www/f"
size=$(file_size "$TMP/www/f")
want=$(sha "$TMP/www/f")
e2e_nginx "$WAN" 198.51.100.10 80 "$TMP/www"

# fetch_at_mtu MTU TUN : one fetch through a fresh dpmd on TUN with link MTU (veth too).
fetch_at_mtu() {
  local mtu=$1 tun=$2
  local api=$TMP/api-$mtu.sock pcap=$TMP/cap-$mtu.pcap out=$TMP/resp-$mtu err=$TMP/cat-$mtu.err
  echo "--- MTU $mtu ---"
  # The veth carries the same MTU, so neither the kernel nor nginx fragments or clamps.
  ip -n "$HOST" link set "$VETH_HOST" mtu "$mtu"
  ip -n "$WAN" link set "$VETH_WAN" mtu "$mtu"
  e2e_dpmd "$HOST" "$api" --tun "$tun" --mtu "$mtu" --address 10.77.1.2/24 --gateway 10.77.1.1 \
    --host-address 10.77.1.1/24 --pcap "$pcap"
  local lines_before
  lines_before=$(cat "$TMP/nginx-access.log" 2>/dev/null | wc -l || true)

  printf 'GET /f HTTP/1.0\r\n\r\n' | timeout 60 ip netns exec "$HOST" "$DPMCAT" --socket "$api" 198.51.100.10 80 \
    >"$out" 2>"$err" || echo "dpm-cat exited with $?"
  sed 's/^/  /' "$err"
  strip_http "$out" >"$out.body"
  e2e_expect_eq "MTU $mtu: body sha256 equals the file's" "$want" "$(sha "$out.body")"
  e2e_expect_eq "MTU $mtu: body length" "$size" "$(file_size "$out.body")"
  e2e_check "MTU $mtu: HTTP status 200" grep -q '^HTTP/1.1 200 OK' "$out"
  e2e_check "MTU $mtu: dpm-cat's local address is the stack's (10.77.1.2)" \
    grep -Eq '^dpm-cat: local 10\.77\.1\.2:[0-9]+ peer 198\.51\.100\.10:80$' "$err"
  e2e_check "MTU $mtu: dpm-cat counted every byte" \
    grep -q "received $(file_size "$out") bytes" "$err"

  # nginx logs the request when it has finished sending.
  e2e_wait_for 5 test "$(wc -l <"$TMP/nginx-access.log")" -gt "$lines_before" || true
  local line
  line=$(tail -n 1 "$TMP/nginx-access.log" || true)
  echo "  nginx: $line"
  e2e_expect_eq "MTU $mtu: nginx saw the request from 10.77.1.2" 10.77.1.2 "$(echo "$line" | awk '{print $1}')"
  e2e_expect_eq "MTU $mtu: nginx sent the whole file (status and bytes)" "200 $size" \
    "$(echo "$line" | awk '{print $9, $10}')"

  e2e_stop "$DPMD_PID"  # flushes and closes the capture; the TUN device goes with it
  local mss syn_ack_mss biggest
  mss=$(tshark -r "$pcap" -Y 'tcp.flags.syn==1 && tcp.flags.ack==0 && ip.src==10.77.1.2' \
    -T fields -e tcp.options.mss_val 2>/dev/null | head -n 1 || true)
  e2e_expect_eq "MTU $mtu: the stack's SYN carries MSS $((mtu - 40))" "$((mtu - 40))" "$mss"
  syn_ack_mss=$(tshark -r "$pcap" -Y 'tcp.flags.syn==1 && tcp.flags.ack==1 && ip.src==198.51.100.10' \
    -T fields -e tcp.options.mss_val 2>/dev/null | head -n 1 || true)
  e2e_expect_eq "MTU $mtu: nginx's SYN-ACK carries MSS $((mtu - 40))" "$((mtu - 40))" "$syn_ack_mss"
  biggest=$(tshark -r "$pcap" -Y 'ip.src==198.51.100.10' -T fields -e ip.len 2>/dev/null | sort -n | tail -n 1 || true)
  e2e_expect_eq "MTU $mtu: largest packet from nginx fills the MTU" "$mtu" "$biggest"
}

fetch_at_mtu 1500 dpm0
fetch_at_mtu 9000 dpm1
e2e_finish
