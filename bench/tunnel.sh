#!/usr/bin/env bash
# TCP service tunneling (docs/tunnel.md) against OpenSSH port forwarding and a bare socat relay
# on the same path, in the same run; one table of the figures and their ratios
# (bench/README.md §8). Run as root:
#
#   sudo bench/tunnel.sh
#
# The path is tests/e2e/tunnel_lib.sh's network: a client in network B (namespace lanb), the
# real servers in network A (srva, 10.77.3.2: iperf3 -s :5201, a one-byte server :7001), each
# network behind its own `dpmd gateway` (NAT to 203.0.113.1 and .9), the public host wan
# (198.51.100.20) outside. Every competitor crosses both gateways with connections made from
# inside A and B only, and makes two relay hops through the public host:
#
#   tunnel  client under `dpm-run --tunnel` (lanb) → redirector (lanb) ─TLS 1.3/HTTP/2─▶
#           tunnel server (wan) ◀─TLS 1.3/HTTP/2─ service proxy (lana) → real server
#   ssh     client → 127.0.0.1:2xxxx in lanb, `ssh -L` (lanb) ─SSH─▶ sshd (wan :22) →
#           127.0.0.1:1xxxx in wan, the sshd of the `ssh -R` session ◀─SSH─ `ssh -R` (lana) →
#           real server; OpenSSH's default cipher, keys made in $TMP
#   socat   client → wan :9002/:9012 ─ a socat per connection (wan) ─ ◀── socat per
#           connection (lana) → real server; no encryption: the cost of relaying only.
#           socat itself can only join connections that exist, and a connection to the real
#           server opened in advance would be seen (and, for iperf3, read) before its client
#           exists; so bench/socat_pair.py pairs them: a broker in wan tells a dialer in lana
#           (over one control connection lana made) an id per client; the dialer connects out
#           to wan with that id and to the real server, and each side hands its two sockets to
#           a new `socat -b 131072 FD FD`. Connection set-up there includes starting two socat
#           processes (as socat's own fork-per-connection listener would, plus an exec).
#
# Measurements, each BENCH_REPEAT times (the table shows the median), paths interleaved:
#   (a) iperf3 -c through each path, 1 and 8 parallel streams (iperf3's control connection and
#       its data connections all take the path), BENCH_SECONDS each, Gbit/s at the receiver;
#       CPU per process over the middle of each run (% of one core, /proc/PID/stat), printed
#       for the last run, and the relaying processes' CPU per Gbit/s (the cost per byte)
#   (b) connect()-to-first-byte latency: BENCH_CONNECTIONS (200) sequential connections to the
#       one-byte server, p50/p99 (bench/tunnel_probe.py latency)
#   (c) resident memory per idle connection at BENCH_IDLE (1000) connections: VmRSS of the
#       redirector + tunnel server + service proxy (tunnel), of both ssh clients + every sshd
#       process (ssh), after minus before, / N; once, before (a) and (b)
# Targets: tunnel throughput >= 1.0 x ssh at 1 and at 8 streams; <= 36 KiB per idle tunneled
# connection. A bench reports: it exits 0 when a target is missed and prints MISSED.
#
# Environment: BUILD, BENCH_SECONDS (5), BENCH_REPEAT (3), BENCH_CONNECTIONS (200), BENCH_IDLE
# (1000), BENCH_PARTS ("memory latency tput"), BENCH_PATHS ("tunnel ssh socat"), BENCH_PERF_DIR
# (perf $BENCH_PERF_CMD, default "record -g", of the three tunnel roles during the middle of the
# first tunnel run of each stream count, into DIR/tunnel-P1.data and tunnel-P8.data),
# BENCH_TUNNEL_FLAGS (more flags for all three tunnel roles, e.g. "--stream-window 262144"),
# BENCH_KEEP_TMP (keep the logs). Network safety: only namespaces tunnel_lib.sh makes.
# shellcheck source=../tests/e2e/tunnel_lib.sh
source "$(dirname "$0")/../tests/e2e/tunnel_lib.sh"

