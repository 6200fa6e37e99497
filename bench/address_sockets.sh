#!/usr/bin/env bash
# Sockets with addresses of their own (docs/design.md §7). Targets: at least 5,000
# new-address sockets per second from the static pool; at most 4 KiB resident per idle
# address at 10,000 addresses.
#
# 1. Rate — sockets created and closed per second, one program, one thread:
#    dpm static  dpm_socket(DPM_TUPLE_STATIC) (address taken at socket()), getsockname, close
#    dpm common  the same on the instance's common address: what the address costs on top
#    kernel      the kernel's way to give a socket an address of its own, the competitor:
#                RTM_NEWADDR of a /32 on an interface, socket, bind to it, getsockname,
#                close, RTM_DELADDR (bench/address_sockets.cc kernel-churn)
#    Interleaved rounds; medians.
# 2. Memory — dpmd's VmRSS growth per socket with N sockets held (fresh dpmd per case):
#    tcp static / udp static   each socket with its own pool address (TCP unconnected,
#                              UDP bound); tcp common: the same sockets without own addresses.
#    The kernel's cost of N addresses on an interface (Slab in /proc/meminfo) for reference.
#
# Run as root: sudo bench/address_sockets.sh
# Environment: BUILD (build dir, default ./build), BENCH_ADDRESSES (10000), BENCH_ROUNDS (5),
# BENCH_SECONDS (2 per rate run), BENCH_KEEP_TMP.
source "$(dirname "$0")/lib.sh"

N=${BENCH_ADDRESSES:-10000}
ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECONDS:-2}
PROG=$BIN/address_sockets

bench_require_root address_sockets.sh
bench_require_binaries "$PROG"
bench_init addresses
need=$((N * 2 + 4096))
ulimit -Hn "$need" 2>/dev/null || true
ulimit -Sn "$need" 2>/dev/null || true

# The pool: N addresses from 10.78.0.1 (routed nowhere: no traffic in this benchmark).
last=$((N))
POOL="10.78.0.1-10.78.$(((last) / 256)).$(((last) % 256))"
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$2/status"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

bench_netns H h
ip -n "$H" link add kd0 type veth peer name kd1  # (no dummy module on every kernel)
ip -n "$H" link set kd0 up
RUN=0
start_dpmd() {
  RUN=$((RUN + 1))
  API=$TMP/dpmd-$RUN.sock
  bench_bg "$H" "$TMP/dpmd-$RUN.log" "$DPMD" client --tun "as$RUN" --address 10.77.1.2/24 --gateway '' \
    --host-address 10.77.1.1/24 --api-socket "$API" --address-pool "$POOL" --max-sockets $((N + 1024))
  DPMD_PID=$LAST_PID
  bench_wait_log 10 "$TMP/dpmd-$RUN.log" "dpmd: ready" "$DPMD_PID"
}
stop_dpmd() {
  kill "$DPMD_PID" 2>/dev/null || true
  wait "$DPMD_PID" 2>/dev/null || true
}

echo "address_sockets: $ROUNDS rounds of $SECS s per kind; memory at $N sockets"
start_dpmd
declare -A RATES
for r in $(seq "$ROUNDS"); do
  for kind in static common kernel; do
    if [ "$kind" = kernel ]; then
      out=$(ip netns exec "$H" "$PROG" kernel-churn "$SECS" kd0 10.79.0.1)
    else
      out=$(ip netns exec "$H" "$PROG" --api-socket "$API" churn "$SECS" --tuple "$kind")
    fi
    rate=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' <<<"$out")
    RATES[$kind]+="$rate "
    echo "  round $r $kind: $rate sockets/s"
  done
done
stop_dpmd
declare -A MED
for kind in static common kernel; do MED[$kind]=$(tr ' ' '\n' <<<"${RATES[$kind]}" | grep . | median); done

# memory CASE ARGS... : dpmd's RSS growth per socket holding N sockets (fresh dpmd).
declare -A MEM
memory() {
  local case=$1; shift
  start_dpmd
  sleep 0.3
  local before after
  before=$(kib VmRSS "$DPMD_PID")
  bench_bg "$H" "$TMP/hold-$RUN.log" "$PROG" --api-socket "$API" hold "$N" "$@"
  local holder=$LAST_PID
  bench_wait_log 120 "$TMP/hold-$RUN.log" "held=" "$holder" || { stop_dpmd; return 1; }
  sleep 1
  after=$(kib VmRSS "$DPMD_PID")
  MEM[$case]=$(awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN { printf "%.2f", (a - b) / n }')
  echo "  $case: RSS $before -> $after KiB ($(cat "$TMP/hold-$RUN.log"))"
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  stop_dpmd
}
memory "tcp static" --tuple static
memory "udp static" --tuple static --udp
memory "tcp common" --tuple common

# The kernel: N /32 addresses on the dummy interface, as Slab growth.
slab() { awk '$1 == "Slab:" {print $2}' /proc/meminfo; }
sync
before=$(slab)
for i in $(seq 1 "$N"); do echo "address add 10.79.$((i / 256)).$((i % 256))/32 dev kd0"; done >"$TMP/batch"
ip -n "$H" -batch "$TMP/batch"
after=$(slab)
KERNEL_ADDR=$(awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN { printf "%.2f", (a - b) / n }')
ip -n "$H" link del kd0

echo
printf '%-34s %12s %10s\n' "new-address sockets, create+close" "sockets/s" "x kernel"
for kind in static common kernel; do
  label="dpm, $kind"
  [ "$kind" = static ] && label="dpm, own address (static pool)"
  [ "$kind" = common ] && label="dpm, common address (no own)"
  [ "$kind" = kernel ] && label="kernel: add /32, bind, close, del"
  printf '%-34s %12s %10s\n' "$label" "${MED[$kind]}" \
    "$(awk -v a="${MED[$kind]}" -v b="${MED[kernel]}" 'BEGIN { printf "%.2f", a / b }')"
done
echo
printf '%-34s %12s\n' "resident memory per held socket" "KiB"
printf '%-34s %12s\n' "dpm, TCP, own address" "${MEM[tcp static]}"
printf '%-34s %12s\n' "dpm, UDP bound, own address" "${MEM[udp static]}"
printf '%-34s %12s\n' "dpm, TCP, common address" "${MEM[tcp common]}"
printf '%-34s %12s\n' "kernel: an address on a netdev" "$KERNEL_ADDR"
echo "(kernel: /proc/meminfo Slab growth for $N /32 addresses; system-wide, so indicative)"

ok=1
awk -v r="${MED[static]}" 'BEGIN { exit !(r >= 5000) }' || ok=0
awk -v a="${MEM[tcp static]}" -v b="${MEM[udp static]}" 'BEGIN { exit !(a <= 4 && b <= 4) }' || ok=0
if [ $ok = 1 ]; then
  echo "targets (>= 5000 new-address sockets/s; <= 4 KiB per idle address): met"
else
  echo "targets (>= 5000 new-address sockets/s; <= 4 KiB per idle address): NOT met"
  exit 1
fi
