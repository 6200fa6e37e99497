#!/usr/bin/env bash
# e2e.dpmd_bad_input: dpmd refuses bad input with one clear line, and drops and counts
# malformed packets from its link.
#  - Start-up errors (each must exit non-zero, print exactly one line on stderr that names
#    the problem, and not hang): a missing TUN device with --attach (root: in a namespace of
#    its own), a TUN device without the privilege to make one (as an unprivileged user), an
#    API socket served by a live dpmd, a virtual-link path held by a live dpmd, a bad flag,
#    bad values, a VPM configurator file that is missing or wrong, no daemon for `dpmd status`.
#  - Malformed packets (Scapy, sent into A's virtual link): each raises its own drop counter
#    in `dpmd status --json` by one, and A still carries a TCP exchange afterwards.
source "$(dirname "$0")/lib.sh"
e2e_init dpmd_bad_input
e2e_virtual_pair

# expect_one_line DESCRIPTION PATTERN CMD... : CMD must fail (not time out) with exactly one
# stderr line matching the extended regex PATTERN.
expect_one_line() {
  local what=$1 pattern=$2; shift 2
  local rc=0
  timeout 10 "$@" >"$TMP/out" 2>"$TMP/err" </dev/null || rc=$?
  local lines
  lines=$(wc -l <"$TMP/err")
  echo "  [$what] exit $rc, stderr: $(head -c 300 "$TMP/err" | tr '\n' '|')"
  e2e_check "$what: exits non-zero" test $rc -ne 0 -a $rc -ne 124
  e2e_expect_eq "$what: exactly one line on stderr" 1 "$lines"
  e2e_check "$what: the line says what is wrong (/$pattern/)" grep -Eq "$pattern" "$TMP/err"
}

echo "--- start-up errors ---"
if [ "$(id -u)" = 0 ]; then
  e2e_netns tun NS_TUN
  expect_one_line "--attach to a missing TUN device" 'nosuchdev.*(does not exist|not found)|(does not exist|not found).*nosuchdev' \
    ip netns exec "$NS_TUN" "$DPMD" client --attach --tun nosuchdev --api-socket "$TMP/tun.sock"
  e2e_check "no device was created by the failed attach" \
    bash -c "! ip -n '$NS_TUN' link show nosuchdev >/dev/null 2>&1"
  # Without root, TUN creation must fail with a clear line (run as an unprivileged user).
  if command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null &&
    setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$DPMD"; then
    expect_one_line "TUN device without privilege" '[Pp]ermission|[Oo]peration not permitted|privilege|CAP_NET_ADMIN' \
      ip netns exec "$NS_TUN" setpriv --reuid=65534 --regid=65534 --clear-groups \
      "$DPMD" client --tun dpmx --api-socket "$TMP/nobody.sock"
  else
    echo "  (skipped the unprivileged TUN case: cannot run $DPMD as user nobody)"
  fi
elif (( (0x$(awk '/^CapEff:/ {print $2}' /proc/self/status) >> 12) & 1 )); then
  # CAP_NET_ADMIN without root: dpmd could make a device here, outside any test namespace.
  echo "  (skipped the TUN cases: this user has CAP_NET_ADMIN but is not root)"
else
  echo "  (not root: skipped --attach to a missing TUN device)"
  expect_one_line "TUN device without privilege" '[Pp]ermission|[Oo]peration not permitted|privilege|CAP_NET_ADMIN' \
    "$DPMD" client --tun dpmx --api-socket "$TMP/nobody.sock"
fi
expect_one_line "API socket served by a live dpmd" 'in use' \
  "$DPMD" client --virtual "$TMP/c.link,$TMP/d.link" --address 10.77.9.3/24 --gateway '' --api-socket "$API_A"
expect_one_line "virtual link path held by a live dpmd" 'a\.link.*in use' \
  "$DPMD" client --virtual "$TMP/a.link,$TMP/d.link" --address 10.77.9.3/24 --gateway '' --api-socket "$TMP/c.sock"
expect_one_line "unknown flag" 'bogus' "$DPMD" client --bogus
expect_one_line "bad --address" "address.*10\.77\.9\.300" \
  "$DPMD" client --virtual "$TMP/c.link,$TMP/d.link" --address 10.77.9.300/24 --api-socket "$TMP/c.sock"