SECS=${BENCH_SECONDS:-5}
REPEAT=${BENCH_REPEAT:-3}
CONNS=${BENCH_CONNECTIONS:-200}
IDLE=${BENCH_IDLE:-1000}
PARTS=${BENCH_PARTS:-"memory latency tput"}
PATHS=${BENCH_PATHS:-"tunnel ssh socat"}
TUNNEL_FLAGS=${BENCH_TUNNEL_FLAGS:-}
# shellcheck disable=SC2034  # read by e2e_cleanup
E2E_KEEP_TMP=${BENCH_KEEP_TMP:-}
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
PROBE=$BENCH_DIR/tunnel_probe.py
PAIR=$BENCH_DIR/socat_pair.py
SOCAT_BUF=131072
CLK_TCK=$(getconf CLK_TCK)

e2e_require_root tunnel.sh
e2e_require_cmd iperf3 socat ssh ssh-keygen /usr/sbin/sshd openssl
e2e_require_preload
# shellcheck disable=SC2034  # read by e2e_require_build
DPMCAT=$DPMD  # e2e_init insists on dpm-cat, which this bench does not use
e2e_init tunnel_bench
# shellcheck disable=SC2034  # read by e2e_netns
P="dpmb-$$-$RANDOM"  # the benches' namespace prefix (bench/lib.sh)
# 1,000 idle connections: every process here (and sshd, ssh, the roles) needs many descriptors.
# The soft limit goes up to the hard one; the hard one up to what is needed when it is lower.
need=$((4 * IDLE + 1024))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
  ulimit -Hn "$need" 2>/dev/null || { echo "tunnel.sh: the descriptor limit is below $need and may not be raised: lower BENCH_IDLE" >&2; exit 1; }
fi
ulimit -Sn "$(ulimit -Hn)"

# --- the network and the three paths ---------------------------------------------------------
SSH_OPTS=(-F /dev/null -i "$TMP/id" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$TMP/known_hosts"
  -o StrictHostKeyChecking=yes -o CheckHostIP=no -o GlobalKnownHostsFile=/dev/null -o ExitOnForwardFailure=yes
  -o ConnectTimeout=20 -N -v)

# listening NS ADDR:PORT : true once a TCP socket listens on ADDR:PORT in NS (no test connection:
# iperf3 -s would take one for a test).
listening() { ip netns exec "$1" ss -Hltn "sport = :${2##*:}" | grep "${2%:*}:${2##*:}" >/dev/null; }

setup() {
  tunnel_topology
  tunnel_pki
  tunnel_access
  e2e_bg "$SRVA" iperf3 -s -B 10.77.3.2 -p 5201 >"$TMP/iperf3-server.log" 2>&1
  IPERF_S_PID=$LAST_PID
  e2e_bg "$SRVA" "$PY" "$PROBE" server 10.77.3.2 7001 >"$TMP/byte-server.log" 2>&1
  e2e_wait_for 10 listening "$SRVA" 10.77.3.2:5201 || e2e_fail "iperf3 -s did not start"
  e2e_wait_for 10 grep -q ready "$TMP/byte-server.log" || e2e_fail "the one-byte server did not start"

  # shellcheck disable=SC2086  # word splitting intended
  tunnel_start_server $TUNNEL_FLAGS
  # shellcheck disable=SC2086
  tunnel_start_proxy --service iperf=10.77.3.2:5201 --service byte=10.77.3.2:7001 $TUNNEL_FLAGS
  e2e_wait_for 20 tunnel_up "$SP_CTL" || e2e_fail "the proxy's session did not come up"
  e2e_wait_for 10 tunnel_published byte.alpha.dpm.internal || e2e_fail "byte.alpha was not published"
  # shellcheck disable=SC2086
  tunnel_start_redirector bob $TUNNEL_FLAGS
  e2e_wait_for 20 tunnel_up "$RD_CTL" || e2e_fail "the redirector's session did not come up"

  e2e_sshd "$WAN" "$TUNNEL_SERVER_ADDR:22" "$TUNNEL_SERVER_ADDR"
  e2e_bg "$LANA" ssh "${SSH_OPTS[@]}" -R 127.0.0.1:15201:10.77.3.2:5201 -R 127.0.0.1:17001:10.77.3.2:7001 \
    "root@$TUNNEL_SERVER_ADDR" 2>"$TMP/ssh-R.log"
  SSH_R_PID=$LAST_PID
  e2e_wait_for 20 listening "$WAN" 127.0.0.1:17001 || { cat "$TMP/ssh-R.log" >&2; e2e_fail "ssh -R did not forward"; }
  e2e_bg "$LANB" ssh "${SSH_OPTS[@]}" -L 127.0.0.1:25201:127.0.0.1:15201 -L 127.0.0.1:27001:127.0.0.1:17001 \
    "root@$TUNNEL_SERVER_ADDR" 2>"$TMP/ssh-L.log"
  SSH_L_PID=$LAST_PID
  e2e_wait_for 20 listening "$LANB" 127.0.0.1:27001 || { cat "$TMP/ssh-L.log" >&2; e2e_fail "ssh -L did not forward"; }

  local t
  for t in "9000 9002 9001 5201" "9010 9012 9011 7001"; do
    # shellcheck disable=SC2086  # four ports
    set -- $t
    e2e_bg "$WAN" "$PY" "$PAIR" broker "$TUNNEL_SERVER_ADDR" "$1" "$2" "$3" $SOCAT_BUF >"$TMP/broker-$2.log" 2>&1
    e2e_wait_for 10 grep -q ready "$TMP/broker-$2.log" || e2e_fail "the socat broker on :$2 did not start"
    e2e_bg "$LANA" "$PY" "$PAIR" dialer "$TUNNEL_SERVER_ADDR" "$1" "$3" 10.77.3.2 "$4" $SOCAT_BUF >"$TMP/dialer-$2.log" 2>&1
    e2e_wait_for 10 grep -q ready "$TMP/dialer-$2.log" || e2e_fail "the socat dialer for :$2 did not start"
  done
  CIPHER=$(sed -n 's/.*kex: client->server cipher: \([^ ]*\).*/\1/p' "$TMP/ssh-L.log" | head -n 1)
}

