#!/usr/bin/env bash
# One TCP stream through dpm, through a bare TUN-to-TUN forwarder, and through the kernel
# over veth — at each MTU, in the same run — and a table of Gbit/s and ratios.
# Topologies: bench/README.md. Run as root:
#
#   sudo bench/throughput.sh
#
# Environment: BUILD (build dir, default ./build), BENCH_SECONDS (per measurement, 5),
# BENCH_MTUS ("1500 9000"), BENCH_REPEAT (runs per cell, the median is shown; 1),
# BENCH_PATHS ("fwd dpm kernel"), BENCH_PERF_DIR (if set: `perf record -g` of dpmd, tun_forwarder
# and the sink behind each during their runs, files written there; BENCH_PERF_CMD replaces
# "record -g", e.g. "stat -e syscalls:sys_enter_sendmsg"), BENCH_KEEP_TMP (keep logs).
source "$(dirname "$0")/lib.sh"

SECS=${BENCH_SECONDS:-5}
MTUS=${BENCH_MTUS:-"1500 9000"}
REPEAT=${BENCH_REPEAT:-1}
PATHS=${BENCH_PATHS:-"fwd dpm kernel"}
PORT=5201

bench_require_root throughput.sh
bench_require_binaries "$BIN/tun_forwarder" "$BIN/tcp_blast" "$BIN/kernel_sink" "$BIN/dpm_sink"
bench_init tput

RUN=0
FAILED=0
declare -A RESULT  # "path mtu" → list of Gbit/s
declare -A CHECK   # "path mtu" → "ok" or the mismatch

# The sender and its link into H, common to every path: bench_outer (lib.sh).

# run_blast DEST SINK_PID SINK_LOG: runs the sender in S, waits for the sink, records.
# Sets GBPS and OK.
run_blast() {
  local dest=$1 sink_pid=$2 sink_log=$3 blast_log=$TMP/blast-$RUN.log
  GBPS=0
  OK="sender failed"
  if ! ip netns exec "$S" timeout $((SECS + 30)) "$BIN/tcp_blast" "$dest" $PORT --seconds "$SECS" >"$blast_log" 2>&1; then
    cat "$blast_log" "$sink_log" >&2
    return 1
  fi
  if ! bench_wait_pid 30 "$sink_pid"; then
    OK="sink failed"
    cat "$sink_log" >&2
    return 1
  fi
  local sent received
  sent=$(bench_field "$blast_log" bytes)
  received=$(bench_field "$sink_log" bytes)
  GBPS=$(bench_field "$sink_log" gbps)
  if [ -n "$sent" ] && [ "$sent" = "$received" ] && [ "$sent" -gt 0 ]; then
    OK=ok
  else
    OK="sent $sent received $received"
    return 1
  fi
}

# perf_start PID NAME: with BENCH_PERF_DIR set, runs `perf $BENCH_PERF_CMD` (default
# "record -g") on PID until perf_stop, writing $BENCH_PERF_DIR/NAME.data.
PERF_PIDS=()
perf_start() {
  [ -n "${BENCH_PERF_DIR:-}" ] || return 0
  mkdir -p "$BENCH_PERF_DIR"
  # shellcheck disable=SC2086
  perf ${BENCH_PERF_CMD:-record -g} -o "$BENCH_PERF_DIR/$2.data" -p "$1" >/dev/null 2>&1 &
  PERF_PIDS+=($!)
}
perf_stop() {
  local pid
  for pid in "${PERF_PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${PERF_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PERF_PIDS=()
}

# (a) dpm: S ══ veth ══ H ── TUN dpm0 ── dpmd (lwIP 10.77.1.2) ── UNIX pair ── dpm_sink
run_dpm() {
  local mtu=$1
  bench_outer "$RUN" "$mtu" 10.77.1.0/24
  bench_dpmd "$RUN" "$mtu"
  local api=$API dpmd_pid=$DPMD_PID
  bench_bg "$H" "$TMP/sink-$RUN.log" "$BIN/dpm_sink" --api-socket "$api" --port $PORT --timeout $((SECS + 60))
  local sink_pid=$LAST_PID
  bench_wait_log 10 "$TMP/sink-$RUN.log" "listening" "$sink_pid"
  perf_start "$dpmd_pid" "dpmd-mtu$mtu-run$RUN"
  perf_start "$sink_pid" "dpm_sink-mtu$mtu-run$RUN"
  run_blast 10.77.1.2 "$sink_pid" "$TMP/sink-$RUN.log" || true
  perf_stop
  "$DPMD" status --api-socket "$api" >"$TMP/dpmd-status-$RUN.txt" 2>&1 || true
}

