#!/usr/bin/env bash
# Gateway throughput: one iperf3 TCP stream from a plain host on the private
# side to a server outside, through
#   (a) dpm:    IN ──TUN gwin── dpmd gateway (NAT engine fast path) ──TUN gwout── OUT
#   (b) fwd:    IN ──TUN tunA── tun_forwarder (bare read/write, no NAT) ──TUN tunB── OUT
#   (c) kernel: IN ══veth══ R (nftables masquerade, ip_forward) ══veth══ OUT
# (a) and (b) each with and without TUN offload (IFF_VNET_HDR, TCP super-packets: dpmd's
# default, --no-offload; tun_forwarder --offload), in the same run, at MTU 1500 and 9000,
# printing Gbit/s and ratios to the plain forwarder, the forwarder with offload and the
# kernel. IN is 10.77.3.2 (default route into the path); the server is 198.51.100.10 on OUT's
# loopback; the registered pool is 203.0.113.1. Run by hand as root; not in CI.
source "$(dirname "$0")/lib.sh"
bench_require_root gateway_throughput
bench_require_binaries "$BIN/tun_forwarder"
command -v iperf3 >/dev/null && command -v nft >/dev/null || { echo "needs iperf3 and nft (scripts/setup.sh)" >&2; exit 1; }
bench_init gateway_throughput
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
MTUS=${BENCH_MTUS:-"1500 9000"}
REPEAT=${BENCH_REPEAT:-5}  # runs per path, interleaved fwd, dpm, kernel, fwd, ...; the median is printed
# BENCH_PIN=1: the forwarding process (gateway or forwarder) on CPU 1, iperf3 on CPU 0, the
# same for both, so the scheduler does not put them on one CPU in some runs and not others.
PIN=${BENCH_PIN:-0}
pin_fwd() { if [ "$PIN" = 1 ]; then echo taskset -c 1; fi; }
pin_app() { if [ "$PIN" = 1 ]; then echo taskset -c 0; fi; }

