#!/usr/bin/env bash
# e2e.vpm_two_nginx (root): virtual port multiplexing (docs/vpm.md). Two unmodified nginx
# instances serving different sites both `listen 80` in one `dpmd client` (through dpm-run, one
# with --aid green, one with --aid blue); the configurator sends new connections from
# 198.51.100.11 to green and everything else to blue (the port's default).
# Asserts: both listen (the daemon lists two listeners on 0.0.0.0:80, getsockname's port, and
# status lists the two virtual streams on different hidden ports); curl from 198.51.100.10
# gets site B, from 198.51.100.11 site A, several times each; each nginx logged its requests
# with server port 80 and the true peer; the link's capture (dpmd --pcap) shows TCP on port 80
# only, never a hidden port, and tshark verifies every TCP checksum in it (the kernel peer
# accepted every segment: curl got whole bodies); status counts the flows per AID (the default
# ones as unmatched); after SIGHUP with new rules, new connections from .11 go to blue while a
# connection open since before keeps its site, and a file with an error on SIGHUP is reported
# and leaves the rules as they were; with no AID for a socket on a port that refuses
# by default, bind fails with EACCES; a Python server with nginx B's AID joins its stream and
# the connections alternate between them, and it keeps accepting when nginx B stops; after
# both nginx stop, no virtual stream is left.
source "$(dirname "$0")/preload_lib.sh"
e2e_require_root vpm_two_nginx
e2e_require_cmd nginx curl tshark
e2e_init vpm_two_nginx
e2e_require_preload
e2e_topology
ip -n "$WAN" addr add 198.51.100.11/24 dev "$VETH_WAN"

cat >"$TMP/vpm.json" <<'JSON'
{
  "hidden_ports": "40000-40099",
  "ports": { "tcp/80": { "default": "blue" }, "tcp/81": { "default": "refuse" } },
  "applications": [
    { "aid": "green", "ports": ["tcp/80"], "sources": ["198.51.100.11/32"] }
  ]
}
JSON
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
  --vpm-config "$TMP/vpm.json" --pcap "$TMP/link.pcap"

listeners_on_80() { socket_rows "$API" | awk '$1 == "tcp" && $2 == "listening" && $3 == "0.0.0.0:80"' | wc -l; }
two_listeners() { [ "$(listeners_on_80)" = 2 ]; }
vpm_site A green
NGINX_A=$LAST_PID
vpm_site B blue
NGINX_B=$LAST_PID
e2e_wait_for 10 two_listeners || { cat "$TMP"/A/error.log "$TMP"/B/error.log >&2 || true; }
socket_rows "$API" | sed 's/^/  socket: /'
e2e_expect_eq "two nginx listen on 0.0.0.0:80 in one instance" 2 "$(listeners_on_80)"
"$DPMD" status --api-socket "$API" | sed -n '/^virtual ports/,$p' | sed 's/^/  /'
streams=$(e2e_json "$API" '" ".join(sorted("%s:%s" % (x["port"], x["aid"]) for x in s["vpm"]["streams"]))')
e2e_expect_eq "status lists the two virtual streams" "tcp/80:blue tcp/80:green" "$streams"
hidden=$(e2e_json "$API" '" ".join(sorted(str(x["hidden_port"]) for x in s["vpm"]["streams"]))')
e2e_check "on two different hidden ports in 40000-40099 ($hidden)" \
  "$PY" -c 'import sys; p = [int(x) for x in sys.argv[1].split()]; sys.exit(not (len(set(p)) == 2 and all(40000 <= x <= 40099 for x in p)))' "$hidden"

echo "--- each source gets its site ---"
get() { ip netns exec "$WAN" curl -sS --max-time 10 ${2:+--interface "$2"} "http://10.77.1.2${1:-/}" 2>&1 || true; }
for i in 1 2 3; do
  e2e_expect_eq "from 198.51.100.10 (no rule: the default, blue), try $i" "this is site B" "$(get / 198.51.100.10)"
  e2e_expect_eq "from 198.51.100.11 (the rule: green), try $i" "this is site A" "$(get / 198.51.100.11)"
done
e2e_wait_for 5 sh -c "[ \$(wc -l <'$TMP/A/access.log') -ge 3 ] && [ \$(wc -l <'$TMP/B/access.log') -ge 3 ]" || true
e2e_expect_eq "site A logged 3 requests from 198.51.100.11 to port 80" 3 \
  "$(grep -c '^198\.51\.100\.11 80 "GET / HTTP/1.1" 200$' "$TMP/A/access.log" || true)"
e2e_expect_eq "site B logged 3 requests from 198.51.100.10 to port 80" 3 \
  "$(grep -c '^198\.51\.100\.10 80 "GET / HTTP/1.1" 200$' "$TMP/B/access.log" || true)"
aids=$(e2e_json "$API" '" ".join("%s:%d/%d" % (a, c["flows"], c["unmatched"]) for a, c in sorted(s["vpm"]["aids"].items()))')
e2e_expect_eq "status counts flows per AID (flows/unmatched)" "blue:3/3 green:3/0" "$aids"
rules=$(e2e_json "$API" '"; ".join("%s default %s: %s" % (r["port"], r["default"], " ".join("%s->%s" % (x["source"], x["aid"]) for x in r["sources"])) for r in s["vpm"]["rules"])')
e2e_expect_eq "status lists each port's rules" "tcp/80 default blue: 198.51.100.11/32->green; tcp/81 default refuse: " "$rules"