# client PATH CMD... : runs a client program in lanb along PATH (the tunnel: under the hook).
client() {
  local path=$1; shift
  if [ "$path" = tunnel ]; then tunnel_run "$@"; else ip netns exec "$LANB" "$@"; fi
}
client_bg() {
  local path=$1; shift
  if [ "$path" = tunnel ]; then
    e2e_bg "$LANB" "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- "$@"
  else
    e2e_bg "$LANB" "$@"
  fi
}

# dest PATH SERVICE : "HOST PORT" a client in lanb uses for SERVICE (iperf or byte) on PATH.
dest() {
  case $1-$2 in
    tunnel-iperf) echo iperf.alpha.dpm.internal 5201 ;;
    tunnel-byte) echo byte.alpha.dpm.internal 7001 ;;
    ssh-iperf) echo 127.0.0.1 25201 ;;
    ssh-byte) echo 127.0.0.1 27001 ;;
    socat-iperf) echo "$TUNNEL_SERVER_ADDR 9002" ;;
    socat-byte) echo "$TUNNEL_SERVER_ADDR 9012" ;;
  esac
}

label() {
  case $1 in
    tunnel) echo "dpm tunnel (TLS 1.3, HTTP/2)" ;;
    ssh) echo "OpenSSH -R + -L (${CIPHER%%@*})" ;;
    socat) echo "socat relay (no encryption)" ;;
  esac
}

