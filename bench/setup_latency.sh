#!/usr/bin/env bash
# The live DPM setup exchange: PCP PEER requests from a client namespace to a
# real `dpmd gateway` over its inside TUN link, against a bare round trip over the very same
# path in the same run, and a kernel UDP echo (no lwIP) as an extra reference:
#
#   C (client, 10.77.3.2/16 on gwin) ──TUN gwin── dpmd gateway (lwIP 10.77.0.1; DPM server
#        │                                          on UDP 1080, ICMP echo; process in G)
#        ╞══veth══ E (10.77.9.2/24): pcp_client echo-server (kernel UDP echo)
#   gwout (the outside TUN) sits unused in namespace O.
#
#   natpmp    NAT-PMP public address requests to 10.77.0.1:5351 (RFC 6886; 2-byte request,
#             12-byte reply): the bare UDP round trip through the TUN, the gateway's link pump,
#             the NAT engine's "to gateway" verdict, lwIP's UDP and the DPM server's dispatch —
#             everything a PEER exchange crosses but the PCP codec and the NAT table. The
#             ratios "xN" divide by it.
#   udp-closed  an 84-byte UDP datagram (a PEER request's size) to port 9 of 10.77.0.1, where
#             nothing listens: lwIP answers ICMP port unreachable (read from the client's
#             error queue, which costs the client's kernel more than a datagram)
#   ping      ICMP echo to 10.77.0.1 (84 data bytes) through a raw socket, answered by lwIP;
#             the ratios "xI" divide by it
#   pcp       PEER setup / renew / release of N sessions (pcp_client pcp; replaceable ports,
#             then DPM_PORT_FIXED ones), every reply checked: SUCCESS, nonce, internal port,
#             session endpoint
#   udp-echo  the same client against a kernel UDP echo server one veth away (no TUN, no lwIP)
# each with window 1 (sequential: latency) and window W (pipelined: exchanges per second).
# Each round builds fresh namespaces and a fresh gateway and removes them afterwards; in it,
# BENCH_RUNS short runs of every kind are interleaved. The client releases what it set up, so
# each PCP run starts from an empty table. Every figure is the median over all runs.
# Run by hand as root; not in CI. Knobs: BUILD, BENCH_COUNT (sequential exchanges per run,
# 2000), BENCH_RATE_COUNT (pipelined, 20000), BENCH_WINDOW (32), BENCH_RUNS (3),
# BENCH_REPEAT (rounds, 1), BENCH_PIN (0; 1: dpmd and the echo server on CPU 1, the client
# on CPU 0), BENCH_KEEP_TMP.
source "$(dirname "$0")/lib.sh"
bench_require_root setup_latency
bench_require_binaries "$BIN/pcp_client"
bench_init setup_latency
COUNT=${BENCH_COUNT:-2000}
RATE_COUNT=${BENCH_RATE_COUNT:-20000}
WINDOW=${BENCH_WINDOW:-32}
RUNS=${BENCH_RUNS:-3}
REPEAT=${BENCH_REPEAT:-1}
RESULTS=$TMP/results
: >"$RESULTS"
# BENCH_PIN=1: dpmd (and the kernel echo server, which plays its part) on CPU 1, the client
# on CPU 0. Right on a quiet machine: unpinned, each run lands at random on the gateway's CPU
# or the other one, which moves a sequential round trip between ~8 and ~40 us. Wrong on a
# busy one (the default, 0): pinned, dpmd cannot leave a CPU that other work holds.
PIN_GW=() PIN_CLIENT=()
if [ "${BENCH_PIN:-0}" != 0 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_GW=(taskset -c 1) PIN_CLIENT=(taskset -c 0)
fi

# start_round: namespaces, the gateway (process in G, its inside TUN moved into C) and the
# kernel echo server in E. (Called in an `if`, where `set -e` does not apply: hence the
# explicit checks.)
start_round() {
  bench_netns G gw
  bench_netns C cli
  bench_netns O out
  bench_netns E echo
  # The per-host quota is raised so one client address can hold a run's N sessions.
  bench_bg "$G" "$TMP/gw.log" "${PIN_GW[@]}" "$DPMD" gateway --inside-tun gwin --outside-tun gwout --address 10.77.0.1/16 \
    --inside-network 10.77.0.0/16 --pool 203.0.113.1-203.0.113.8 --quota 1000000 --api-socket "$TMP/gw.sock"
  GW_PID=$LAST_PID
  bench_wait_log 10 "$TMP/gw.log" "gateway ready" "$GW_PID" || return 1
  # The TUN descriptors stay attached to dpmd when the devices change namespace.
  ip -n "$G" link set gwin netns "$C" || return 1
  ip -n "$G" link set gwout netns "$O" || return 1
  ip -n "$C" addr add 10.77.3.2/16 dev gwin || return 1
  ip -n "$C" link set gwin up || return 1
  bench_veth "$C" ve-c 10.77.9.1/24 "$E" ve-e 10.77.9.2/24 1500 || return 1
  bench_bg "$E" "$TMP/echo.log" "${PIN_GW[@]}" "$BIN/pcp_client" echo-server --bind 10.77.9.2 --port 7
  bench_wait_log 5 "$TMP/echo.log" "echo server ready" "$LAST_PID" || return 1
  # Warm up both paths (ARP on the veth, first packets through the gateway).
  ip netns exec "$C" "$BIN/pcp_client" ping --server 10.77.0.1 --count 100 || return 1
  ip netns exec "$C" "$BIN/pcp_client" udp-echo --server 10.77.9.2 --port 7 --count 100 || return 1
}

# client LABEL ARGS... : one pcp_client run in C; its result lines go to $RESULTS, labelled.
client() {
  local label=$1; shift
  local out
  out=$(ip netns exec "$C" timeout 300 "${PIN_CLIENT[@]}" "$BIN/pcp_client" "$@" 2>>"$TMP/client.err") || true
  if ! grep -q "^pcp_client:" <<<"$out"; then
    echo "setup_latency: pcp_client $* failed:" >&2
    cat "$TMP/client.err" >&2
    kill -0 "$GW_PID" 2>/dev/null || echo "setup_latency: dpmd gateway is gone; its log:" >&2
    tail -n 20 "$TMP/gw.log" >&2
    ip -n "$C" addr show dev gwin >&2 || true
    return 1
  fi
  sed "s/^pcp_client:/label=$label/" <<<"$out" >>"$RESULTS"
}

for round in $(seq 1 "$REPEAT"); do
  if ! start_round >>"$TMP/setup.log" 2>&1; then
    cat "$TMP/setup.log" >&2
    exit 1
  fi
  # Runs are short and interleaved (every kind, then every kind again), so that a burst of
  # other load hits the PCP exchange and its baselines alike.
  for run in $(seq 1 "$RUNS"); do
    for w in 1 "$WINDOW"; do
      n=$([ "$w" = 1 ] && echo "$COUNT" || echo "$RATE_COUNT")
      # A destination address of its own per PCP run (--base), so no run meets another's sessions.
      base=$(( (round * RUNS * 4 + run * 4 + (w > 1 ? 2 : 0)) % 248 ))
      client natpmp natpmp --server 10.77.0.1 --port 5351 --count "$n" --window "$w"
      client replaceable pcp --server 10.77.0.1 --port 1080 --count "$n" --window "$w" --base "$base" \
        --phases setup,renew,release
      client closed udp-closed --server 10.77.0.1 --port 9 --count "$n" --window "$w"
      client ping ping --server 10.77.0.1 --count "$n" --window "$w"
      client fixed pcp --server 10.77.0.1 --port 1080 --count "$n" --window "$w" --fixed --base $((base + 1)) \
        --phases setup,renew,release
      client kernel udp-echo --server 10.77.9.2 --port 7 --count "$n" --window "$w"
    done
  done
  # The gateway must have answered every request SUCCESS and hold nothing after the releases.
  ip netns exec "$C" "$DPMD" status --api-socket "$TMP/gw.sock" >"$TMP/status-round$round.txt" 2>&1 || true
  grep -E "^pcp results|^sessions" "$TMP/status-round$round.txt" | sed "s/^/round $round: gateway /" >&2 || true
  bench_teardown
done

/usr/bin/python3 - "$RESULTS" "$((REPEAT * RUNS))" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    rows.setdefault((int(f["window"]), f["label"], f["phase"]), []).append(f)
def med(runs, k):
    return statistics.median(float(r[k]) for r in runs)
names = {
    ("natpmp", "public-address"): "NAT-PMP public address",
    ("closed", "unreachable"): "UDP to gateway, closed port",
    ("ping", "echo"): "ICMP echo to gateway",
    ("replaceable", "setup"): "PCP setup, replaceable",
    ("replaceable", "renew"): "PCP renew, replaceable",
    ("replaceable", "release"): "PCP release, replaceable",
    ("fixed", "setup"): "PCP setup, fixed port",
    ("fixed", "renew"): "PCP renew, fixed port",
    ("fixed", "release"): "PCP release, fixed port",
    ("kernel", "echo"): "UDP echo, kernel (veth)",
}
def ratio(a, b):
    return "%.2f" % (a / b) if b else "-"
print("\n%-28s %6s %6s %8s %8s %9s %8s %7s %7s %7s %7s %7s %s" % ("exchange", "window", "count", "p50 us", "p99 us",
      "p99.9 us", "exch/s", "p50 xN", "p50 xI", "rate xN", "rate xI", "cli cpu", "ok/bad/lost"))
problems = 0
summary = {}
for w in sorted({k[0] for k in rows}):
    udp, icmp = rows.get((w, "natpmp", "public-address")), rows.get((w, "ping", "echo"))
    for label, phase in names:
        runs = rows.get((w, label, phase))
        if not runs:
            continue
        p50, p99, p999, rate = (med(runs, k) for k in ("p50_us", "p99_us", "p999_us", "rate"))
        ok, bad, lost = (sum(int(r[k]) for r in runs) for k in ("ok", "bad", "lost"))
        problems += bad + lost
        cols = [ratio(p50, med(udp, "p50_us")) if udp else "-", ratio(p50, med(icmp, "p50_us")) if icmp else "-",
                ratio(rate, med(udp, "rate")) if udp else "-", ratio(rate, med(icmp, "rate")) if icmp else "-"]
        summary[(w, label, phase)] = (p50, rate, cols)
        print("%-28s %6d %6d %8.1f %8.1f %9.1f %8.0f %7s %7s %7s %7s %7.2f %d/%d/%d" % ((names[(label, phase)], w,
              int(runs[0]["count"]), p50, p99, p999, rate) + tuple(cols) + (med(runs, "client_cpu"), ok, bad, lost)))
print("(median of %s runs; xN / xI: divided by the bare round trip to the gateway in the same round with the same"
      " window, NAT-PMP public address / ICMP echo; latency = send() to the reply's recv(), queueing included when"
      " window > 1; cli cpu: the client's CPU time / wall time, near 1 = the client sets the rate)" % sys.argv[2])
seq = summary.get((1, "replaceable", "setup"))
if seq:
    print("setup exchange p50 %.1f us = %s x the bare UDP round trip (NAT-PMP) p50, %s x the ICMP echo p50"
          % (seq[0], seq[2][0], seq[2][1]))
for k in sorted(summary):
    if k[0] > 1 and k[1] == "replaceable" and k[2] == "setup":
        p = summary[k]
        print("pipelined (window %d) setup exchanges/s: %.0f = %s x the NAT-PMP round-trip rate, %s x the ICMP echo rate"
              % (k[0], p[1], p[2][2], p[2][3]))
if problems:
    print("WARNING: %d replies were wrong or lost" % problems)
    sys.exit(1)
PY