# (b) bare forwarder: S ══ veth ══ H ── tunA ── tun_forwarder ── tunB ── R (10.77.2.2) kernel_sink
run_fwd() {
  local mtu=$1
  bench_outer "$RUN" "$mtu" 10.77.2.0/24
  bench_netns R "$RUN-r"
  ip -n "$H" tuntap add dev tunA mode tun
  ip -n "$H" tuntap add dev tunB mode tun
  bench_bg "$H" "$TMP/fwd-$RUN.log" "$BIN/tun_forwarder" tunA tunB
  local fwd_pid=$LAST_PID
  bench_wait_log 10 "$TMP/fwd-$RUN.log" "ready" "$fwd_pid"
  ip -n "$H" link set tunB netns "$R"  # the forwarder's descriptor stays attached
  ip -n "$H" link set tunA mtu "$mtu"
  ip -n "$H" addr add 10.77.2.1/24 dev tunA
  ip -n "$H" link set tunA up
  ip -n "$R" link set tunB mtu "$mtu"
  ip -n "$R" addr add 10.77.2.2/24 dev tunB
  ip -n "$R" link set tunB up
  ip -n "$R" route add default dev tunB
  bench_bg "$R" "$TMP/sink-$RUN.log" "$BIN/kernel_sink" --address 10.77.2.2 --port $PORT --timeout $((SECS + 60))
  local sink_pid=$LAST_PID
  bench_wait_log 10 "$TMP/sink-$RUN.log" "listening" "$sink_pid"
  perf_start "$fwd_pid" "tun_forwarder-mtu$mtu-run$RUN"
  perf_start "$sink_pid" "kernel_sink-mtu$mtu-run$RUN"
  run_blast 10.77.2.2 "$sink_pid" "$TMP/sink-$RUN.log" || true
  perf_stop
}

# (c) kernel: S ══ veth ══ H ══ veth ══ R (10.77.2.2) kernel_sink — the same hops, no TUN.
run_kernel() {
  local mtu=$1
  bench_outer "$RUN" "$mtu" 10.77.2.0/24
  bench_inner_kernel "$RUN" "$mtu"
  bench_bg "$R" "$TMP/sink-$RUN.log" "$BIN/kernel_sink" --address 10.77.2.2 --port $PORT --timeout $((SECS + 60))
  local sink_pid=$LAST_PID
  bench_wait_log 10 "$TMP/sink-$RUN.log" "listening" "$sink_pid"
  run_blast 10.77.2.2 "$sink_pid" "$TMP/sink-$RUN.log" || true
}

echo "throughput: one TCP stream, ${SECS}s per measurement, MTU $MTUS, $REPEAT run(s) per cell, $(nproc) CPUs"
for rep in $(seq "$REPEAT"); do
  for mtu in $MTUS; do
    for path in $PATHS; do
      RUN=$((RUN + 1))
      "run_$path" "$mtu"
      bench_teardown
      printf '  run %-2d %-6s MTU %-5s %8s Gbit/s  %s\n' "$rep" "$path" "$mtu" "$GBPS" "$OK"
      RESULT["$path $mtu"]="${RESULT["$path $mtu"]:-} $GBPS"
      if [ "$OK" != ok ]; then
        CHECK["$path $mtu"]="$OK"
        FAILED=1
      fi
    done
  done
done

label() {
  case $1 in
    dpm) echo "dpm (TUN+lwIP+libdpm)" ;;
    fwd) echo "bare TUN forwarder" ;;
    kernel) echo "kernel (veth)" ;;
  esac
}

echo
printf '%-24s %6s %10s %10s %10s  %s\n' path MTU Gbit/s "x fwd" "x kernel" "bytes"
verdict=""
for mtu in $MTUS; do
  fwd=$(echo "${RESULT["fwd $mtu"]:-}" | bench_median)
  kern=$(echo "${RESULT["kernel $mtu"]:-}" | bench_median)
  for path in $PATHS; do
    g=$(echo "${RESULT["$path $mtu"]}" | bench_median)
    rf=$(bench_ratio "$g" "$fwd")
    rk=$(bench_ratio "$g" "$kern" %.3f)
    printf '%-24s %6s %10.2f %10s %10s  %s\n' "$(label "$path")" "$mtu" "$g" "$rf" "$rk" "${CHECK["$path $mtu"]:-sent = received}"
    if [ "$path" = dpm ] && [ "$mtu" = 1500 ]; then
      verdict=$(awk -v r="$rf" 'BEGIN { if (r == "-") print "not measured"; else if (r >= 0.5) print "met"; else print "NOT met" }')
      verdict="target dpm >= 0.5 x bare forwarder at MTU 1500: $verdict (x fwd = $rf)"
    fi
  done
done
[ -z "$verdict" ] || echo "$verdict"
if [ "$FAILED" != 0 ]; then
  echo "some runs did not carry every byte (see above); logs: rerun with BENCH_KEEP_TMP=1" >&2
  exit 1
fi