expect_one_line "--mtu out of range" 'mtu|MTU' \
  "$DPMD" client --virtual "$TMP/c.link,$TMP/d.link" --mtu 100 --api-socket "$TMP/c.sock"
expect_one_line "--virtual with one path" 'virtual' \
  "$DPMD" client --virtual "$TMP/c.link" --address 10.77.9.3/24 --api-socket "$TMP/c.sock"
expect_one_line "--vpm-config that does not exist" "vpm-config.*nosuch\.json.*No such file" \
  "$DPMD" client --virtual "$TMP/c.link,$TMP/d.link" --address 10.77.9.3/24 --api-socket "$TMP/c.sock" \
  --vpm-config "$TMP/nosuch.json"
echo '{"ports": {"tcp/80": {"default": "x y"}}}' >"$TMP/bad-vpm.json"
expect_one_line "--vpm-config with a bad AID" "ports\.tcp/80: default 'x y' is not an AID" \
  "$DPMD" client --virtual "$TMP/c.link,$TMP/d.link" --address 10.77.9.3/24 --api-socket "$TMP/c.sock" \
  --vpm-config "$TMP/bad-vpm.json"
expect_one_line "no subcommand" 'subcommand' "$DPMD"
expect_one_line "gateway: pool address inside the private network" 'pool address is in the inside network' \
  "$DPMD" gateway --inside-virtual "$TMP/gi.link,$TMP/gp.link" --outside-virtual "$TMP/go.link,$TMP/gq.link" \
  --address 10.77.0.1/16 --inside-network 10.77.0.0/16 --pool 10.77.5.1 --api-socket "$TMP/gw.sock"
expect_one_line "gateway: bad --pool" "pool.*10\.1\.2\.300" \
  "$DPMD" gateway --inside-virtual "$TMP/gi.link,$TMP/gp.link" --outside-virtual "$TMP/go.link,$TMP/gq.link" \
  --pool 10.1.2.300 --api-socket "$TMP/gw.sock"
expect_one_line "status with no daemon" 'nonexistent' "$DPMD" status --api-socket "$TMP/nonexistent.sock"
# Interface names the kernel would refuse are refused for what they are, not as "exists and
# is not a TUN device" (checked before any device is touched, so no root is needed). As root
# these run in a throwaway network namespace, so that a regression cannot make a device in
# the root namespace.
sandbox=()
[ "$(id -u)" = 0 ] && sandbox=(unshare --net)
for name in 'weird name!' 'a/b' 'ü%$' 'tun:0' '..' 'sixteen-chars-xx'; do
  expect_one_line "--tun '$name'" "bad tun device name" \
    "${sandbox[@]}" "$DPMD" client --tun "$name" --address 10.77.9.3/24 --api-socket "$TMP/n.sock"
done
expect_one_line "--mtu abc" "'abc' is not a whole number" \
  "$DPMD" client --virtual "$TMP/c.link,$TMP/d.link" --mtu abc --api-socket "$TMP/c.sock"
expect_one_line "--address without a prefix" "prefix length.*10\.77\.9\.3/24" \
  "$DPMD" client --virtual "$TMP/c.link,$TMP/d.link" --address 10.77.9.3 --api-socket "$TMP/c.sock"
expect_one_line "--host-address without a prefix" "host-address.*prefix length" \
  "${sandbox[@]}" "$DPMD" client --tun dpmx --address 10.77.9.3/24 --host-address 10.77.9.1 --api-socket "$TMP/c.sock"
# Only dpmd's own default needs no directory; an explicit path's directory must exist.
expect_one_line "--api-socket in a missing directory" "$TMP/nonexistent/dir does not exist" \
  "$DPMD" client --virtual "$TMP/c.link,$TMP/d.link" --address 10.77.9.3/24 --api-socket "$TMP/nonexistent/dir/d.sock"
e2e_check "no directory was created for it" test ! -e "$TMP/nonexistent"
expect_one_line "--api-group that does not exist" "no group 'no-such-group-dpm'" \
  "$DPMD" client --virtual "$TMP/c.link,$TMP/d.link" --address 10.77.9.3/24 --api-socket "$TMP/c.sock" \
  --api-group no-such-group-dpm
