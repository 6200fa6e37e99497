#!/usr/bin/env bash
# Shared helpers for end-to-end tests and the demo (docs/design.md §5).
#
# Every run builds its own network namespaces with unique names (dpm-<test>-<pid>-<rand>-*)
# and removes them, and every process it started, on exit — even on failure or Ctrl-C.
# Nothing is configured in the root namespace and no traffic leaves the namespaces.
#
# Address plan: the stack 10.77.1.2/24 on TUN dpm0 (kernel side 10.77.1.1) in namespace
# "host"; outside servers 198.51.100.10/24 in namespace "wan", joined to "host" by a veth
# pair (198.51.100.1 on the host side); "host" forwards between them. Virtual-link tests
# (no root) use 10.77.9.1/24 and 10.77.9.2/24 and no namespaces at all.
#
# Usage in a test:
#   source "$(dirname "$0")/lib.sh"
#   e2e_require_root my_test        # only if it needs namespaces or TUN
#   e2e_init my_test                # $P, $TMP, cleanup trap
#   ...; e2e_check "what" test-command ...; ...
#   e2e_finish                      # exit 1 if any check failed
set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_ROOT=$(cd "$E2E_DIR/../.." && pwd)
BUILD=${BUILD:-$E2E_ROOT/build}
DPMD=$BUILD/dpmd
DPMCAT=$BUILD/dpm-cat
DPMRUN=$BUILD/dpm-run                 # runs an unmodified program on a dpm instance (preload hook)
PRELOAD_LIB=$BUILD/libdpm-preload.so
E2E_BIN=$BUILD/tests/e2e  # test programs built from tests/e2e/*.cc
# Scapy lives in Debian's python3 (python3-scapy); a pyenv or venv python3 on PATH may lack it.
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
E2E_PIDS=()
E2E_NETNS=()
E2E_FAILED=0
E2E_SKIP=77  # ctest SKIP_RETURN_CODE
TMP=""

e2e_require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: $1 needs root (network namespaces and TUN devices); run it as root to include it"
    exit $E2E_SKIP
  fi
}

# e2e_require_cmd CMD... : skips (77) when a program the test drives is not installed.
e2e_require_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || { echo "SKIP: '$c' is not installed (scripts/setup.sh installs it)"; exit $E2E_SKIP; }
  done
}

# e2e_require_build : fails clearly when the binaries are missing.
e2e_require_build() {
  [ -x "$DPMD" ] && [ -x "$DPMCAT" ] || { echo "FAIL: no dpmd/dpm-cat in BUILD=$BUILD (build first)" >&2; exit 1; }
}

# e2e_require_preload : fails clearly when dpm-run or the preload library is missing.
e2e_require_preload() {
  [ -x "$DPMRUN" ] && [ -f "$PRELOAD_LIB" ] || e2e_fail "no dpm-run/libdpm-preload.so in BUILD=$BUILD (build dpm-run dpm_preload)"
}

# e2e_require_test_program NAME : $E2E_BIN/NAME, or a clear failure; sets $TEST_PROGRAM.
e2e_require_test_program() {
  TEST_PROGRAM=$E2E_BIN/$1
  [ -x "$TEST_PROGRAM" ] || e2e_fail "no $TEST_PROGRAM (build the tests)"
}

# e2e_tcp_echo NS ADDR PORT LOG : starts a kernel TCP echo server (peers.py tcp-echo) in NS;
# LOG gets "IP:PORT" of every connection's source, so a test sees which stack a client used.
e2e_tcp_echo() {
  e2e_bg "$1" "$PY" "$E2E_DIR/peers.py" tcp-echo "$2" "$3" "$4"
  e2e_wait_for 10 grep -q ready "$4" || e2e_fail "the echo server on $2:$3 did not start"
}

