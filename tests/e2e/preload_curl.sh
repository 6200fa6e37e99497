#!/usr/bin/env bash
# e2e.preload_curl (root): an unmodified curl, run through dpm-run, fetches from a real nginx.
#  (a) On a `dpmd client` in "host": the body's checksum matches, nginx's access log shows the
#      stack's address (10.77.1.2, which only the stack has: a kernel socket in "host" would
#      come from 198.51.100.1), curl's getsockname() says the same, and the daemon holds
#      nothing afterwards.
#  (b) Behind `dpmd gateway`, on a client with the DPM driver: while curl's connection is
#      open (curl's output is a pipe the test does not read yet, so curl cannot finish), the
#      client's `dpmd status --json` lists the connection as a DPM socket ("tcp*") whose local
#      endpoint is the registered address and port, and the gateway's session table has a DPM
#      session with that external endpoint; once curl finishes, the body matches, curl's
#      getsockname() gave that endpoint, and nginx logged exactly that address:port.
#  (c) `dpm-run --fixed-ports` behind the same gateway: the DPM session's external port is the
#      program's own (internal) port.
source "$(dirname "$0")/preload_lib.sh"
e2e_require_root preload_curl
e2e_require_cmd nginx curl
e2e_init preload_curl
e2e_require_preload

mkdir -p "$TMP/www"
head -c $((2 * 1024 * 1024 + 4321)) /dev/urandom >"$TMP/www/f"
head -c $((24 * 1024 * 1024 + 99)) /dev/urandom >"$TMP/www/big"

echo "--- (a) curl on a dpmd client ---"
e2e_topology
NGINX_LOG_FORMAT='$remote_addr:$remote_port "$request" $status $body_bytes_sent' \
  e2e_nginx "$WAN" 198.51.100.10 80 "$TMP/www"
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24

preload_run "$HOST" "$API" -- timeout 60 curl -sS --max-time 50 -o "$TMP/got" \
  -w '%{http_code} %{local_ip}:%{local_port} %{size_download}\n' http://198.51.100.10/f \
  >"$TMP/curl.out" 2>"$TMP/curl.err" || echo "  curl exited with $?: $(cat "$TMP/curl.err")"
echo "  curl: $(cat "$TMP/curl.out")"
code="" local_ep="" got_size=""
read -r code local_ep got_size <"$TMP/curl.out" || true
e2e_expect_eq "HTTP status and the whole file" "200 $(file_size "$TMP/www/f")" "${code:-} ${got_size:-}"
e2e_expect_eq "body sha256 equals the file's" "$(sha "$TMP/www/f")" "$(sha "$TMP/got" 2>/dev/null || echo none)"
e2e_check "curl's getsockname() gives the stack's address (${local_ep:-})" \
  grep -Eq '^10\.77\.1\.2:[0-9]+$' <<<"${local_ep:-}"
e2e_wait_for 5 grep -q '"GET /f ' "$TMP/nginx-access.log" || true
sed 's/^/  nginx: /' "$TMP/nginx-access.log"
e2e_check "nginx saw the request from the stack (10.77.1.2), at curl's own port" \
  grep -q "^10\.77\.1\.2:${local_ep##*:} \"GET /f HTTP/1.1\" 200 $(file_size "$TMP/www/f")$" "$TMP/nginx-access.log"
e2e_check "the daemon served curl's socket" test "$(e2e_json "$API" 's["sockets_opened"]')" -ge 1
e2e_check "the daemon holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API"

# Part (b) builds the DPM network in namespaces of its own; the first nginx goes (the second
# uses the same config and log paths).
e2e_stop "$NGINX_PID"
mv "$TMP/nginx-access.log" "$TMP/nginx-access-a.log"
P=$P-gw

