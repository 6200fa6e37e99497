#!/usr/bin/env bash
# e2e.vpm_configure_call (no root needed; root for the EPERM check): the application
# configurator as a library call (docs/vpm.md "The library call"): a program calls libdpm's
# dpm_vpm_configure() (through Python's ctypes) on instance B, started without --vpm-config.
# Asserts: a text with an error fails with EINVAL and the reason naming its place, and B stays
# without VPM; a user in B's --api-group who is neither root nor B's user gets EPERM; a valid
# text turns VPM on: two unmodified Python servers of AIDs green and blue both listen on port
# 8080, and connections from A (dpm-cat, libdpm) go by the text's source rule (client ports
# 1000-1999 to green) or the default (blue); status names the rules' origin and lists them; a
# second call replaces the rules (new connections from 1000-1999 go to blue); a third with a
# cooperative object opens the negotiation's port; a SIGHUP, with no file to read, is logged and
# keeps the rules.
source "$(dirname "$0")/preload_lib.sh"
e2e_init vpm_configure_call
e2e_require_preload
[ -e "$BUILD/libdpm.so" ] || e2e_fail "no $BUILD/libdpm.so"

API_A=$TMP/a.sock
API_B=$TMP/b.sock
e2e_dpmd - "$API_B" --virtual "$TMP/b.link,$TMP/a.link" --address 10.77.9.2/24 --gateway '' --api-group 65534
DPMD_B=$DPMD_PID
e2e_dpmd - "$API_A" --virtual "$TMP/a.link,$TMP/b.link" --address 10.77.9.1/24 --gateway ''

# configure TEXT : calls dpm_vpm_configure on B; prints "0", or the errno's name and the reason.
CONFIGURE='import ctypes, errno, sys
lib = ctypes.CDLL(sys.argv[1], use_errno=True)
text = sys.argv[2].encode()
why = ctypes.create_string_buffer(256)
rc = lib.dpm_vpm_configure(text, ctypes.c_size_t(len(text)), why, ctypes.c_size_t(len(why)))
print("0" if rc == 0 else "%s %s" % (errno.errorcode[ctypes.get_errno()], why.value.decode()))'
configure() { DPM_SOCKET=$API_B "$PY" -c "$CONFIGURE" "$BUILD/libdpm.so" "$1"; }

echo "--- a text with an error ---"
out=$(configure '{"ports": {"tcp/8080": {"default": "blue"}}, "applications": [{"aid": "g", "ports": ["udp/53"]}]}')
e2e_expect_eq "EINVAL and the reason, naming the place" \
  "EINVAL dpm_vpm_configure: applications[0]: port udp/53 is not in ports (nor a cooperative peer's)" "$out"
e2e_expect_eq "B has no VPM after it" False "$(e2e_json "$API_B" '"vpm" in s')"

if setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$BUILD/libdpm.so" 2>/dev/null && [ "$(id -u)" = 0 ]; then
  chmod 755 "$TMP"
  out=$(DPM_SOCKET=$API_B setpriv --reuid=65534 --regid=65534 --clear-groups "$PY" -c "$CONFIGURE" \
    "$BUILD/libdpm.so" '{"ports": {"tcp/8080": {"default": "blue"}}}' 2>&1)
  e2e_expect_eq "a member of --api-group that is not B's user" "EPERM " "$out"
else
  echo "  (EPERM check skipped: not root, or user nobody cannot read $BUILD)"
fi

echo "--- a valid text turns VPM on ---"
RULES='{"hidden_ports": "41000-41009", "ports": {"tcp/8080": {"default": "blue"}},
  "applications": [{"aid": "green", "ports": ["tcp/8080"], "sources": ["10.77.9.1/32:1000-1999"]}]}'
e2e_expect_eq "dpm_vpm_configure returns 0" 0 "$(configure "$RULES")"
SERVER='import socket, sys
s = socket.socket()
s.bind(("0.0.0.0", 8080))
s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"%s\n" % sys.argv[1].encode())
    c.close()'
for aid in green blue; do
  e2e_bg - "$DPMRUN" --api-socket "$API_B" --aid "$aid" -- "$PY" -c "$SERVER" "$aid" >"$TMP/$aid.out" 2>&1
  e2e_wait_for 10 grep -q listening "$TMP/$aid.out" || { cat "$TMP/$aid.out" >&2; e2e_fail "the $aid server did not start"; }
done
from() { "$DPMCAT" --socket "$API_A" -q -p "$1" 10.77.9.2 8080 </dev/null 2>&1 | tail -n 1; }
e2e_expect_eq "from client port 1500: the source rule, green" green "$(from 1500)"
e2e_expect_eq "from client port 2500: the default, blue" blue "$(from 2500)"
e2e_expect_eq "status names the rules' origin" "(dpm_vpm_configure)" "$(e2e_json "$API_B" 's["vpm"]["config"]')"
e2e_expect_eq "status lists the rule" "10.77.9.1/32:1000-1999->green" \
  "$(e2e_json "$API_B" '" ".join("%s->%s" % (x["source"], x["aid"]) for r in s["vpm"]["rules"] for x in r["sources"])')"

echo "--- a second call replaces the rules ---"
e2e_expect_eq "dpm_vpm_configure again" 0 \
  "$(configure '{"hidden_ports": "41000-41009", "ports": {"tcp/8080": {"default": "blue"}}}')"
e2e_expect_eq "from client port 1600: no rule now, blue" blue "$(from 1600)"

echo "--- a call that turns cooperative mode on ---"
e2e_expect_eq "dpm_vpm_configure with a cooperative object" 0 \
  "$(configure '{"hidden_ports": "41000-41009", "ports": {"tcp/8080": {"default": "blue"}}, "cooperative": {"accept": ["10.77.9.0/24"]}}')"
e2e_expect_eq "B answers negotiations now" "True 5351" \
  "$(e2e_json "$API_B" '"%s %d" % (s["vpm"]["cooperative"]["serving"], s["vpm"]["cooperative"]["port"])')"

echo "--- SIGHUP: no file to read ---"
kill -HUP "$DPMD_B"
e2e_check "B logs that there is no file" \
  e2e_wait_for 5 grep -q "SIGHUP.*dpm_vpm_configure: no file to read" "$TMP/dpmd-b.sock.log"
e2e_expect_eq "and keeps the rules: from client port 2600, blue" blue "$(from 2600)"
e2e_finish
