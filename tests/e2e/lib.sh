#!/usr/bin/env bash
# Shared helpers for end-to-end tests and the demo (SPEC.md §3).
#
# Every run builds its own network namespaces with unique names (dpm-<test>-<pid>-<rand>-*)
# and removes them, and every process it started, on exit — even on failure. Nothing is
# configured in the root namespace and no traffic leaves the namespaces.
#
# Address plan: the stack 10.77.1.2/24 on TUN dpm0 (kernel side 10.77.1.1) in namespace
# "host"; outside servers 198.51.100.10/24 in namespace "wan", joined to "host" by a veth
# pair (198.51.100.1 on the host side); "host" forwards between them.
set -euo pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$E2E_ROOT/build}
DPMD=$BUILD/dpmd
DPMCAT=$BUILD/dpm-cat
E2E_PIDS=()
E2E_NETNS=()
E2E_SKIP=77  # ctest SKIP_RETURN_CODE

e2e_require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: $1 needs root (network namespaces and TUN devices)"
    exit $E2E_SKIP
  fi
}

# e2e_init NAME: unique prefix $P, scratch dir $TMP, cleanup on exit.
e2e_init() {
  P="dpm-$1-$$-$RANDOM"
  TMP=$(mktemp -d "/tmp/$P.XXXX")
  chmod 755 "$TMP"  # nginx workers (www-data) read files under it
  trap e2e_cleanup EXIT
}

e2e_cleanup() {
  local rc=$?
  set +e
  for pid in "${E2E_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 0.2
  for pid in "${E2E_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  for ns in "${E2E_NETNS[@]}"; do
    # Kill anything still running inside, then remove the namespace.
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  [ -n "${E2E_KEEP_TMP:-}" ] || rm -rf "$TMP"
  exit $rc
}

e2e_fail() { echo "FAIL: $*" >&2; exit 1; }
e2e_pass() { echo "PASS: $*"; }

# e2e_netns NAME → creates namespace $P-NAME with loopback up; prints its name.
e2e_netns() {
  local ns="$P-$1"
  ip netns add "$ns"
  E2E_NETNS+=("$ns")
  ip -n "$ns" link set lo up
  echo "$ns"
}

# e2e_topology: namespaces $HOST and $WAN as in the address plan (the TUN is made by dpmd).
e2e_topology() {
  HOST=$(e2e_netns host)
  WAN=$(e2e_netns wan)
  ip link add v-h-$$ netns "$HOST" type veth peer name v-w-$$ netns "$WAN"
  ip -n "$HOST" addr add 198.51.100.1/24 dev v-h-$$
  ip -n "$WAN" addr add 198.51.100.10/24 dev v-w-$$
  ip -n "$HOST" link set v-h-$$ up
  ip -n "$WAN" link set v-w-$$ up
  ip -n "$WAN" route add 10.77.0.0/16 via 198.51.100.1
  ip netns exec "$HOST" sysctl -qw net.ipv4.ip_forward=1
}

# e2e_bg NS CMD... : runs CMD in namespace NS (or "-" for none) in the background.
e2e_bg() {
  local ns=$1; shift
  if [ "$ns" = "-" ]; then "$@" & else ip netns exec "$ns" "$@" & fi
  E2E_PIDS+=($!)
  LAST_PID=$!
}

# e2e_wait_for TIMEOUT_S CMD... : polls CMD until it succeeds.
e2e_wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}

# e2e_dpmd NS API_SOCKET ARGS... : starts `dpmd client` and waits for its API socket.
e2e_dpmd() {
  local ns=$1 api=$2; shift 2
  local log="$TMP/dpmd-$(basename "$api").log"
  e2e_bg "$ns" "$DPMD" client --api-socket "$api" "$@" >"$log" 2>&1
  e2e_wait_for 10 grep -q "dpmd: ready" "$log" || { cat "$log" >&2; e2e_fail "dpmd did not start"; }
}

# e2e_nginx NS ADDRESS PORT DOCROOT : starts nginx serving DOCROOT, logging to $TMP/nginx-access.log.
e2e_nginx() {
  local ns=$1 addr=$2 port=$3 root=$4
  mkdir -p "$TMP/nginx"
  cat >"$TMP/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log $TMP/nginx-access.log;
  client_body_temp_path $TMP/nginx;
  proxy_temp_path $TMP/nginx;
  fastcgi_temp_path $TMP/nginx;
  uwsgi_temp_path $TMP/nginx;
  scgi_temp_path $TMP/nginx;
  sendfile on;
  server { listen $addr:$port; root $root; }
}
CONF
  e2e_bg "$ns" nginx -c "$TMP/nginx/nginx.conf"
  e2e_wait_for 10 ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/$addr/$port" || e2e_fail "nginx did not start"
}

# strip_http FILE : the body of an HTTP response saved in FILE.
strip_http() { python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); i=d.find(b"\r\n\r\n"); sys.stdout.buffer.write(d[i+4:] if i>=0 else b"")' "$1"; }
