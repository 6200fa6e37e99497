#!/usr/bin/env bash
# e2e.tunnel_stall (root): a stalled reader stalls only its own stream (docs/tunnel.md "Flow
# control"). Through one redirector (so one TLS connection and one HTTP/2 session on each
# link), a program sends a GET for a 100 MB file of nginx in network A and then reads nothing;
# while it is held, curl (same redirector) downloads a 48 MB file.
# Asserts:
#   - the download completes with the right checksum while the stall is held;
#   - its rate is at least 0.25x the rate of the same download with no stalled stream, measured
#     in the same run (generous: CI machines vary); both rates are printed;
#   - the stall was real, back to nginx: nginx had not finished sending the 100 MB when curl
#     was done (no access-log line for it yet);
#   - the stalled stream was not dropped to make room: when curl has finished, the server still
#     has exactly that one stream open (web.alpha streams_open 1), and once the program reads,
#     it receives the whole 100 MB body.
source "$(dirname "$0")/tunnel_lib.sh"
e2e_require_root tunnel_stall
e2e_require_cmd curl openssl
e2e_require_preload
e2e_init tunnel_stall

# About 48 MB of random data and two downloaded copies; the 100 MB file is sparse.
avail_kb=$(df --output=avail -k "$TMP" | tail -n 1)
[ "$avail_kb" -ge $((400 * 1024)) ] || { echo "SKIP: $((avail_kb / 1024)) MB free under $TMP, 400 MB needed"; exit $E2E_SKIP; }

tunnel_topology
tunnel_pki
tunnel_access
mkdir -p "$TMP/www"
BIG=$((100 * 1024 * 1024))
truncate -s "$BIG" "$TMP/www/big.bin"
head -c $((48 * 1024 * 1024)) /dev/urandom >"$TMP/www/dl.bin"
WANT=$(sha "$TMP/www/dl.bin")
tunnel_servers "$TMP/www"

tunnel_chain

# download TAG : curl of dl.bin by name; prints "EXIT_STATUS SHA256 BYTES_PER_S".
download() {
  local rc=0 speed
  speed=$(tunnel_run curl -sS --max-time 120 -o "$TMP/got-$1.bin" -w '%{speed_download}' \
    http://web.alpha.dpm.internal/dl.bin 2>"$TMP/curl-$1.err") || rc=$?
  echo "$rc $(sha "$TMP/got-$1.bin" 2>/dev/null || echo none) ${speed:-0}"
}
streams_are() { [ "$(e2e_json "$TS_CTL" 's["streams"]')" = "$1" ]; }
web_open() { e2e_json "$TS_CTL" "[x['streams_open'] for x in s['services'] if x['name'] == 'web.alpha.dpm.internal'][0]"; }

echo "--- the download alone ---"
read -r rc got alone < <(download alone)
e2e_expect_eq "curl alone: the file arrived intact" "0 $WANT" "$rc $got"
rm -f "$TMP/got-alone.bin"

echo "--- the download while another stream is stalled ---"
cat >"$TMP/stall.py" <<'PY'
import os, socket, sys, time
host, path, trigger = sys.argv[1:4]
addr = socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM)[0][4]
s = socket.create_connection(addr)
s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path.encode(), host.encode()))
print("held", flush=True)
while not os.path.exists(trigger):  # reads nothing until told
    time.sleep(0.1)
data = b""
while b"\r\n\r\n" not in data:
    d = s.recv(4096)
    if not d:
        break
    data += d
body = len(data) - data.find(b"\r\n\r\n") - 4
while True:
    d = s.recv(1 << 20)
    if not d:
        break
    body += len(d)
print("drained %d" % body, flush=True)
PY
e2e_bg "$LANB" "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- "$PY" "$TMP/stall.py" web.alpha.dpm.internal /big.bin \
  "$TMP/drain" >"$TMP/stall.log" 2>&1
STALL_PID=$LAST_PID
e2e_check "the stalled program sent its GET" e2e_wait_for 20 grep -q held "$TMP/stall.log"
e2e_check "the server has its stream open" e2e_wait_for 10 streams_are 1
sleep 2  # every buffer and window on its way fills up
read -r rc got stalled < <(download stalled)
e2e_expect_eq "curl with a stalled stream: the file arrived intact" "0 $WANT" "$rc $got"
e2e_check "nginx had not finished sending the stalled file" sh -c "! grep -q 'GET /big.bin' '$TMP/nginx-access.log'"
e2e_check "curl's stream ends at the server" e2e_wait_for 10 streams_are 1
e2e_expect_eq "the stalled stream is still open at the server when curl has finished" 1 "$(web_open)"
e2e_check "the stalled program is still running" kill -0 "$STALL_PID"

printf '  rate alone: %.1f MB/s; with a stalled stream: %.1f MB/s (ratio %.2f, at least 0.25 needed)\n' \
  "$(awk -v r="$alone" 'BEGIN { print r / 1e6 }')" "$(awk -v r="$stalled" 'BEGIN { print r / 1e6 }')" \
  "$(awk -v a="$alone" -v b="$stalled" 'BEGIN { print (a > 0 ? b / a : 0) }')"
e2e_check "the rate with the stall is at least 0.25x the rate without" \
  awk -v a="$alone" -v b="$stalled" 'BEGIN { exit !(a > 0 && b >= 0.25 * a) }'

echo "--- the stalled program reads at last ---"
touch "$TMP/drain"
e2e_check "it receives the whole 100 MB body" e2e_wait_for 60 grep -q "^drained $BIG\$" "$TMP/stall.log"
grep drained "$TMP/stall.log" | sed 's/^/  /' || true
e2e_check "every stream ends at the server" e2e_wait_for 10 streams_are 0
e2e_finish
