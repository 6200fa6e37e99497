#!/usr/bin/env bash
# Virtual port multiplexing (docs/vpm.md) against the same port without it, in the same run
# (bench/README.md §9). Run as root:
#
#   sudo bench/vpm.sh
#
# The path: a kernel sender or client in S (198.51.100.10) ══ veth ══ H, where `dpmd client`
# runs on TUN dpm0 (stack 10.77.1.2) and the receiving program runs under dpm-run. Each case
# starts its own instance; the cases alternate, BENCH_REPEAT times, and the table shows medians.
#   tput   one TCP stream (tcp_blast in S → kernel_sink under dpm-run, BENCH_SECONDS), Gbit/s at
#          the receiver: `plain` (no --vpm-config) against `vpm` (port 5201 multiplexed: the
#          receiver's AID has the port's default, every segment is translated both ways)
#   conn   new TCP connections per second (connect_rate in S, BENCH_CONNECTIONS of them, each a
#          handshake and a close, to connect_rate --listen under dpm-run --aid bench): `plain`,
#          and port 7000 multiplexed with 10, 10^3 and 10^4 source rules spread over the prefix
#          lengths /8 to /32, none of which holds S but one /32 that sends S to AID bench (every
#          connection is dispatched by the longest-prefix match)
#   dispatch  vpm_dispatch_bench: the Dispatcher alone, ns per new flow at 10, 10^3, 10^4 rules
#   coop   cooperative mode (docs/vpm.md "Cooperative mode"): two instances on a virtual link,
#          A (10.77.9.1) and B (10.77.9.2); connect_rate under dpm-run on A connects
#          BENCH_CONNECTIONS times to connect_rate --listen under dpm-run --aid bench on B:
#          `direct` (no VPM on either) against `cooperative` (B multiplexes tcp/7000, A
#          negotiates the hidden port before each connect): conn/s and connect() p50/p99
# Targets: vpm tput >= 0.95 x plain; conn rate at 10^4 rules within 1.2 x of 10 rules (rate(10)
# / rate(10^4) <= 1.2). A bench reports: it exits 0 when a target is missed and prints MISSED.
#
# Environment: BUILD, BENCH_SECONDS (5), BENCH_REPEAT (3), BENCH_CONNECTIONS (3000),
# BENCH_PARTS ("tput conn dispatch coop"). Network safety: bench/lib.sh's namespaces only.
source "$(dirname "$0")/lib.sh"

SECS=${BENCH_SECONDS:-5}
REPEAT=${BENCH_REPEAT:-3}
CONNS=${BENCH_CONNECTIONS:-3000}
PARTS=${BENCH_PARTS:-"tput conn dispatch coop"}
DPMRUN=$BUILD/dpm-run
PY=/usr/bin/python3

bench_require_root vpm.sh
bench_require_binaries "$DPMRUN" "$BUILD/libdpm-preload.so" "$BIN/tcp_blast" "$BIN/kernel_sink" "$BIN/connect_rate" \
  "$BIN/vpm_dispatch_bench"
bench_init vpm
RUN=0

# config FILE PORT RULES : a configurator file multiplexing tcp/PORT: default AID "bench",
# RULES source rules (none holds 198.51.100.10, but the last, a /32 of it to AID bench).
config() {
  "$PY" - "$1" "$2" "$3" <<'PY'
import ipaddress, json, random, sys
path, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(42)
key = "tcp/%d" % port
apps = []
s = int(ipaddress.IPv4Address("198.51.100.10"))
for i in range(max(0, n - 1)):
    length = 8 + i % 25
    while True:
        prefix = rng.getrandbits(32) & ((0xffffffff << (32 - length)) & 0xffffffff)
        if (s & ((0xffffffff << (32 - length)) & 0xffffffff)) != prefix:
            break
    apps.append({"aid": "a%d" % (i % 64), "ports": [key], "sources": ["%s/%d" % (ipaddress.IPv4Address(prefix), length)]})
if n > 0:
    apps.append({"aid": "bench", "ports": [key], "sources": ["198.51.100.10/32"]})
json.dump({"hidden_ports": "40000-40999", "ports": {key: {"default": "bench"}}, "applications": apps}, open(path, "w"))
PY
}