echo "--- (b) curl on a DPM client behind dpmd gateway ---"
dpm_topology 203.0.113.1
dpm_servers "$TMP/www"
# curl writes the body into a pipe whose reader waits for $TMP/go: curl cannot finish, so its
# connection stays open until the test has read both status reports.
{
  preload_run "$LAN" "$C1_API" -- timeout 120 curl -sS --max-time 110 \
    -w '%{stderr}%{http_code} %{local_ip}:%{local_port} %{size_download}\n' http://198.51.100.10/big \
    2>"$TMP/gcurl.err" | {
    e2e_wait_for 90 test -e "$TMP/go" || true
    sha256sum | cut -d' ' -f1 >"$TMP/gsum"
  }
} &
GCURL=$!
e2e_wait_for 30 has_connected "$C1_API" 198.51.100.10:80 || echo "  no connected socket towards nginx in the client's status"
socket_rows "$C1_API" | sed 's/^/  client socket: /'
registered=$(connected_local "$C1_API" 198.51.100.10:80)
e2e_check "the client's status lists the connection with a registered endpoint ($registered)" \
  grep -Eq '^203\.0\.113\.1:[0-9]+$' <<<"$registered"
e2e_expect_eq "and as a DPM socket" "tcp*" \
  "$(socket_rows "$C1_API" | awk -v p=198.51.100.10:80 '$4 == p {print $1; exit}')"
in_table=$(e2e_json "$GW_API" '" ".join(x["internal"] for x in s["gateway"]["sessions"] if x["dpm"] and x["external"] == "'"$registered"'")')
e2e_check "the gateway has a DPM session with that external endpoint (internal $in_table)" test -n "$in_table"
touch "$TMP/go"
wait "$GCURL" || echo "  curl pipeline exited with $?"
echo "  curl: $(cat "$TMP/gcurl.err")"
gcode="" glocal="" gsize=""
read -r gcode glocal gsize <"$TMP/gcurl.err" || true
e2e_expect_eq "HTTP status and the whole file" "200 $(file_size "$TMP/www/big")" "${gcode:-} ${gsize:-}"
e2e_expect_eq "body sha256 equals the file's" "$(sha "$TMP/www/big")" "$(cat "$TMP/gsum" 2>/dev/null || echo none)"
e2e_expect_eq "curl's getsockname() gave the registered endpoint" "$registered" "${glocal:-}"
e2e_wait_for 5 grep -q '"GET /big ' "$TMP/nginx-access.log" || true
sed 's/^/  nginx: /' "$TMP/nginx-access.log"
e2e_check "nginx logged the registered address:port" \
  grep -q "^$registered 198.51.100.10 \"GET /big HTTP/1.1\" 200 $(file_size "$TMP/www/big")$" "$TMP/nginx-access.log"
e2e_check "the client holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$C1_API"

echo "--- (c) dpm-run --fixed-ports: the gateway keeps the program's own port ---"
# Held open the same way; the DPM session's external port must be the internal one (the DPM
# patent, claims 1-4: a port that is not replaceable is kept as the registered port).
{
  preload_run "$LAN" "$C1_API" --fixed-ports -- timeout 120 curl -sS --max-time 110 -o - http://198.51.100.10/big \
    2>"$TMP/fcurl.err" | { e2e_wait_for 90 test -e "$TMP/go2" || true; cat >/dev/null; }
} &
FCURL=$!
e2e_wait_for 30 has_connected "$C1_API" 198.51.100.10:80 || echo "  no connected socket towards nginx in the client's status"
fixed=$(connected_local "$C1_API" 198.51.100.10:80)
fixed_internal=$(e2e_json "$GW_API" '" ".join(x["internal"] for x in s["gateway"]["sessions"] if x["dpm"] and x["external"] == "'"$fixed"'")')
echo "  registered $fixed, internal $fixed_internal"
e2e_check "the registered endpoint is on the registered address ($fixed)" grep -Eq '^203\.0\.113\.1:[0-9]+$' <<<"$fixed"
e2e_expect_eq "the registered port is the program's own port" "${fixed##*:}" "${fixed_internal##*:}"
touch "$TMP/go2"
wait "$FCURL" || echo "  curl pipeline exited with $?"
e2e_check "the client holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$C1_API"
e2e_finish
