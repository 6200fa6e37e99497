#!/usr/bin/env bash
# e2e.vpm_queue (root): queued allocation of hidden ports (docs/vpm.md "Queued allocation"; the
# virtual port multiplexing patent: "the request for the port is queued … if the port does not
# become available within a predefined period, the attempt fails"). The configurator gives
# tcp/7000 two hidden ports and a queue timeout of 1.5 s; unmodified Python servers of AIDs a,
# b, c, d, e (dpm-run --aid) bind port 7000.
# Asserts: a and b bind at once; c's bind() waits (nothing bound after 1 s) and returns 0 once
# a's program exits, and c then serves connections; with the range full again, d and e wait in
# that order, and when b exits its port goes to d (the first waiter) while e's bind fails
# after the timeout (1.5 s, not before) with EADDRINUSE; status counts the queued binds and the
# timeout.
source "$(dirname "$0")/preload_lib.sh"
e2e_require_root vpm_queue
e2e_init vpm_queue
e2e_require_preload
e2e_topology
cat >"$TMP/vpm.json" <<'JSON'
{ "hidden_ports": "42000-42001", "queue_timeout_ms": 1500, "ports": { "tcp/7000": { "default": "a" } } }
JSON
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
  --vpm-config "$TMP/vpm.json"

# A server that logs how long its bind took (or its errno) and answers its AID to each client.
SERVER='import errno, socket, sys, time
s = socket.socket()
t = time.monotonic()
try:
    s.bind(("0.0.0.0", 7000))
except OSError as e:
    print("failed %s after %.1f s" % (errno.errorcode[e.errno], time.monotonic() - t), flush=True); sys.exit(1)
print("bound after %.1f s" % (time.monotonic() - t), flush=True)
s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[1].encode() + b"\n"); c.close()'
serve() { e2e_bg "$HOST" "$DPMRUN" --api-socket "$API" --aid "$1" -- "$PY" -c "$SERVER" "$1" >"$TMP/$1.log" 2>&1; }
bound() { grep -q "^bound" "$TMP/$1.log"; }
ask() { ip netns exec "$WAN" "$PY" -c 'import socket; s = socket.create_connection(("10.77.1.2", 7000), timeout=5); print(s.recv(64).decode().strip())' 2>&1 || true; }

serve a; A=$LAST_PID
serve b; B=$LAST_PID
e2e_check "a binds at once" e2e_wait_for 10 bound a
e2e_check "b binds at once" e2e_wait_for 10 bound b
serve c
sleep 1
e2e_check "c's bind waits while both hidden ports are taken" sh -c "! grep -q . '$TMP/c.log'"
e2e_stop "$A"
e2e_check "c's bind returns once a's port is free" e2e_wait_for 5 bound c
sed 's/^/  c: /' "$TMP/c.log"
# The configurator sends every new connection to a (the default) — a is gone, so switch to c.
cat >"$TMP/vpm.json" <<'JSON'
{ "hidden_ports": "42000-42001", "queue_timeout_ms": 1500, "ports": { "tcp/7000": { "default": "c" } } }
JSON
kill -HUP "$DPMD_PID"
e2e_wait_for 5 grep -q "VPM configurator reloaded" "$TMP/dpmd-api.sock.log" || true
e2e_expect_eq "c serves the port it waited for" c "$(ask)"

serve d
sleep 0.3
serve e
sleep 0.3
e2e_stop "$B"
e2e_check "b's port goes to d, the first waiter" e2e_wait_for 5 bound d
e2e_check "e's bind fails" e2e_wait_for 5 grep -q "^failed" "$TMP/e.log"
sed 's/^/  d: /' "$TMP/d.log"
sed 's/^/  e: /' "$TMP/e.log"
e2e_check "with EADDRINUSE after the 1.5 s queue timeout" grep -Eq "^failed EADDRINUSE after (1\.[5-9]|2\.[0-9])" "$TMP/e.log"
counts=$(e2e_json "$API" '"%d queued, %d timed out" % (s["vpm"]["queued"], s["vpm"]["queue_timeouts"])')
e2e_expect_eq "status counts the queued binds and the timeout" "3 queued, 1 timed out" "$counts"
per_aid=$(e2e_json "$API" '" ".join("%s:%d/%d" % (a, c["queued"], c["queue_timeouts"]) for a, c in sorted(s["vpm"]["aids"].items()) if c["queued"])')
e2e_expect_eq "and per AID (queued/timed out)" "c:1/0 d:1/0 e:1/1" "$per_aid"
e2e_finish
