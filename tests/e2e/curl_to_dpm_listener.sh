#!/usr/bin/env bash
# e2e.curl_to_dpm_listener: `dpm-cat -l 8080 -N` listens in the stack with a prepared HTTP
# response on stdin; Linux curl in "wan" fetches http://10.77.1.2:8080/. Checks: the body's
# checksum, curl's view of the peer, dpm-cat's view of the peer, and that dpm-cat's output
# holds curl's request line.
source "$(dirname "$0")/lib.sh"
e2e_require_root curl_to_dpm_listener
e2e_require_cmd curl
e2e_init curl_to_dpm_listener
e2e_topology

API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24

head -c $((3 * 1024 * 1024 + 777)) /dev/urandom >"$TMP/body"
size=$(file_size "$TMP/body")
{
  printf 'HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n' "$size"
  cat "$TMP/body"
} >"$TMP/response"

e2e_bg "$HOST" "$DPMCAT" --socket "$API" -l 8080 -N <"$TMP/response" >"$TMP/request" 2>"$TMP/cat.err"
CAT_PID=$LAST_PID
e2e_wait_for 10 grep -q '^dpm-cat: local' "$TMP/cat.err" || e2e_fail "dpm-cat did not start listening"
e2e_expect_eq "the daemon lists the listener" "tcp listening 0.0.0.0:8080" \
  "$(e2e_json "$API" '" ".join(x["proto"] + " " + x["state"] + " " + x["local"] for x in s["sockets"])')"

ip netns exec "$WAN" curl -sS --max-time 30 -o "$TMP/got" -w '%{http_code} %{remote_ip}:%{remote_port} %{size_download}\n' \
  http://10.77.1.2:8080/ >"$TMP/curl.out" 2>"$TMP/curl.err" || { echo "curl failed: $(cat "$TMP/curl.err")"; }
echo "  curl: $(cat "$TMP/curl.out")"
e2e_expect_eq "curl got 200 from 10.77.1.2:8080 with the whole body" "200 10.77.1.2:8080 $size" "$(cat "$TMP/curl.out")"
e2e_expect_eq "body sha256 equals the prepared body's" "$(sha "$TMP/body")" "$(sha "$TMP/got")"

# dpm-cat exits once curl closes (our FIN went after the response, then curl's FIN came).
e2e_wait_for 10 bash -c "! kill -0 $CAT_PID" || echo "dpm-cat still running"
sed 's/^/  /' "$TMP/cat.err"
e2e_check "dpm-cat's output holds curl's request line" grep -q $'^GET / HTTP/1.1\r$' "$TMP/request"
e2e_check "dpm-cat's output holds curl's Host header" grep -q $'^Host: 10.77.1.2:8080\r$' "$TMP/request"
e2e_check "dpm-cat saw the connection from 198.51.100.10 on 10.77.1.2:8080" \
  grep -Eq '^dpm-cat: local 10\.77\.1\.2:8080 peer 198\.51\.100\.10:[0-9]+$' "$TMP/cat.err"
e2e_check "dpm-cat sent the whole response" grep -q "sent $(file_size "$TMP/response") bytes" "$TMP/cat.err"
e2e_check "the daemon holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API"
e2e_finish