# iperf_run IN OUT : one stream IN → OUT's 198.51.100.10; prints Gbit/s (receiver side).
iperf_run() {
  local in=$1 out=$2
  # shellcheck disable=SC2046
  bench_bg "$out" "$TMP/iperf3-s.log" $(pin_app) iperf3 -s -B 198.51.100.10 -1
  sleep 0.3
  # shellcheck disable=SC2046
  ip netns exec "$in" timeout $((SECONDS_PER_RUN + 15)) $(pin_app) iperf3 -c 198.51.100.10 -t "$SECONDS_PER_RUN" -J \
    >"$TMP/iperf3.json" 2>/dev/null || true
  RESULT=$(/usr/bin/python3 -c 'import json,sys
try: print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception: print("0")' "$TMP/iperf3.json")
}

common_ends() {  # IN with 10.77.3.2, OUT with the server address
  bench_netns IN in
  bench_netns OUT out
  ip -n "$OUT" addr add 198.51.100.10/32 dev lo
}

run_dpm() { dpm_path "$1"; }
run_dpm_plain() { dpm_path "$1" --no-offload; }
run_fwd() { fwd_path "$1"; }
run_fwd_offload() { fwd_path "$1" --offload; }

dpm_path() {
  local mtu=$1
  shift
  common_ends
  # shellcheck disable=SC2046
  bench_bg "$IN" "$TMP/gw.log" $(pin_fwd) "$DPMD" gateway "$@" --inside-tun gwin --inside-host-address 10.77.3.2/16 \
    --outside-tun gwout --address 10.77.0.1/16 --pool 203.0.113.1 --mtu "$mtu" --api-socket "$TMP/gw.sock"
  bench_wait_log 10 "$TMP/gw.log" "gateway ready" "$LAST_PID"
  ip -n "$IN" link set gwout netns "$OUT"
  ip -n "$OUT" link set gwout up
  ip -n "$OUT" route add 203.0.113.0/24 dev gwout
  ip -n "$IN" route add default dev gwin
  iperf_run "$IN" "$OUT"
}

fwd_path() {
  local mtu=$1
  shift
  common_ends
  ip -n "$IN" tuntap add dev tunA mode tun
  ip -n "$IN" tuntap add dev tunB mode tun
  ip -n "$IN" link set tunA mtu "$mtu"
  ip -n "$IN" link set tunB mtu "$mtu"
  # shellcheck disable=SC2046
  bench_bg "$IN" "$TMP/fwd.log" $(pin_fwd) "$BIN/tun_forwarder" "$@" tunA tunB
  sleep 0.3
  ip -n "$IN" link set tunB netns "$OUT"
  ip -n "$IN" addr add 10.77.3.2/16 dev tunA
  ip -n "$IN" link set tunA up
  ip -n "$IN" route add default dev tunA
  ip -n "$OUT" link set tunB mtu "$mtu" up
  ip -n "$OUT" route add 10.77.0.0/16 dev tunB
  iperf_run "$IN" "$OUT"
}

run_kernel() {
  local mtu=$1
  common_ends
  bench_netns R r
  bench_veth "$IN" vi 10.77.3.2/24 "$R" vr 10.77.3.1/24 "$mtu"
  bench_veth "$R" vo 203.0.113.1/24 "$OUT" vs 203.0.113.254/24 "$mtu"
  ip -n "$IN" route add default via 10.77.3.1
  ip -n "$OUT" route add 203.0.113.0/24 dev vs 2>/dev/null || true
  ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$R" route add 198.51.100.10/32 via 203.0.113.254
  ip netns exec "$R" nft -f - <<NFT
table ip nat {
  chain postrouting { type nat hook postrouting priority srcnat; oifname "vo" masquerade; }
}
NFT
  iperf_run "$IN" "$OUT"
}

PATHS="fwd fwd_offload dpm_plain dpm kernel"
declare -A NAMES=([fwd]="bare TUN forwarder" [fwd_offload]="bare TUN forwarder, offload"
  [dpm_plain]="dpm gateway, --no-offload" [dpm]="dpm gateway (default: offload)"
  [kernel]="kernel nftables masquerade (veth)")
printf '\n%-34s %6s %8s %7s %11s %9s\n' "path (one iperf3 stream)" MTU Gbit/s "x fwd" "x fwd+offl" "x kernel"
# The median of the runs that moved data; a run that failed (0) is listed but left out.
median() { /usr/bin/python3 -c 'import statistics,sys
v = [float(x) for x in sys.argv[1:] if float(x) > 0]
print("%.2f" % statistics.median(v) if v else "0")' "$@"; }
ratio() { /usr/bin/python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f'%(a/b) if b else '-')" "$1" "$2"; }
for mtu in $MTUS; do
  declare -A r=() runs=()
  for i in $(seq "$REPEAT"); do
    for path in $PATHS; do
      # Not $(run_...): namespaces made in a subshell would never be torn down.
      RESULT=0
      "run_$path" "$mtu" >>"$TMP/setup.log" 2>&1 || true
      runs[$path]="${runs[$path]:-} $RESULT"
      bench_teardown
    done
  done
  for path in $PATHS; do
    # shellcheck disable=SC2086
    r[$path]=$(median ${runs[$path]})
    echo "  runs $path MTU $mtu (Gbit/s, 0 = failed; see BENCH_KEEP_TMP=1 logs):${runs[$path]}" >&2
  done
  for path in $PATHS; do
    printf '%-34s %6s %8s %7s %11s %9s\n' "${NAMES[$path]}" "$mtu" "${r[$path]}" "$(ratio "${r[$path]}" "${r[fwd]}")" \
      "$(ratio "${r[$path]}" "${r[fwd_offload]}")" "$(ratio "${r[$path]}" "${r[kernel]}")"
  done
  unset r runs
done
echo "target: dpm gateway >= 0.9 x bare TUN forwarder at MTU 1500"