# --- per-process CPU -------------------------------------------------------------------------
# ticks PID : sets TICKS to utime + stime of PID in clock ticks (0 when it is gone). Builtins
# only: a snapshot of every process must take milliseconds on a loaded machine, not seconds.
ticks() {
  local line
  TICKS=0
  read -r line 2>/dev/null <"/proc/$1/stat" || return 0
  line=${line##*) }  # comm may hold spaces and parentheses
  local -a f
  read -r -a f <<<"$line"
  TICKS=$((f[11] + f[12]))
}
# ns_pids NS COMM : the pids in NS whose comm is COMM.
ns_pids() {
  local pid comm
  for pid in $(ip netns pids "$1" 2>/dev/null); do
    read -r comm 2>/dev/null <"/proc/$pid/comm" || continue
    [ "$comm" = "$2" ] && echo "$pid"
  done
  return 0
}
# groups PATH : "label pid..." lines, the processes of PATH whose CPU the table shows.
groups() {
  case $1 in
    tunnel) printf '%s\n' "redirector $RD_PID" "tunnel-server $TS_PID" "service-proxy $SP_PID" ;;
    ssh) printf '%s\n' "ssh-L $SSH_L_PID" "sshd(all) $(ns_pids "$WAN" sshd | tr '\n' ' ')" "ssh-R $SSH_R_PID" ;;
    socat) printf '%s\n' "socat-wan(all) $(ns_pids "$WAN" socat | tr '\n' ' ')" \
      "socat-A(all) $(ns_pids "$LANA" socat | tr '\n' ' ')" ;;
  esac
  printf '%s\n' "gateway-A $GWA_PID" "gateway-B $GWB_PID" "iperf3-server $IPERF_S_PID"
}
declare -A T0
snap0() {
  local pid
  T0=()
  for pid in $(ip netns pids "$WAN") $(ip netns pids "$LANA") $(ip netns pids "$LANB") $(ip netns pids "$SRVA"); do
    ticks "$pid"
    T0[$pid]=$TICKS
  done
}
# cpu_line PATH ELAPSED_S [CLIENT_PID] : sets CPU_LINE to "label=percent ..." (of one core) since
# snap0, new processes counted from 0; and RELAY_PCT to the sum over the path's own relaying
# processes (not the gateways, not iperf3).
cpu_line() {
  local path=$1 el=$2 cpid=${3:-} label pids pid sum pct
  CPU_LINE=""
  RELAY_PCT=0
  while read -r label pids; do
    sum=0
    for pid in $pids; do
      ticks "$pid"
      [ "$TICKS" = 0 ] || sum=$((sum + TICKS - ${T0[$pid]:-0}))  # 0: gone since the list was made
    done
    pct=$(awk -v t="$sum" -v h="$CLK_TCK" -v e="$el" 'BEGIN {printf "%.0f", 100 * t / h / e}')
    CPU_LINE+="$label=$pct% "
    case $label in gateway-* | iperf3-*) ;; *) RELAY_PCT=$((RELAY_PCT + pct)) ;; esac
  done < <(groups "$path"; [ -z "$cpid" ] || echo "iperf3-client $cpid")
}

# --- (a) throughput ---------------------------------------------------------------------------
declare -A TPUT RCPU CPU LAT50 LAT99 MEM MEMX
RUN=0
tput_run() {
  local path=$1 streams=$2 log json host port perf_pid=""
  RUN=$((RUN + 1))
  json=$TMP/iperf-$path-$streams-$RUN.json
  read -r host port <<<"$(dest "$path" iperf)"
  client_bg "$path" iperf3 -4 -c "$host" -p "$port" -t "$SECS" -P "$streams" --json >"$json" 2>&1
  local cpid=$LAST_PID
  # CPU is read over the middle of the run, from 1.5 s in to 1 s before its end, while every
  # process of the path is alive: socat's processes and sshd's children live only as long as
  # their connections.
  sleep 1.5
  local t0=$EPOCHREALTIME
  snap0
  if [ -n "${BENCH_PERF_DIR:-}" ] && [ "$path" = tunnel ] && [ -z "${PERFED[$streams]:-}" ]; then
    PERFED[$streams]=1
    mkdir -p "$BENCH_PERF_DIR"
    # shellcheck disable=SC2086  # BENCH_PERF_CMD: a perf subcommand with its options
    perf ${BENCH_PERF_CMD:-record -g} -o "$BENCH_PERF_DIR/tunnel-P$streams.data" -p "$RD_PID,$TS_PID,$SP_PID" -- \
      sleep "$(awk -v s="$SECS" 'BEGIN {print s - 2.5}')" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  sleep "$(awk -v s="$SECS" 'BEGIN {print s - 2.5}')"
  local el
  el=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}')
  cpu_line "$path" "$el" "$cpid"
  CPU[$path $streams]=$CPU_LINE
  local deadline=$((SECONDS + SECS + 30))
  while kill -0 "$cpid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill "$cpid" 2>/dev/null || true
  wait "$cpid" 2>/dev/null || true
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  local g
  g=$("$PY" -c 'import json,sys
try:
    r = json.load(open(sys.argv[1]))["end"]["sum_received"]
    print("%.3f" % (r["bits_per_second"] / 1e9) if r["bytes"] > 0 else "")
except Exception:
    print("")' "$json")
  if [ -z "$g" ]; then
    echo "  $path -P $streams run $RUN: iperf3 failed: $(tail -n 3 "$json" | tr '\n' ' ')" >&2
  else
    TPUT[$path $streams]+="$g "
    # The relay's CPU per unit of throughput: steadier than Gbit/s when other load shares the CPUs.
    RCPU[$path $streams]+="$(awk -v c="$RELAY_PCT" -v g="$g" 'BEGIN {printf "%.2f", c / 100 / g}') "
    echo "  $path -P $streams: $g Gbit/s   CPU ${CPU[$path $streams]}"
  fi
}
declare -A PERFED

