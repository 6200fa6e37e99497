#!/usr/bin/env bash
# e2e.preload_tunnel_bypass: the preload hook's tunnel mode with no redirector to answer
# (docs/preload.md "Tunnel mode"), in a namespace of its own with a kernel TCP echo server on
# loopback. What the redirector itself answers is for the tests that run one.
#  - Names outside the pseudo suffix (localhost) get the C library's answers from every
#    resolver call, line for line as in a control run without the hook.
#  - A pseudo name asks the redirector; none answers: EAI_AGAIN from getaddrinfo, TRY_AGAIN
#    (and EAGAIN from the _r calls) from gethostbyname*; AF_INET6 is EAI_NONAME /
#    HOST_NOT_FOUND without asking (pseudo names have IPv4 only).
#  - connect() to a pseudo address, blocking and non-blocking: ECONNREFUSED at once.
#  - connect() elsewhere (the loopback echo server) is the kernel's: it connects and echoes.
#  - DPM_TUNNEL_NET moves the pseudo range: 100.64.0.2 is then the kernel's (no route in the
#    namespace: ENETUNREACH) and an address of the new range is refused as above.
#  - dpm-run --tunnel: no redirector is one line naming @dpm/redirector and exit 1; options of
#    dpm sockets (--tuple) with --tunnel, a bad --tunnel-suffix or --tunnel-net: exit 2.
#  - A malformed DPM_TUNNEL_SUFFIX given by hand: one line on stderr, IPv4 sockets EINVAL.
source "$(dirname "$0")/preload_lib.sh"
e2e_require_root preload_tunnel_bypass
e2e_init preload_tunnel_bypass
e2e_require_preload
e2e_require_test_program e2e_tunnel_resolve
PROG=$TEST_PROGRAM
e2e_netns ns NS
e2e_tcp_echo "$NS" 127.0.0.1 7000 "$TMP/echo.log"

# hooked ENV... -- ARGS... : tunnel_resolve ARGS in $NS, preloaded in tunnel mode with no
# redirector at its socket (an abstract name nobody serves), the extra ENV set.
hooked() {
  local env=()
  while [ "$1" != "--" ]; do env+=("$1"); shift; done
  shift
  timeout 20 ip netns exec "$NS" env LD_PRELOAD="$PRELOAD_LIB" DPM_TUNNEL=1 DPM_SOCKET="@$P-none" "${env[@]}" \
    "$PROG" "$@"
}

echo "--- names outside the suffix: the C library's ---"
timeout 20 ip netns exec "$NS" "$PROG" resolve localhost >"$TMP/control.out" 2>&1
hooked -- resolve localhost >"$TMP/hooked.out" 2>&1
sed 's/^/  /' "$TMP/hooked.out"
e2e_check "the control resolved localhost" grep -q "^getaddrinfo localhost -> 127.0.0.1 port 80 stream$" "$TMP/control.out"
e2e_expect_eq "every resolver call answers as without the hook" "$(cat "$TMP/control.out")" "$(cat "$TMP/hooked.out")"

echo "--- a pseudo name, no redirector ---"
hooked -- resolve Web.Alpha.dpm.internal. >"$TMP/pseudo.out" 2>&1
sed 's/^/  /' "$TMP/pseudo.out"
N=Web.Alpha.dpm.internal.
e2e_expect_eq "no redirector: try again; AF_INET6: no such name" \
  "getaddrinfo $N -> EAI_AGAIN|getaddrinfo-canon $N -> EAI_AGAIN|getaddrinfo6 $N -> EAI_NONAME|gethostbyname $N -> TRY_AGAIN|gethostbyname_r $N -> TRY_AGAIN rc=EAGAIN|gethostbyname_r-small $N -> TRY_AGAIN rc=EAGAIN|gethostbyname2 $N -> TRY_AGAIN|gethostbyname2-6 $N -> HOST_NOT_FOUND|gethostbyname2_r $N -> TRY_AGAIN rc=EAGAIN" \
  "$(paste -sd'|' "$TMP/pseudo.out")"

echo "--- connects ---"
for mode in connect connect-nonblocking; do
  e2e_expect_eq "$mode to a pseudo address, no redirector: refused at once" \
    "$mode 100.64.0.2 80 -> ECONNREFUSED" "$(hooked -- $mode 100.64.0.2 80 2>&1)"
  out=$(hooked -- $mode 127.0.0.1 7000 hello 2>&1) || true
  e2e_expect_eq "$mode to loopback: the kernel's connection, echoed" "received 5 bytes: hello" "$(tail -n 1 <<<"$out")"
  e2e_check "$mode to loopback: peer 127.0.0.1:7000" grep -q "peer 127.0.0.1:7000" <<<"$out"
done
e2e_expect_eq "DPM_TUNNEL_NET=10.99.0.0/16: 100.64.0.2 is the kernel's (no route here)" \
  "connect 100.64.0.2 80 -> ENETUNREACH" "$(hooked DPM_TUNNEL_NET=10.99.0.0/16 -- connect 100.64.0.2 80 2>&1)"
e2e_expect_eq "DPM_TUNNEL_NET=10.99.0.0/16: its addresses go to the redirector (none: refused)" \
  "connect 10.99.3.4 80 -> ECONNREFUSED" "$(hooked DPM_TUNNEL_NET=10.99.0.0/16 -- connect 10.99.3.4 80 2>&1)"

echo "--- dpm-run --tunnel ---"
rc=0
timeout 10 ip netns exec "$NS" env -u DPM_SOCKET "$DPMRUN" --tunnel -- touch "$TMP/ran" 2>"$TMP/run.err" || rc=$?
sed 's/^/  dpm-run said: /' "$TMP/run.err"
e2e_expect_eq "no redirector: dpm-run exits 1" 1 "$rc"
e2e_check "the line names the redirector's socket and role" grep -q "@dpm/redirector (start 'dpmd redirector'" "$TMP/run.err"
e2e_check "the program was not run" test ! -e "$TMP/ran"
for args in "--tunnel --tuple static" "--tunnel --kernel-net 10.0.0.0/8" "--tunnel-suffix corp" \
  "--tunnel --tunnel-suffix Corp" "--tunnel --tunnel-suffix a..b" "--tunnel --tunnel-net 100.64.0.1/10" \
  "--tunnel --tunnel-net 10.0.0.0/8,10.1.0.0/16"; do
  rc=0
  # shellcheck disable=SC2086 # the options are words
  timeout 10 "$DPMRUN" $args -- true 2>"$TMP/bad.err" || rc=$?
  e2e_expect_eq "dpm-run $args: bad arguments, exit 2 ($(cat "$TMP/bad.err"))" 2 "$rc"
done

echo "--- a malformed variable ---"
out=$(hooked DPM_TUNNEL_SUFFIX=a..b -- connect 127.0.0.1 7000 2>&1) || true  # exit 1: no socket
sed 's/^/  /' <<<"$out"
e2e_check "said on stderr, naming the variable" grep -q "DPM_TUNNEL_SUFFIX: 'a..b' is not a DNS suffix" <<<"$out"
e2e_check "IPv4 sockets are refused with EINVAL" grep -q "connect 127.0.0.1 7000 -> socket EINVAL" <<<"$out"
e2e_finish