# dpm-cat: usage errors exit 2 with its name; no daemon names the socket it tried.
for port in 99999 http 0; do
  rc=0
  err=$("$DPMCAT" --socket "$API_A" 198.51.100.10 "$port" </dev/null 2>&1 >/dev/null) || rc=$?
  e2e_expect_eq "dpm-cat port '$port' is a usage error" 2 "$rc"
  e2e_check "  and says so: '$err'" grep -q "^dpm-cat: bad port '$port'" <<<"$err"
done
rc=0
err=$("$DPMCAT" --bogus 2>&1 >/dev/null) || rc=$?
e2e_expect_eq "dpm-cat unknown flag exits 2" 2 "$rc"
e2e_check "  with its name: '$err'" grep -q "^dpm-cat: " <<<"$err"
rc=0
err=$("$DPMCAT" --socket "$TMP/none.sock" 198.51.100.10 80 </dev/null 2>&1 >/dev/null) || rc=$?
e2e_check "dpm-cat with no daemon fails ($rc)" test "$rc" -ne 0
e2e_check "  naming the socket it tried: '$err'" grep -q "no dpmd answers at $TMP/none.sock" <<<"$err"
err=$(env -u DPM_SOCKET "$DPMCAT" 198.51.100.10 80 </dev/null 2>&1 >/dev/null || true)
e2e_check "  the default socket when none is given: '$err'" grep -q "no dpmd answers at @dpm/dpmd" <<<"$err"
e2e_check "dpmd --version" bash -c "'$DPMD' --version | grep -Eq '^dpmd [0-9]+\.[0-9]+\.[0-9]+$'"
e2e_check "dpm-cat --version" bash -c "'$DPMCAT' --version | grep -Eq '^dpm-cat [0-9]+\.[0-9]+\.[0-9]+$'"
e2e_expect_eq "dpmd status shows the version" "$("$DPMD" --version | cut -d' ' -f2)" "$(e2e_json "$API_A" 's["version"]')"
e2e_check "the live instances are still running" kill -0 "$DPMD_A" "$DPMD_B"
e2e_expect_eq "A's API still answers" True "$(e2e_json "$API_A" 'True')"

echo "--- malformed packets into A's link ---"
if ! "$PY" -c 'import scapy' 2>/dev/null; then
  echo "  SKIP: Scapy is missing from $PY (python3-scapy); malformed-packet checks not run"
else
  counters="too_short not_ipv4 bad_header_length bad_total_length oversize lwip_ip_chksum lwip_tcp_chksum lwip_udp_chksum"
  declare -A before
  for c in $counters; do before[$c]=$(e2e_json "$API_A" "s['drops']['$c']"); done
  "$PY" "$E2E_DIR/malformed.py" "$TMP/a.link" 10.77.9.1 10.77.9.2 1500 | sed 's/^/  sent: /'
  e2e_wait_for 5 test "$(e2e_json "$API_A" "s['drops']['oversize']")" -gt "${before[oversize]}" || true
  for c in $counters; do
    e2e_expect_eq "drop counter $c rose by one" 1 $(($(e2e_json "$API_A" "s['drops']['$c']") - before[$c]))
  done
fi

echo "--- A still carries traffic ---"
head -c 200000 /dev/urandom >"$TMP/data"
e2e_bg - "$DPMCAT" --socket "$API_B" -l 7200 </dev/null >"$TMP/got" 2>"$TMP/listener.err"
e2e_wait_for 10 grep -q '^dpm-cat: local' "$TMP/listener.err" || e2e_fail "listener did not start"
timeout 20 "$DPMCAT" --socket "$API_A" -N -q 10.77.9.2 7200 <"$TMP/data" || echo "  sender exited with $?"
e2e_wait_for 10 bash -c "! kill -0 $LAST_PID" || true
e2e_check "a TCP exchange A -> B after the malformed packets arrives intact" cmp -s "$TMP/data" "$TMP/got"
e2e_status "$API_A" | sed -n '1,4p' | sed 's/^/  /'
e2e_finish
