#!/usr/bin/env bash
# e2e.preload_tuple_static (root): `dpm-run --tuple static` gives every socket of an unmodified
# program an address of its own from `dpmd client --address-pool`. One dpm-run runs a shell
# that runs curl twice: nginx in "wan" logs two different source addresses, both from the pool
# and neither the instance's common address, each what that curl's getsockname() reported;
# after the shell exits the daemon has taken two addresses and released both (none in use,
# none held by a closing handshake) and holds no socket. Without --tuple the same shell's curls
# both use the common address 10.77.1.2 and take no pool address.
source "$(dirname "$0")/preload_lib.sh"
e2e_require_root preload_tuple_static
e2e_require_cmd nginx curl
e2e_init preload_tuple_static
e2e_require_preload
e2e_topology

mkdir -p "$TMP/www"
echo "one" >"$TMP/www/one"
echo "two" >"$TMP/www/two"
NGINX_LOG_FORMAT='$remote_addr:$remote_port "$request" $status' e2e_nginx "$WAN" 198.51.100.10 80 "$TMP/www"
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
  --address-pool 10.77.1.100-10.77.1.103

addresses() { e2e_json "$API" '"%d %d %d %d" % (s["addresses"]["taken"], s["addresses"]["released"], s["addresses"]["in_use"], s["addresses"]["lingering"])'; }
# two_curls NAME DPM-RUN-ARGS... : one dpm-run, one shell, two curls (of /one and /two); each
# curl prints the local endpoint its getsockname() gave to $TMP/NAME.out.
two_curls() {
  local name=$1
  shift
  # shellcheck disable=SC2016  # the shell under dpm-run expands $0
  preload_run "$HOST" "$API" "$@" -- timeout 60 bash -c '
    curl -sS --max-time 20 -o /dev/null -w "%{http_code} %{local_ip}:%{local_port}\n" http://198.51.100.10/one
    curl -sS --max-time 20 -o /dev/null -w "%{http_code} %{local_ip}:%{local_port}\n" http://198.51.100.10/two' \
    >"$TMP/$name.out" 2>"$TMP/$name.err" || echo "  dpm-run exited with $?: $(cat "$TMP/$name.err")"
  sed 's/^/  curl: /' "$TMP/$name.out"
}
# logged URI NAME : the client endpoint nginx logged for the request of URI (last one).
logged() { awk -v uri="$1" '$3 == uri && $5 == 200 {ep=$1} END {print ep}' "$TMP/nginx-access.log"; }

echo "--- dpm-run --tuple static ---"
two_curls static --tuple static
ep1=$(sed -n 1p "$TMP/static.out" | awk '$1 == 200 {print $2}')
ep2=$(sed -n 2p "$TMP/static.out" | awk '$1 == 200 {print $2}')
a1=${ep1%:*}
a2=${ep2%:*}
e2e_check "the first curl has a pool address ($a1)" grep -Eq '^10\.77\.1\.10[0-3]$' <<<"$a1"
e2e_check "the second curl has a pool address ($a2)" grep -Eq '^10\.77\.1\.10[0-3]$' <<<"$a2"
e2e_check "and they differ" test -n "$a1" -a "$a1" != "$a2"
e2e_wait_for 5 sh -c "grep -c 'GET /two' '$TMP/nginx-access.log' | grep -qx 1" || true
sed 's/^/  nginx: /' "$TMP/nginx-access.log"
e2e_expect_eq "nginx saw the first curl at its own address and port" "$ep1" "$(logged /one)"
e2e_expect_eq "nginx saw the second curl at its own address and port" "$ep2" "$(logged /two)"
# taken released in_use lingering: once both closing handshakes are over.
released() { [ "$(addresses)" = "2 2 0 0" ]; }
e2e_wait_for 10 released || true
e2e_expect_eq "after the program exits: 2 addresses taken, 2 released, none in use or lingering" \
  "2 2 0 0" "$(addresses)"
e2e_check "the daemon holds no socket and no active pcb" e2e_wait_for 5 e2e_idle "$API"

echo "--- the same without --tuple ---"
two_curls common
e2e_expect_eq "both curls use the common address" "200 10.77.1.2 200 10.77.1.2" \
  "$(sed 's/:[0-9]*$//' "$TMP/common.out" | xargs)"
e2e_expect_eq "and take no pool address" "2 2 0 0" "$(addresses)"
e2e_finish