# instance CASE PORT RULES : a fresh S ══ H with `dpmd client` in H; CASE vpm: multiplexing
# tcp/PORT with RULES rules. Sets API.
instance() {
  RUN=$((RUN + 1))
  bench_outer "$RUN" 1500 10.77.1.0/24
  local extra=()
  if [ "$1" != plain ]; then
    config "$TMP/vpm-$RUN.json" "$2" "$3"
    extra=(--vpm-config "$TMP/vpm-$RUN.json")
  fi
  bench_dpmd "$RUN" 1500 "${extra[@]}"
}

# tput_run CASE : sets GBPS (0 on failure).
tput_run() {
  instance "$1" 5201 0
  local slog=$TMP/sink-$RUN.log blog=$TMP/blast-$RUN.log
  GBPS=0
  bench_bg "$H" "$slog" "$DPMRUN" --api-socket "$API" --aid bench -- "$BIN/kernel_sink" --port 5201 --timeout $((SECS + 60))
  local sink=$LAST_PID
  if bench_wait_log 10 "$slog" listening "$sink" &&
    ip netns exec "$S" timeout $((SECS + 30)) "$BIN/tcp_blast" 10.77.1.2 5201 --seconds "$SECS" >"$blog" 2>&1 &&
    bench_wait_pid 30 "$sink"; then
    local sent received
    sent=$(bench_field "$blog" bytes)
    received=$(bench_field "$slog" bytes)
    [ -n "$sent" ] && [ "$sent" = "$received" ] && GBPS=$(bench_field "$slog" gbps)
  fi
  bench_teardown
}

# conn_run CASE RULES : sets CPS (0 on failure).
conn_run() {
  instance "$1" 7000 "$2"
  local llog=$TMP/listen-$RUN.log clog=$TMP/connect-$RUN.log
  CPS=0
  bench_bg "$H" "$llog" "$DPMRUN" --api-socket "$API" --aid bench -- "$BIN/connect_rate" --listen 7000 \
    --timeout $((CONNS / 100 + 120))
  if bench_wait_log 10 "$llog" listening "$LAST_PID" &&
    ip netns exec "$S" "$BIN/connect_rate" 10.77.1.2 7000 --count "$CONNS" --timeout $((CONNS / 100 + 60)) >"$clog" 2>&1; then
    CPS=$(bench_field "$clog" per_second)
  fi
  bench_teardown
}

# coop_run CASE : CASE direct or cooperative; sets CPS, P50, P99 (0 on failure).
coop_run() {
  RUN=$((RUN + 1))
  local v b=() a=()
  bench_netns v "$RUN-v"
  if [ "$1" = cooperative ]; then
    echo '{"hidden_ports": "40000-40999", "ports": {"tcp/7000": {"default": "refuse"}},
      "cooperative": {"accept": ["10.77.9.0/24"]}}' >"$TMP/b-$RUN.json"
    echo '{"cooperative": {"peers": [{"destinations": ["10.77.9.2/32"], "ports": ["tcp/7000"]}]}}' >"$TMP/a-$RUN.json"
    b=(--vpm-config "$TMP/b-$RUN.json")
    a=(--vpm-config "$TMP/a-$RUN.json")
  fi
  CPS=0 P50=0 P99=0
  local llog=$TMP/listen-$RUN.log clog=$TMP/connect-$RUN.log
  bench_bg "$v" "$TMP/b-$RUN.log" "$DPMD" client --api-socket "$TMP/b-$RUN.sock" --address 10.77.9.2/24 \
    --gateway '' --virtual "$TMP/b-$RUN.link,$TMP/a-$RUN.link" "${b[@]}"
  bench_wait_log 10 "$TMP/b-$RUN.log" "dpmd: ready" "$LAST_PID" || { bench_teardown; return; }
  bench_bg "$v" "$TMP/a-$RUN.log" "$DPMD" client --api-socket "$TMP/a-$RUN.sock" --address 10.77.9.1/24 \
    --gateway '' --virtual "$TMP/a-$RUN.link,$TMP/b-$RUN.link" "${a[@]}"
  bench_wait_log 10 "$TMP/a-$RUN.log" "dpmd: ready" "$LAST_PID" || { bench_teardown; return; }
  bench_bg "$v" "$llog" "$DPMRUN" --api-socket "$TMP/b-$RUN.sock" --aid bench -- "$BIN/connect_rate" --listen 7000 \
    --timeout $((CONNS / 100 + 120))
  if bench_wait_log 10 "$llog" listening "$LAST_PID" &&
    ip netns exec "$v" "$DPMRUN" --api-socket "$TMP/a-$RUN.sock" --aid bench -- "$BIN/connect_rate" 10.77.9.2 7000 \
      --count "$CONNS" --timeout $((CONNS / 100 + 60)) >"$clog" 2>&1; then
    CPS=$(bench_field "$clog" per_second)
    P50=$(bench_field "$clog" p50_us)
    P99=$(bench_field "$clog" p99_us)
  fi
  bench_teardown
}