echo "--- a connection open across a reload keeps its site; new ones follow the new rules ---"
# A keep-alive connection from .11 opened before the reload (curl sends its second request on
# it after a pause, while the rules change).
ip netns exec "$WAN" "$PY" - "$TMP/held.out" <<'PY' &
import socket, sys, time
s = socket.create_connection(("10.77.1.2", 80), timeout=10, source_address=("198.51.100.11", 0))
req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
s.sendall(req); first = s.recv(4096); time.sleep(1.5); s.sendall(req); second = s.recv(4096)
open(sys.argv[1], "w").write("%s|%s\n" % (b"site A" in first, b"site A" in second))
PY
HELD=$!
sleep 0.5
cat >"$TMP/vpm.json" <<'JSON'
{
  "hidden_ports": "40000-40099",
  "ports": { "tcp/80": { "default": "blue" }, "tcp/81": { "default": "refuse" } },
  "applications": [ { "aid": "green", "ports": ["tcp/80"], "sources": ["198.51.100.99/32"] } ]
}
JSON
kill -HUP "$DPMD_PID"
e2e_check "the daemon reloaded its configurator" e2e_wait_for 5 grep -q "VPM configurator reloaded" "$TMP/dpmd-api.sock.log"
e2e_expect_eq "after the reload, from 198.51.100.11: blue" "this is site B" "$(get / 198.51.100.11)"
wait "$HELD" || true
e2e_expect_eq "the connection opened before stayed with site A for both requests" "True|True" "$(cat "$TMP/held.out" 2>/dev/null)"

# A file with an error: the daemon says why and keeps the rules it has.
cp "$TMP/vpm.json" "$TMP/vpm.good"
echo '{"ports": {"tcp/80": {"default": "x y"}}}' >"$TMP/vpm.json"
kill -HUP "$DPMD_PID"
e2e_check "a bad file on SIGHUP is reported" \
  e2e_wait_for 5 grep -q "SIGHUP: --vpm-config .*ports.tcp/80: default 'x y' is not an AID" "$TMP/dpmd-api.sock.log"
e2e_expect_eq "and the rules stay: from 198.51.100.11, still blue" "this is site B" "$(get / 198.51.100.11)"
cp "$TMP/vpm.good" "$TMP/vpm.json"

echo "--- a socket without an AID on a port that refuses by default ---"
out=$(preload_run "$HOST" "$API" -- "$PY" -c 'import socket
s = socket.socket()
try:
    s.bind(("0.0.0.0", 81)); print("bound")
except OSError as e:
    print(e.errno == 13 and "EACCES" or e)' 2>&1 || true)
e2e_expect_eq "bind to tcp/81 with no AID" EACCES "$out"

echo "--- a second program of one AID shares its stream ---"
# A Python server with --aid blue listens on port 80 too: it joins nginx B's stream, and new
# connections go to both, in turn. When nginx B (whose socket holds lwIP's listener) stops,
# the Python server keeps accepting on it.
e2e_bg "$HOST" "$DPMRUN" --api-socket "$API" --aid blue -- "$PY" -c 'import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(16); print("listening", s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 17\r\n\r\nthis is python B\n"); c.close()' >"$TMP/python-b.log" 2>&1
PYTHON_B=$LAST_PID
e2e_check "the Python server listens (getsockname: 80)" e2e_wait_for 10 grep -qx "listening 80" "$TMP/python-b.log"
members=$(e2e_json "$API" '[x["members"] for x in s["vpm"]["streams"] if x["aid"] == "blue"][0]')
e2e_check "blue's stream has both listeners ($members members)" test "$members" -ge 2
# tally : "N x LINE; …" of the lines on stdin, sorted.
tally() { sort | uniq -c | sed 's/^ *\([0-9]*\) /\1 x /' | paste -sd ';' -; }
answers=$(for i in 1 2 3 4 5 6; do get / 198.51.100.10; done | tally)
e2e_expect_eq "six connections from .10 went to both, in turn" "3 x this is python B;3 x this is site B" "$answers"
e2e_stop "$NGINX_B"
answers=$(for i in 1 2 3; do get / 198.51.100.10; done | tally)
e2e_expect_eq "with nginx B gone, the Python server takes them all (the listener handed over)" "3 x this is python B" "$answers"
e2e_stop "$PYTHON_B"

echo "--- the wire ---"
e2e_stop "$NGINX_A"
e2e_check "no virtual stream is left once both nginx stopped" \
  e2e_wait_for 5 sh -c "[ \"\$('$DPMD' status --api-socket '$API' --json | '$PY' -c 'import json,sys; print(len(json.load(sys.stdin)[\"vpm\"][\"streams\"]))')\" = 0 ]"
e2e_stop "$DPMD_PID"  # flushes the capture
vpm_wire_checks "$TMP/link.pcap" tcp 80 40000 40099 40
e2e_finish
