#!/usr/bin/env bash
# dpmd's resident memory with N idle TCP connections (target ≤ 20 KiB each).
#
#   S (198.51.100.10) ══ veth ══ H (198.51.100.1, forwards) ── TUN dpm0 ── dpmd (10.77.1.2)
#
# idle_clients in S opens N kernel TCP connections to 10.77.1.2:7000; dpm_idle_server, a
# libdpm program, accepts and holds them. dpmd's VmRSS is read from /proc before the clients
# start (dpmd up, server listening) and after every connection is established and accepted.
# Two cases, each with a fresh dpmd:
#   fresh     — connections that never carried a byte;
#   exchanged — each carried one 512-byte request and one 512-byte reply first, then went
#               idle (a keep-alive connection: buffers the data path allocated must be gone).
#
# Run as root: sudo bench/idle_memory.sh
# Environment: BUILD (build dir, default ./build), BENCH_CONNECTIONS (10000),
# BENCH_IDLE_CASES ("fresh exchanged"), BENCH_KEEP_TMP.
source "$(dirname "$0")/lib.sh"

N=${BENCH_CONNECTIONS:-10000}
CASES=${BENCH_IDLE_CASES:-"fresh exchanged"}
EXCHANGE_BYTES=512
PORT=7000
MTU=1500

bench_require_root idle_memory.sh
bench_require_binaries "$BIN/dpm_idle_server" "$BIN/idle_clients"
bench_init idle

# dpmd, the server and the clients each hold about N descriptors (dpmd: one socket-pair end
# per connection). Root may raise the hard limit; children inherit it.
need=$((N + 1024))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
  ulimit -Hn "$need" 2>/dev/null || {
    echo "idle_memory: $N connections need a descriptor hard limit >= $need (it is $(ulimit -Hn) and may not be" \
      "raised here); lower BENCH_CONNECTIONS or raise the limit (prlimit, limits.conf)" >&2
    exit 1
  }
fi
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$need" ]; then ulimit -Sn "$need"; fi

kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$2/status"; }

FAILED=0
ROWS=()
RUN=0

# measure CASE: one fresh topology and dpmd; appends a row to ROWS.
measure() {
  local case=$1 extra=()
  [ "$case" = exchanged ] && extra=(--exchange "$EXCHANGE_BYTES")
  RUN=$((RUN + 1))
  bench_netns S "$RUN-s"
  bench_netns H "$RUN-h"
  bench_veth "$S" "b$$s$RUN" 198.51.100.10/24 "$H" "b$$h$RUN" 198.51.100.1/24 $MTU
  ip -n "$S" route add 10.77.1.0/24 via 198.51.100.1
  ip netns exec "$H" sysctl -qw net.ipv4.ip_forward=1

  local api=$TMP/dpmd-$RUN.sock
  bench_bg "$H" "$TMP/dpmd-$RUN.log" "$DPMD" client --tun dpm0 --mtu $MTU --address 10.77.1.2/24 \
    --gateway 10.77.1.1 --host-address 10.77.1.1/24 --api-socket "$api"
  local dpmd_pid=$LAST_PID
  bench_wait_log 10 "$TMP/dpmd-$RUN.log" "dpmd: ready" "$dpmd_pid"
  bench_bg "$H" "$TMP/server-$RUN.log" "$BIN/dpm_idle_server" --api-socket "$api" --port $PORT --count "$N" \
    --timeout 300 "${extra[@]}"
  local server_pid=$LAST_PID
  bench_wait_log 10 "$TMP/server-$RUN.log" "listening" "$server_pid"
  sleep 0.5
  local before
  before=$(kib VmRSS "$dpmd_pid")

  local start=$SECONDS
  bench_bg "$S" "$TMP/clients-$RUN.log" "$BIN/idle_clients" 10.77.1.2 $PORT "$N" "${extra[@]}"
  local clients_pid=$LAST_PID
  if ! bench_wait_log 300 "$TMP/server-$RUN.log" "accepted=" "$server_pid" ||
     ! bench_wait_log 60 "$TMP/clients-$RUN.log" "connected=" "$clients_pid"; then
    cat "$TMP/clients-$RUN.log" >&2
    tail -n 5 "$TMP/dpmd-$RUN.log" >&2
    echo "idle_memory: $case: the connections were not all established" >&2
    FAILED=1
    bench_teardown
    return
  fi
  echo "  $case: $(cat "$TMP/clients-$RUN.log") (all accepted after $((SECONDS - start)) s)"
  sleep 2  # let delayed ACKs and timers settle
  local after hwm fds sockets per
  after=$(kib VmRSS "$dpmd_pid")
  hwm=$(kib VmHWM "$dpmd_pid")
  fds=$(find "/proc/$dpmd_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  sockets=$("$DPMD" status --api-socket "$api" 2>/dev/null | sed -n 's/.*sockets \([0-9]*\) .*/\1/p' | head -n 1)
  per=$(awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN { printf "%.2f", (a - b) / n }')
  ROWS+=("$(printf '%-10s %7s %12s %12s %12s %8s %8s %10s' "$case" "$N" "$before" "$after" "$hwm" "$fds" \
    "${sockets:-?}" "$per")")
  if awk -v p="$per" 'BEGIN { exit !(p > 20) }'; then FAILED=2; fi
  bench_teardown
}

echo "idle_memory: $N idle TCP connections into dpmd (MTU $MTU)"
for c in $CASES; do measure "$c"; done
echo
printf '%-10s %7s %12s %12s %12s %8s %8s %10s\n' case conns "RSS before" "RSS after" "RSS peak" fds sockets "KiB/conn"
printf '%-10s %7s %12s %12s %12s %8s %8s %10s\n' "" "" KiB KiB KiB "" "" ""
for r in "${ROWS[@]}"; do echo "$r"; done
echo "(fds: dpmd's open descriptors; sockets: dpm sockets dpmd reports, the listener included)"
case $FAILED in
  0) echo "target <= 20 KiB per idle connection: met" ;;
  2) echo "target <= 20 KiB per idle connection: NOT met"; exit 1 ;;
  *) echo "some connections were not established (see above)" >&2; exit 1 ;;
esac