declare -A RES
for ((i = 1; i <= REPEAT; i++)); do
  if [[ " $PARTS " == *" tput "* ]]; then
    for c in plain vpm; do tput_run "$c"; RES[tput-$c]+=" $GBPS"; echo "  tput $c run $i: $GBPS Gbit/s"; done
  fi
  if [[ " $PARTS " == *" conn "* ]]; then
    conn_run plain 0; RES[conn-plain]+=" $CPS"; echo "  conn plain run $i: $CPS/s"
    for n in 10 1000 10000; do conn_run vpm "$n"; RES[conn-$n]+=" $CPS"; echo "  conn $n rules run $i: $CPS/s"; done
  fi
  if [[ " $PARTS " == *" coop "* ]]; then
    for c in direct cooperative; do
      coop_run "$c"
      RES[coop-$c]+=" $CPS"; RES[coop50-$c]+=" $P50"; RES[coop99-$c]+=" $P99"
      echo "  coop $c run $i: $CPS/s, connect p50 $P50 us, p99 $P99 us"
    done
  fi
done

echo
if [[ " $PARTS " == *" tput "* ]]; then
  plain=$(bench_median <<<"${RES[tput-plain]}")
  vpm=$(bench_median <<<"${RES[tput-vpm]}")
  printf '%-44s %8s %9s\n' "one TCP stream into the stack (kernel_sink)" "Gbit/s" "x plain"
  printf '%-44s %8s %9s\n' "port 5201 without VPM" "$plain" "1.00"
  printf '%-44s %8s %9s\n' "port 5201 multiplexed (VPM)" "$vpm" "$(bench_ratio "$vpm" "$plain")"
  r=$(bench_ratio "$vpm" "$plain")
  awk -v r="$r" 'BEGIN { exit !(r != "-" && r >= 0.95) }' && v=met || v=MISSED
  TPUT_TARGET="target VPM throughput >= 0.95 x without: $v (x = $r)"
  echo
fi
if [[ " $PARTS " == *" conn "* ]]; then
  printf '%-44s %8s %9s\n' "new connections (connect_rate, $CONNS)" "conn/s" "x plain"
  plain=$(bench_median <<<"${RES[conn-plain]}")
  printf '%-44s %8s %9s\n' "port 7000 without VPM" "$plain" "1.00"
  for n in 10 1000 10000; do
    m=$(bench_median <<<"${RES[conn-$n]}")
    printf '%-44s %8s %9s\n' "port 7000 multiplexed, $n source rules" "$m" "$(bench_ratio "$m" "$plain")"
  done
  r=$(bench_ratio "$(bench_median <<<"${RES[conn-10]}")" "$(bench_median <<<"${RES[conn-10000]}")")
  awk -v r="$r" 'BEGIN { exit !(r != "-" && r <= 1.2) }' && v=met || v=MISSED
  CONN_TARGET="target rate(10 rules) / rate(10^4 rules) <= 1.2: $v (= $r)"
  echo
fi
if [[ " $PARTS " == *" coop "* ]]; then
  printf '%-44s %8s %9s %10s %10s\n' "instance to instance (connect_rate, $CONNS)" "conn/s" "x direct" "p50 us" "p99 us"
  direct=$(bench_median <<<"${RES[coop-direct]}")
  for c in direct cooperative; do
    m=$(bench_median <<<"${RES[coop-$c]}")
    label="port 7000, no VPM"
    [ "$c" = cooperative ] && label="port 7000, hidden port negotiated first"
    printf '%-44s %8s %9s %10s %10s\n' "$label" "$m" "$(bench_ratio "$m" "$direct")" \
      "$(bench_median <<<"${RES[coop50-$c]}")" "$(bench_median <<<"${RES[coop99-$c]}")"
  done
  echo
fi
if [[ " $PARTS " == *" dispatch "* ]]; then
  echo "the Dispatcher alone (vpm_dispatch_bench, best of 5 x 10^6 lookups):"
  "$BIN/vpm_dispatch_bench" | sed 's/^/  /'
  echo
fi
[ -n "${TPUT_TARGET:-}" ] && echo "$TPUT_TARGET"
[ -n "${CONN_TARGET:-}" ] && echo "$CONN_TARGET"
exit 0
