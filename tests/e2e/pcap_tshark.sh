#!/usr/bin/env bash
# e2e.pcap_tshark (no root): `dpmd client --pcap FILE` writes a capture tshark decodes. On a
# virtual-link pair, a dpm-cat on B fetches /hello over HTTP from a dpm-cat serving a fixed
# response on A, port 80; A's capture must show the SYN, the SYN-ACK, the HTTP GET and the
# 200 response, both FINs, and no malformed packet.
source "$(dirname "$0")/lib.sh"
e2e_require_cmd tshark
e2e_init pcap_tshark

API_A=$TMP/a.sock API_B=$TMP/b.sock PCAP=$TMP/a.pcap
e2e_dpmd - "$API_A" --virtual "$TMP/a.link,$TMP/b.link" --address 10.77.9.1/24 --gateway '' --pcap "$PCAP"
DPMD_A=$DPMD_PID
e2e_dpmd - "$API_B" --virtual "$TMP/b.link,$TMP/a.link" --address 10.77.9.2/24 --gateway '' --pcap "$TMP/b.pcap"
DPMD_B=$DPMD_PID

printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n' >"$TMP/response"
e2e_bg - "$DPMCAT" --socket "$API_A" -l 80 -N <"$TMP/response" >"$TMP/request" 2>"$TMP/server.err"
SERVER=$LAST_PID
e2e_wait_for 10 grep -q '^dpm-cat: local' "$TMP/server.err" || e2e_fail "server did not start"
printf 'GET /hello HTTP/1.0\r\nHost: 10.77.9.1\r\n\r\n' |
  timeout 20 "$DPMCAT" --socket "$API_B" -N 10.77.9.1 80 >"$TMP/reply" 2>"$TMP/client.err" || echo "client exited with $?"
e2e_wait_for 10 bash -c "! kill -0 $SERVER" || true
e2e_check "the client got the response" cmp -s "$TMP/response" "$TMP/reply"
e2e_wait_for 5 e2e_idle "$API_A" || true
e2e_stop "$DPMD_A"  # closes the capture file
e2e_stop "$DPMD_B"

ts() { tshark -r "$PCAP" "$@" 2>/dev/null; }
echo "  capture of A:"
ts | sed 's/^/    /'
e2e_expect_eq "one SYN from B to A:80" "10.77.9.2 10.77.9.1 80" \
  "$(ts -Y 'tcp.flags.syn==1 && tcp.flags.ack==0' -T fields -e ip.src -e ip.dst -e tcp.dstport | tr '\t' ' ')"
e2e_expect_eq "one SYN-ACK from A:80 to B" "10.77.9.1 10.77.9.2 80" \
  "$(ts -Y 'tcp.flags.syn==1 && tcp.flags.ack==1' -T fields -e ip.src -e ip.dst -e tcp.srcport | tr '\t' ' ')"
e2e_expect_eq "the HTTP GET decoded" "10.77.9.2 GET /hello" \
  "$(ts -Y 'http.request' -T fields -e ip.src -e http.request.method -e http.request.uri | tr '\t' ' ')"
e2e_expect_eq "the HTTP 200 response decoded" "10.77.9.1 200" \
  "$(ts -Y 'http.response' -T fields -e ip.src -e http.response.code | tr '\t' ' ')"
e2e_expect_eq "a FIN from each side" "10.77.9.1,10.77.9.2" \
  "$(ts -Y 'tcp.flags.fin==1' -T fields -e ip.src | sort -u | paste -sd,)"
e2e_expect_eq "no malformed packet" 0 "$(ts -Y '_ws.malformed' | wc -l)"
e2e_expect_eq "B's capture has as many packets as A's" "$(ts | wc -l)" "$(tshark -r "$TMP/b.pcap" 2>/dev/null | wc -l)"
e2e_finish