# --- (b) latency ------------------------------------------------------------------------------
lat_run() {
  local path=$1 host port out
  read -r host port <<<"$(dest "$path" byte)"
  if ! out=$(client "$path" timeout 120 "$PY" "$PROBE" latency "$host" "$port" "$CONNS" 2>&1); then
    echo "  $path latency failed: $(tail -n 2 <<<"$out" | tr '\n' ' ')" >&2
    return 0
  fi
  echo "  $path: $out"
  LAT50[$path]+="$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<<"$out") "
  LAT99[$path]+="$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$out") "
}

# --- (c) idle memory --------------------------------------------------------------------------
# rss_pids PATH : "label pid" lines, PATH's relaying processes whose memory (c) sums.
rss_pids() {
  local pid
  case $1 in
    tunnel) printf '%s\n' "redirector $RD_PID" "tunnel-server $TS_PID" "service-proxy $SP_PID" ;;
    ssh)
      printf '%s\n' "ssh-L $SSH_L_PID" "ssh-R $SSH_R_PID"
      for pid in $(ns_pids "$WAN" sshd); do echo "sshd $pid"; done ;;
  esac
}
# rss_snap PATH VAR : VAR[pid] = VmRSS (KiB) of each of PATH's processes.
rss_snap() {
  local -n into=$2
  local label pid
  # shellcheck disable=SC2034  # a nameref: the caller's array
  while read -r label pid; do into[$pid]=$(vmrss_kb "$pid"); done < <(rss_pids "$1")
}
mem_run() {
  local path=$1 host port before=0 after=0 log=$TMP/idle-$1.log label pid detail=""
  local -A r0=() r1=()
  read -r host port <<<"$(dest "$path" byte)"
  sleep 1
  rss_snap "$path" r0
  client_bg "$path" "$PY" "$PROBE" idle "$host" "$port" "$IDLE" >"$log" 2>&1
  local cpid=$LAST_PID
  if ! e2e_wait_for 120 grep -q "ready=$IDLE" "$log"; then
    echo "  $path: $IDLE idle connections failed: $(tail -n 2 "$log" | tr '\n' ' ')" >&2
    e2e_stop "$cpid"
    return 0
  fi
  sleep 2
  rss_snap "$path" r1
  while read -r label pid; do
    before=$((before + ${r0[$pid]:-0}))
    after=$((after + ${r1[$pid]:-0}))
    detail+="$label +$(( ${r1[$pid]:-0} - ${r0[$pid]:-0} )) "
  done < <(rss_pids "$path")
  [ "$path" != tunnel ] || detail+="(streams at the server: $(e2e_json "$TS_CTL" 's["streams"]'))"
  e2e_stop "$cpid"
  MEM[$path]=$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {printf "%.1f", (a - b) / n}')
  MEMX[$path]="$before $after"
  echo "  $path: VmRSS $before -> $after KiB with $IDLE idle connections: ${MEM[$path]} KiB/conn; growth (KiB): $detail"
  # Let every relay close its side before the next path's measurement.
  sleep 2
}

# --- the run ----------------------------------------------------------------------------------
has() { [[ " $1 " == *" $2 "* ]]; }
echo "setting up the network, the tunnel roles, sshd and ssh -R/-L, the socat brokers ..."
setup
echo "OpenSSH cipher: ${CIPHER:-unknown}; iperf3 $(iperf3 --version | head -n 1 | cut -d' ' -f2)"

if has "$PARTS" memory; then
  echo "--- (c) resident memory at $IDLE idle connections ---"
  for path in $PATHS; do [ "$path" = socat ] || mem_run "$path"; done
