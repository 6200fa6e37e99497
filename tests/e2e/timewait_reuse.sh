#!/usr/bin/env bash
# e2e.timewait_reuse (root): a server in the stack that closes first (nginx under dpm-run
# answering `Connection: close`) leaves its side of each connection in TIME-WAIT; a client that
# comes back from the same port at once — Linux reuses a client port as soon as its own side is
# closed, and NATs in front of servers do the same — must get a new connection: a SYN for a
# 4-tuple in TIME-WAIT whose sequence number is beyond the old connection's opens a new one
# (RFC 1122 §4.2.2.13, RFC 6191 §2), as on Linux. The test makes three requests in a row from
# one fixed kernel port in "wan", each read until nginx's FIN (the client closes second, so
# only the stack's side waits in TIME-WAIT) and bounded by a 5 s socket timeout, and asserts
# all three are answered and logged by nginx from that port.
source "$(dirname "$0")/preload_lib.sh"
e2e_require_root timewait_reuse
e2e_require_cmd nginx
e2e_init timewait_reuse
e2e_require_preload
e2e_topology

mkdir -p "$TMP/www"
echo "hello" >"$TMP/www/hello"
chmod a+r "$TMP/www/hello"
# shellcheck disable=SC2016  # nginx's variables
preload_nginx 'events { worker_connections 64; }' "
  log_format peers '\$remote_addr:\$remote_port \"\$request\" \$status';
  access_log $TMP/ng/access.log peers;
  server { listen 8080; root $TMP/www; }"
has_listener "$API" 0.0.0.0:8080 || e2e_fail "nginx did not listen in the stack"

# fetch : GET /hello from 198.51.100.10:40000, reading until nginx's FIN before closing (so the
# client closes second and keeps no TIME-WAIT of its own); prints the status line and whether
# the body came, or the error.
fetch() {
  ip netns exec "$WAN" "$PY" -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.settimeout(5)
try:
    s.bind(("198.51.100.10", 40000))
    s.connect(("10.77.1.2", 8080))
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: stack\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    print(data.split(b"\r\n")[0].decode(), data.endswith(b"\r\n\r\nhello\n"))
except OSError as e:
    print("error:", e)
finally:
    s.close()'
}
client_closed() { [ -z "$(ip netns exec "$WAN" ss -Htan 'sport = :40000')" ]; }
for i in 1 2 3; do
  out=$(fetch)
  echo "  request $i: $out"
  e2e_expect_eq "request $i from port 40000 is answered" "HTTP/1.1 200 OK True" "$out"
  e2e_wait_for 5 client_closed || echo "  the client's socket is still there: $(ip netns exec "$WAN" ss -Htan 'sport = :40000')"
done
e2e_wait_for 5 sh -c "[ \$(wc -l <'$TMP/ng/access.log') -ge 3 ]" || true
sed 's/^/  nginx: /' "$TMP/ng/access.log"
e2e_expect_eq "nginx logged three requests from 198.51.100.10:40000" 3 \
  "$(grep -c '^198\.51\.100\.10:40000 "GET /hello HTTP/1.1" 200$' "$TMP/ng/access.log" || true)"
e2e_expect_eq "the stack's side of the earlier ones waits in TIME-WAIT (nginx closed first)" True \
  "$(e2e_json "$API" 's["tcp_pcbs"]["time_wait"] >= 1')"
e2e_finish