# e2e_reap NAME : removes what an earlier run of test NAME left when it was killed with
# SIGKILL (no trap runs then, e.g. a ctest timeout): namespaces dpm-NAME-<pid>-* and scratch
# dirs /tmp/dpm-NAME-<pid>-* whose <pid> is no longer running. Nothing else is touched.
e2e_reap() {
  local name=$1 ns pid dir
  if [ "$(id -u)" = 0 ]; then
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^dpm-$name-[0-9]+-[0-9]+-" || true); do
      pid=${ns#dpm-$name-}; pid=${pid%%-*}
      kill -0 "$pid" 2>/dev/null && continue
      ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    done
  fi
  for dir in /tmp/dpm-"$name"-*; do
    [ -d "$dir" ] || continue
    pid=${dir#/tmp/dpm-$name-}; pid=${pid%%-*}
    [[ $pid =~ ^[0-9]+$ ]] || continue
    kill -0 "$pid" 2>/dev/null && continue
    [ -O "$dir" ] && rm -rf "$dir"
  done
}

# e2e_init NAME: unique prefix $P, scratch dir $TMP, cleanup on exit and on signals.
e2e_init() {
  e2e_require_build
  e2e_reap "$1"
  P="dpm-$1-$$-$RANDOM"
  TMP=$(mktemp -d "/tmp/$P.XXXX")
  chmod 755 "$TMP"  # nginx workers (www-data) read files under it
  trap e2e_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

e2e_cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  local pid ns
  for pid in "${E2E_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${E2E_PIDS[@]}"; do
    # Give each a moment to exit cleanly (dpmd unlinks its sockets), then insist.
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  for ns in "${E2E_NETNS[@]}"; do
    # Kill anything still running inside (only processes of our own namespace), then remove it.
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  if [ -n "$TMP" ]; then
    if [ -n "${E2E_KEEP_TMP:-}" ]; then echo "e2e: kept $TMP" >&2; else rm -rf "$TMP"; fi
  fi
  exit $rc
}

e2e_fail() { echo "FAIL: $*" >&2; exit 1; }
e2e_pass() { echo "PASS: $*"; }

# e2e_check DESCRIPTION CMD... : runs CMD; prints PASS or FAIL and remembers a failure.
e2e_check() {
  local what=$1; shift
  if "$@"; then
    echo "PASS: $what"
  else
    echo "FAIL: $what"
    E2E_FAILED=$((E2E_FAILED + 1))
  fi
}

# e2e_expect_eq DESCRIPTION EXPECTED ACTUAL
e2e_expect_eq() {
  if [ "$2" = "$3" ]; then
    echo "PASS: $1 ($3)"
  else
    echo "FAIL: $1: expected '$2', got '$3'"
    E2E_FAILED=$((E2E_FAILED + 1))
  fi
}

# e2e_finish : the test's exit status.
e2e_finish() {
  if [ "$E2E_FAILED" -ne 0 ]; then
    echo "RESULT: $E2E_FAILED check(s) failed"
    exit 1
  fi
  echo "RESULT: all checks passed"
  exit 0
}

# e2e_netns NAME [VAR] : creates namespace $P-NAME with loopback up, registers it for removal
# and stores its name in VAR (default: NS). Not to be called in $(...): the registration
# would happen in a subshell and the namespace would leak.
e2e_netns() {
  local ns="$P-$1"
  ip netns add "$ns"
  E2E_NETNS+=("$ns")
  ip -n "$ns" link set lo up
  printf -v "${2:-NS}" '%s' "$ns"
}

# e2e_topology [MTU] : namespaces $HOST and $WAN as in the address plan (the TUN is made by
# dpmd). The veth pair gets MTU (default 1500) on both ends.
e2e_topology() {
  local mtu=${1:-1500}
  e2e_netns host HOST
  e2e_netns wan WAN
  VETH_HOST=vh$$
  VETH_WAN=vw$$
  ip link add "$VETH_HOST" netns "$HOST" type veth peer name "$VETH_WAN" netns "$WAN"
  ip -n "$HOST" link set "$VETH_HOST" mtu "$mtu"
  ip -n "$WAN" link set "$VETH_WAN" mtu "$mtu"
  ip -n "$HOST" addr add 198.51.100.1/24 dev "$VETH_HOST"
  ip -n "$WAN" addr add 198.51.100.10/24 dev "$VETH_WAN"
  ip -n "$HOST" link set "$VETH_HOST" up
  ip -n "$WAN" link set "$VETH_WAN" up
  ip -n "$WAN" route add 10.77.0.0/16 via 198.51.100.1
  ip netns exec "$HOST" sysctl -qw net.ipv4.ip_forward=1
}

# e2e_bg NS CMD... : runs CMD in namespace NS (or "-" for none) in the background; its pid
# is in $LAST_PID and it is killed on exit.
e2e_bg() {
  local ns=$1; shift
  # "0<&0": a background command otherwise gets /dev/null as stdin instead of the caller's.
  if [ "$ns" = "-" ]; then "$@" 0<&0 & else ip netns exec "$ns" "$@" 0<&0 & fi
  LAST_PID=$!
  E2E_PIDS+=("$LAST_PID")
}

# e2e_in NS CMD... : runs CMD in namespace NS (or "-" for none) in the foreground.
e2e_in() {
  local ns=$1; shift
  if [ "$ns" = "-" ]; then "$@"; else ip netns exec "$ns" "$@"; fi
}

# e2e_wait_for TIMEOUT_S CMD... : polls CMD until it succeeds; false after TIMEOUT_S.
e2e_wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}

# e2e_dpmd NS API_SOCKET ARGS... : starts `dpmd client` and waits for its API socket. Its pid
# is in $DPMD_PID, its log in $TMP/dpmd-<api basename>.log.
e2e_dpmd() {
  local ns=$1 api=$2; shift 2
  local log="$TMP/dpmd-$(basename "$api").log"
  e2e_bg "$ns" "$DPMD" client --api-socket "$api" "$@" >"$log" 2>&1
  DPMD_PID=$LAST_PID
  e2e_wait_for 10 grep -q "dpmd: ready" "$log" || { cat "$log" >&2; e2e_fail "dpmd did not start"; }
}

# e2e_stop PID : SIGTERM, then waits (up to 5 s) for the process to go.
e2e_stop() {
  kill "$1" 2>/dev/null || true
  local i
  for i in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# e2e_virtual_pair : two dpmd instances joined by a virtual link (no root): A 10.77.9.1 with
# API socket $API_A, B 10.77.9.2 with $API_B. Pids in $DPMD_A / $DPMD_B. Extra args for both.
e2e_virtual_pair() {
  API_A=$TMP/a.sock
  API_B=$TMP/b.sock
  e2e_dpmd - "$API_A" --virtual "$TMP/a.link,$TMP/b.link" --address 10.77.9.1/24 --gateway '' "$@"
  DPMD_A=$DPMD_PID
  e2e_dpmd - "$API_B" --virtual "$TMP/b.link,$TMP/a.link" --address 10.77.9.2/24 --gateway '' "$@"
  DPMD_B=$DPMD_PID
}

# e2e_status API [--json] : `dpmd status` of the instance at API.
e2e_status() { local api=$1; shift; "$DPMD" status --api-socket "$api" "$@"; }

# e2e_json API EXPR : evaluates a Python expression over `dpmd status --json` bound to `s`,
# e.g. e2e_json "$API" 'len(s["sockets"])'.
e2e_json() {
  "$DPMD" status --api-socket "$1" --json | "$PY" -c 'import json,sys; s=json.load(sys.stdin); print(eval(sys.argv[1]))' "$2"
}

# local_of NAME / port_of NAME : the local address / port dpm-cat reported ("dpm-cat: local
# A:P ...") in $TMP/NAME.err.
local_of() { sed -n 's/^dpm-cat: local \([0-9.]*\):[0-9]*.*/\1/p' "$TMP/$1.err" | head -n 1; }
port_of() { sed -n 's/^dpm-cat: local [0-9.]*:\([0-9]*\).*/\1/p' "$TMP/$1.err" | head -n 1; }

# e2e_idle API : true when the instance holds no dpm socket and no active TCP pcb.
e2e_idle() {
  [ "$(e2e_json "$1" 'len(s["sockets"]) == 0 and s["tcp_pcbs"]["active"] == 0 and s["tcp_pcbs"]["listen"] == 0')" = True ]
}

# e2e_nginx NS ADDRESS PORT DOCROOT : starts nginx serving DOCROOT, logging to $TMP/nginx-access.log.
# More addresses to listen on (same port) may follow DOCROOT. With NGINX_LOG_FORMAT set, the
# access log uses that format (e.g. one that shows the client's port). NGINX_WORKER_CONNECTIONS
# (default 1024) sets how many connections it serves at once.
e2e_nginx() {
  local ns=$1 addr=$2 port=$3 root=$4
  local listen="listen $addr:$port;" a
  for a in "${@:5}"; do listen="$listen listen $a:$port;"; done
  local log="access_log $TMP/nginx-access.log;"
  [ -z "${NGINX_LOG_FORMAT:-}" ] || log="log_format custom '$NGINX_LOG_FORMAT'; access_log $TMP/nginx-access.log custom;"
  mkdir -p "$TMP/nginx"
  cat >"$TMP/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
worker_rlimit_nofile $((${NGINX_WORKER_CONNECTIONS:-1024} * 2 + 64));
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections ${NGINX_WORKER_CONNECTIONS:-1024}; }
http {
  $log
  client_body_temp_path $TMP/nginx;
  proxy_temp_path $TMP/nginx;
  fastcgi_temp_path $TMP/nginx;
  uwsgi_temp_path $TMP/nginx;
  scgi_temp_path $TMP/nginx;
  sendfile on;
  default_type application/octet-stream;
  server { $listen root $root; }
}
CONF
  e2e_bg "$ns" nginx -c "$TMP/nginx/nginx.conf"
  NGINX_PID=$LAST_PID
  e2e_wait_for 10 ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/$addr/$port" || e2e_fail "nginx did not start"
}

# strip_http FILE : the body of an HTTP response saved in FILE.
strip_http() { "$PY" -c 'import sys; d=open(sys.argv[1],"rb").read(); i=d.find(b"\r\n\r\n"); sys.stdout.buffer.write(d[i+4:] if i>=0 else b"")' "$1"; }

# sha FILE : its sha256, hex.
sha() { sha256sum "$1" | cut -d' ' -f1; }

# file_size FILE
file_size() { stat -c %s "$1"; }

# vmrss_kb PID : resident set size of a process, KiB (0 if it is gone).
vmrss_kb() { awk '/^VmRSS:/ {print $2; found=1} END {if (!found) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }

# e2e_sshd NS LISTEN KNOWN_AS : an sshd in NS on LISTEN (ADDR:PORT) for root with a client key,
# all made in $TMP with ssh-keygen (nothing under /etc/ssh is used): $TMP/id is the client key,
# $TMP/known_hosts holds the host key under the name KNOWN_AS (strict checking), the log is
# $TMP/sshd.log. Waits until it listens (from NS).
e2e_sshd() {
  local ns=$1 listen=$2 known_as=$3
  ssh-keygen -q -t ed25519 -N '' -C dpm-test-host -f "$TMP/host_key"
  ssh-keygen -q -t ed25519 -N '' -C dpm-test-client -f "$TMP/id"
  cp "$TMP/id.pub" "$TMP/authorized_keys"
  echo "$known_as $(cut -d' ' -f1,2 "$TMP/host_key.pub")" >"$TMP/known_hosts"
  cat >"$TMP/sshd_config" <<CONF
ListenAddress $listen
HostKey $TMP/host_key
AuthorizedKeysFile $TMP/authorized_keys
PidFile $TMP/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PrintMotd no
LogLevel VERBOSE
CONF
  # sshd's privilege separation needs its empty directory (Debian's service creates it at start).
  mkdir -p /run/sshd
  e2e_bg "$ns" /usr/sbin/sshd -D -e -f "$TMP/sshd_config" -o UseDNS=no -o MaxStartups=20 2>"$TMP/sshd.log"
  e2e_wait_for 10 ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/${listen%:*}/${listen##*:}" ||
    { cat "$TMP/sshd.log"; e2e_fail "sshd did not start"; }
}
