#!/usr/bin/env bash
# e2e.preload_nginx_listener (root): an unmodified nginx (epoll, accept4, sendfile, writev; a
# master and two workers that switch to www-data) runs through dpm-run in the namespace of a
# `dpmd client` and listens INSIDE the stack on 10.77.1.2:8080. Checks: the daemon lists the
# listener and the kernel of "host" has none; both workers run; Linux curl in "wan" fetches
# files of several sizes (empty to 17 MiB) served with sendfile and with sendfile off
# (read + writev), each with the right checksum, and several on one keep-alive connection;
# nginx logged the true peer (198.51.100.10) and the stack's address as its own; a bounded wrk
# run completes requests with no socket error and no non-2xx answer; after nginx stops, the
# daemon holds no socket and no active or listening pcb.
source "$(dirname "$0")/preload_lib.sh"
e2e_require_root preload_nginx_listener
e2e_require_cmd nginx curl wrk
e2e_init preload_nginx_listener
e2e_require_preload
e2e_topology

mkdir -p "$TMP/www"
: >"$TMP/www/empty"
head -c 1000 /dev/urandom >"$TMP/www/small"
head -c $((200 * 1024 + 3)) /dev/urandom >"$TMP/www/mid"
head -c $((3 * 1024 * 1024 + 777)) /dev/urandom >"$TMP/www/large"
head -c $((17 * 1024 * 1024 + 1)) /dev/urandom >"$TMP/www/huge"
chmod a+r "$TMP"/www/*
# shellcheck disable=SC2016  # nginx's variables
preload_nginx '
master_process on;
worker_processes 2;
events { use epoll; worker_connections 256; }' "
  log_format peers '\$remote_addr:\$remote_port \$server_addr:\$server_port \"\$request\" \$status \$body_bytes_sent';
  access_log $TMP/ng/access.log peers;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 100000;
  server {
    listen 8080;
    root $TMP/www;
    # The same files read into buffers and written with writev instead of sendfile.
    location /copy/ { alias $TMP/www/; sendfile off; output_buffers 2 64k; }
  }"
socket_rows "$API" | sed 's/^/  socket: /'
e2e_check "the daemon lists nginx's listener on 0.0.0.0:8080" has_listener "$API" 0.0.0.0:8080
e2e_check "the kernel of \"host\" has no listener on 8080" \
  sh -c "! ip netns exec '$HOST' ss -Hltn 'sport = :8080' | grep -q ."
workers() { pgrep -c -P "$NGINX_PID" -u www-data nginx || true; }
two_workers() { [ "$(workers)" = 2 ]; }
e2e_wait_for 10 two_workers || true
e2e_expect_eq "nginx runs two workers as www-data" 2 "$(workers)"

echo "--- curl in \"wan\" fetches from nginx in the stack ---"
# fetch PATH : one fetch, checked against the file it names.
fetch() {
  local path=$1 name=${1##*/} out
  out=$(ip netns exec "$WAN" curl -sS --max-time 60 -o "$TMP/got-$name" \
    -w '%{http_code} %{remote_ip}:%{remote_port} %{size_download}' "http://10.77.1.2:8080$path" 2>&1 || true)
  echo "  $path: $out"
  e2e_expect_eq "$path: 200 from 10.77.1.2:8080, whole file" "200 10.77.1.2:8080 $(file_size "$TMP/www/$name")" "$out"
  e2e_expect_eq "$path: sha256" "$(sha "$TMP/www/$name")" "$(sha "$TMP/got-$name" 2>/dev/null || echo none)"
}
for f in empty small mid large huge; do fetch "/$f"; done
for f in small large huge; do fetch "/copy/$f"; done

# Four requests on one connection (curl reuses it: "Re-using existing connection").
ip netns exec "$WAN" curl -sS -v --max-time 60 -o "$TMP/k1" http://10.77.1.2:8080/mid -o "$TMP/k2" \
  http://10.77.1.2:8080/copy/large -o "$TMP/k3" http://10.77.1.2:8080/huge -o "$TMP/k4" http://10.77.1.2:8080/small \
  2>"$TMP/keepalive.err" || echo "  keep-alive curl failed: $(tail -n 3 "$TMP/keepalive.err")"
e2e_expect_eq "keep-alive: four bodies intact" \
  "$(sha "$TMP/www/mid") $(sha "$TMP/www/large") $(sha "$TMP/www/huge") $(sha "$TMP/www/small")" \
  "$(for k in k1 k2 k3 k4; do sha "$TMP/$k" 2>/dev/null || echo none; done | xargs)"
e2e_expect_eq "keep-alive: one connection for all four" 3 "$(grep -ci 're-using existing connection' "$TMP/keepalive.err" || true)"

# log_lines [PATTERN] : lines of nginx's access log (matching the extended regex PATTERN).
log_lines() { grep -Ec "${1:-.}" "$TMP/ng/access.log" || true; }
logged_all() { [ "$(log_lines)" -ge 12 ]; }
e2e_wait_for 5 logged_all || true
e2e_expect_eq "nginx logged every request from 198.51.100.10 to 10.77.1.2:8080 with status 200" "12 12" \
  "$(wc -l <"$TMP/ng/access.log") $(grep -Ec '^198\.51\.100\.10:[0-9]+ 10\.77\.1\.2:8080 "GET [^"]*" 200 ' "$TMP/ng/access.log")"
e2e_check "nginx logged the 17 MiB body sent whole" \
  grep -q "\"GET /huge HTTP/1.1\" 200 $(file_size "$TMP/www/huge")$" "$TMP/ng/access.log"

echo "--- wrk, a bounded run ---"
small_before=$(log_lines '"GET /small HTTP/1.1" 200 1000$')
ip netns exec "$WAN" timeout 30 wrk -d 3s -c 8 -t 2 http://10.77.1.2:8080/small >"$TMP/wrk.out" 2>&1 ||
  echo "  wrk exited with $?"
sed 's/^/  /' "$TMP/wrk.out"
requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$TMP/wrk.out")
e2e_check "wrk completed requests (${requests:-none})" test "${requests:-0}" -gt 0
e2e_check "wrk saw no socket errors" sh -c "! grep -q 'Socket errors' '$TMP/wrk.out'"
e2e_check "wrk saw no non-2xx/3xx answers" sh -c "! grep -q 'Non-2xx' '$TMP/wrk.out'"
# wrk_logged : true once nginx has logged at least the requests wrk counted.
wrk_logged() { [ $(($(log_lines '"GET /small HTTP/1.1" 200 1000$') - small_before)) -ge "${requests:-1}" ]; }
e2e_wait_for 5 wrk_logged || true
e2e_check "nginx logged at least as many requests for /small as wrk counted" wrk_logged

echo "--- nginx stops ---"
kill -QUIT "$NGINX_PID" 2>/dev/null || true  # graceful: the workers finish and close
e2e_wait_for 10 sh -c "! kill -0 $NGINX_PID" || echo "  nginx did not stop"
e2e_stop "$NGINX_PID"
e2e_check "the daemon holds no socket and no active or listening pcb afterwards" e2e_wait_for 10 e2e_idle "$API"
e2e_status "$API" | sed 's/^/  /'
if grep -E '\[(alert|crit|emerg)\]' "$TMP/ng/error.log"; then echo "  (nginx's error log above)"; fi
e2e_check "nginx's error log has no alert, crit or emerg line" sh -c "! grep -Eq '\[(alert|crit|emerg)\]' '$TMP/ng/error.log'"
e2e_finish