fi
if has "$PARTS" latency; then
  echo "--- (b) connect() to first byte, $CONNS sequential connections ---"
  for _ in $(seq "$REPEAT"); do for path in $PATHS; do lat_run "$path"; done; done
fi
if has "$PARTS" tput; then
  echo "--- (a) iperf3 throughput, ${SECS}s per run ---"
  for streams in 1 8; do
    for _ in $(seq "$REPEAT"); do for path in $PATHS; do tput_run "$path" "$streams"; done; done
  done
fi

# --- the table --------------------------------------------------------------------------------
med() { bench_median_ <<<"$1"; }
bench_median_() {
  tr ' ' '\n' | awk 'NF' | sort -g |
    awk '{v[NR]=$1} END {if (NR==0) print ""; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
ratio() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (a != "" && b != "" && b > 0) printf f, a / b; else print "-" }'; }
or_dash() { if [ -n "$1" ]; then echo "$1"; else echo -; fi; }

echo
declare -A M TM
if has "$PARTS" tput; then
  printf '%-40s %7s %8s %7s %8s %12s\n' "throughput (iperf3)" streams Gbit/s "x ssh" "x socat" "cores/Gbit/s"
  for streams in 1 8; do
    for path in $PATHS; do M[$path]=$(med "${TPUT[$path $streams]:-}"); done
    for path in $PATHS; do
      printf '%-40s %7s %8s %7s %8s %12s\n' "$(label "$path")" "$streams" "$(or_dash "${M[$path]}")" \
        "$(ratio "${M[$path]}" "${M[ssh]:-}")" "$(ratio "${M[$path]}" "${M[socat]:-}")" \
        "$(or_dash "$(med "${RCPU[$path $streams]:-}")")"
    done
    TM[$streams]="${M[tunnel]:-} ${M[ssh]:-}"
  done
  echo
  echo "CPU during the last run (% of one core):"
  for streams in 1 8; do
    for path in $PATHS; do printf '  %-6s -P %s  %s\n' "$path" "$streams" "${CPU[$path $streams]:-}"; done
  done
  echo
fi
if has "$PARTS" latency; then
  printf '%-40s %9s %9s %11s\n' "connect() to first byte ($CONNS)" "p50 us" "p99 us" "p50 x ssh"
  for path in $PATHS; do M[$path]=$(med "${LAT50[$path]:-}"); done
  for path in $PATHS; do
    l=$(label "$path")
    [ "$path" != socat ] || l="socat relay (2 socat starts/conn)"
    printf '%-40s %9s %9s %11s\n' "$l" "$(or_dash "${M[$path]}")" \
      "$(or_dash "$(med "${LAT99[$path]:-}")")" "$(ratio "${M[$path]}" "${M[ssh]:-}")"
  done
  echo
fi
if has "$PARTS" memory; then
  printf '%-40s %11s %11s %9s\n' "idle connections ($IDLE)" "RSS before" "RSS after" "KiB/conn"
  for path in $PATHS; do
    [ "$path" != socat ] || continue
    read -r b a <<<"${MEMX[$path]:-- -}"
    printf '%-40s %11s %11s %9s\n' "$(label "$path")" "$b" "$a" "$(or_dash "${MEM[$path]:-}")"
  done
  echo
fi

# target WHAT OK FIGURE : "target WHAT: met (FIGURE)" or MISSED.
target() { if [ "$2" = 1 ]; then echo "target $1: met ($3)"; else echo "target $1: MISSED ($3)"; fi; }
if has "$PARTS" tput && has "$PATHS" tunnel && has "$PATHS" ssh; then
  for streams in 1 8; do
    read -r t s <<<"${TM[$streams]:-}"
    x=$(ratio "${t:-}" "${s:-}")
    target "tunnel >= 1.0 x ssh -L, $streams stream(s)" "$(awk -v x="$x" 'BEGIN {print (x != "-" && x >= 1.0) ? 1 : 0}')" "x ssh = $x"
  done
fi
if has "$PARTS" memory && has "$PATHS" tunnel; then
  m=${MEM[tunnel]:-}
  target "<= 36 KiB per idle tunneled connection" "$(awk -v m="$m" 'BEGIN {print (m != "" && m <= 36) ? 1 : 0}')" "$(or_dash "$m") KiB"
fi
exit 0
