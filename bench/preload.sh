#!/usr/bin/env bash
# Unmodified programs on dpm through the preload hook (`dpm-run`), against the same work done
# by libdpm programs and by the kernel, in the same run; tables of the figures and their ratios
# (bench/README.md §7). Run as root:
#
#   sudo bench/preload.sh
#
# Parts (BENCH_PARTS, default "tput nginx connect"):
#   tput     one TCP stream into the stack and one out of it, at each MTU: a kernel-socket
#            program under dpm-run (kernel_sink / tcp_blast, and iperf3) against the same
#            program built on libdpm (dpm_sink / dpm_blast) and against the kernel
#   nginx    nginx under dpm-run listening in the stack, and the same nginx on the kernel,
#            under wrk: keep-alive and a connection per request (Connection: close)
#   connect  connections set up and closed per second: connect_rate under dpm-run, its libdpm
#            build (connect_rate_dpm) and plainly on the kernel
#
# Environment: BUILD (build dir, default ./build), BENCH_SECONDS (per measurement, 5),
# BENCH_MTUS (tput, "1500 9000"; nginx and connect run at the first), BENCH_REPEAT (runs per
# cell, the median is shown; 1), BENCH_PARTS, BENCH_CONNECTIONS (connect: per run, 5000),
# BENCH_WRK_CONNECTIONS (16), BENCH_NGINX_WORKERS (1), BENCH_CASES (an extended regex: only the
# runs whose "part case" matches, e.g. 'kernel|native'), BENCH_KEEP_TMP (keep the logs).
source "$(dirname "$0")/lib.sh"

SECS=${BENCH_SECONDS:-5}
MTUS=${BENCH_MTUS:-"1500 9000"}
REPEAT=${BENCH_REPEAT:-1}
PARTS=${BENCH_PARTS:-"tput nginx connect"}
CONNS=${BENCH_CONNECTIONS:-5000}
WRK_CONNS=${BENCH_WRK_CONNECTIONS:-16}
WORKERS=${BENCH_NGINX_WORKERS:-1}
CASES=${BENCH_CASES:-.}
MTU0=${MTUS%% *}
DPMRUN=$BUILD/dpm-run
PORT=5201
PY=/usr/bin/python3

bench_require_root preload.sh
bench_require_binaries "$DPMRUN" "$BUILD/libdpm-preload.so" "$BIN/tcp_blast" "$BIN/dpm_blast" "$BIN/kernel_sink" \
  "$BIN/dpm_sink" "$BIN/connect_rate" "$BIN/connect_rate_dpm"
for c in iperf3 nginx wrk; do
  command -v "$c" >/dev/null || { echo "preload.sh needs $c (scripts/setup.sh installs it)" >&2; exit 1; }
done
bench_init preload

RUN=0
FAILED=0
declare -A RESULT  # "part case mtu" → the runs' figures
declare -A EXTRA   # "part case mtu" → the last run's side figures (latency, errors)
declare -A CHECK   # "part case mtu" → why a run failed

# --- tput -------------------------------------------------------------------------------------
# stream SINK_NS SEND_NS : SINK=(...) receives in SINK_NS, BLAST=(...) sends from SEND_NS for
# SECS; sets GBPS (the receiver's goodput) and OK (ok when both counted the same bytes).
stream() {
  local sink_ns=$1 send_ns=$2 slog=$TMP/sink-$RUN.log blog=$TMP/blast-$RUN.log
  GBPS=0
  OK="receiver did not start"
  bench_bg "$sink_ns" "$slog" "${SINK[@]}" --port $PORT --timeout $((SECS + 60))
  local sink_pid=$LAST_PID
  bench_wait_log 10 "$slog" listening "$sink_pid" || return 0
  if ! ip netns exec "$send_ns" timeout $((SECS + 30)) "${BLAST[@]}" $PORT --seconds "$SECS" >"$blog" 2>&1; then
    OK="sender failed: $(tail -n 1 "$blog")"
    return 0
  fi
  if ! bench_wait_pid 30 "$sink_pid"; then
    OK="receiver failed: $(tail -n 1 "$slog")"
    return 0
  fi
  local sent received
  sent=$(bench_field "$blog" bytes)
  received=$(bench_field "$slog" bytes)
  GBPS=$(bench_field "$slog" gbps)
  OK="sent ${sent:-?} received ${received:-?}"
  [ -n "$sent" ] && [ "$sent" = "$received" ] && [ "$sent" -gt 0 ] && OK=ok
  return 0
}

# iperf SERVER_NS CLIENT_NS DEST : IPERF_S=(...) serves in SERVER_NS (one test), IPERF_C=(...)
# runs against DEST for SECS; sets GBPS (the receiver's rate, from the client's JSON) and OK.
iperf() {
  local server_ns=$1 client_ns=$2 dest=$3 slog=$TMP/iperf-s-$RUN.log clog=$TMP/iperf-c-$RUN.json
  GBPS=0
  OK="iperf3 server did not start"
  bench_bg "$server_ns" "$slog" "${IPERF_S[@]}" -4 -s -1 -p $PORT --forceflush
  local server_pid=$LAST_PID
  bench_wait_log 10 "$slog" "Server listening" "$server_pid" || return 0
  ip netns exec "$client_ns" timeout $((SECS + 30)) "${IPERF_C[@]}" -4 -c "$dest" -p $PORT -t "$SECS" --json \
    >"$clog" 2>&1 || true
  bench_wait_pid 20 "$server_pid" || true
  read -r GBPS OK < <("$PY" -c 'import json,sys
try:
    j = json.load(open(sys.argv[1])); r = j["end"]["sum_received"]
    print("%.3f" % (r["bits_per_second"] / 1e9), "ok" if r["bytes"] > 0 else "no-bytes")
except Exception as e:
    print(0, "iperf3-failed")' "$clog")
}

# tput_run CASE MTU : one stream. CASE is DIR_[iperf3_]PATH: DIR rx (into the stack: the kernel
# sender in S, the receiver in H or R) or tx (out of it: the sender in H or R, the kernel receiver
# in S); PATH native (the libdpm build, H), hook (the kernel-socket program under dpm-run, H) or
# kernel (the same program in R, behind H over veth).
tput_run() {
  local c=$1 mtu=$2 inner dest wrap=()
  if [[ $c == *kernel ]]; then
    bench_outer "$RUN" "$mtu" 10.77.2.0/24
    bench_inner_kernel "$RUN" "$mtu"
    inner=$R
    dest=10.77.2.2
  else
    bench_outer "$RUN" "$mtu" 10.77.1.0/24
    bench_dpmd "$RUN" "$mtu"
    inner=$H
    dest=10.77.1.2
    [[ $c == *hook ]] && wrap=("$DPMRUN" --api-socket "$API" --)
  fi
  local sink=("${wrap[@]}" "$BIN/kernel_sink") blast=("${wrap[@]}" "$BIN/tcp_blast")
  if [[ $c == *native ]]; then
    sink=("$BIN/dpm_sink" --api-socket "$API")
    blast=(env DPM_SOCKET="$API" "$BIN/dpm_blast")
  fi
  case $c in
    rx_iperf3_*) IPERF_S=("${wrap[@]}" iperf3); IPERF_C=(iperf3); iperf "$inner" "$S" "$dest" ;;
    tx_iperf3_*) IPERF_S=(iperf3); IPERF_C=("${wrap[@]}" iperf3); iperf "$S" "$inner" 198.51.100.10 ;;
    rx_*) SINK=("${sink[@]}"); BLAST=("$BIN/tcp_blast" "$dest"); stream "$inner" "$S" ;;
    tx_*) SINK=("$BIN/kernel_sink" --address 198.51.100.10); BLAST=("${blast[@]}" 198.51.100.10); stream "$S" "$inner" ;;
  esac
}

# --- nginx ------------------------------------------------------------------------------------
mkdir -p "$TMP/www"
head -c 1024 /dev/urandom >"$TMP/www/1k"
chmod 755 "$TMP" "$TMP/www"
chmod 644 "$TMP/www/1k"

# nginx_conf RUN : the one nginx configuration both paths run (workers as www-data).
nginx_conf() {
  local dir=$TMP/nginx-$1
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes $WORKERS;
user www-data www-data;
worker_rlimit_nofile 8192;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { use epoll; worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir;
  proxy_temp_path $dir;
  fastcgi_temp_path $dir;
  uwsgi_temp_path $dir;
  scgi_temp_path $dir;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 10000000;
  server { listen 8080; root $TMP/www; }
}
CONF
  NGINX_CONF=$dir/nginx.conf
}

# wrk_run DEST MODE : wrk in S against nginx at DEST:8080 (MODE close: Connection: close);
# sets RPS, OK and NOTE (wrk's error lines).
wrk_run() {
  local dest=$1 mode=$2 log=$TMP/wrk-$RUN.log
  local header=()
  [ "$mode" = close ] && header=(-H "Connection: close")
  RPS=0
  OK="nginx did not start"
  local _
  for _ in $(seq 200); do
    ip netns exec "$S" bash -c "exec 3<>/dev/tcp/$dest/8080" 2>/dev/null && break
    sleep 0.05
  done
  ip netns exec "$S" timeout $((SECS + 30)) wrk -d "${SECS}s" -c "$WRK_CONNS" -t 2 "${header[@]}" \
    "http://$dest:8080/1k" >"$log" 2>&1 || true
  RPS=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$log")
  RPS=${RPS:-0}
  NOTE=$(grep -E 'Socket errors|Non-2xx' "$log" | sed 's/^ *//' | xargs || true)
  OK=ok
  awk -v r="$RPS" 'BEGIN { exit !(r > 0) }' || OK="no requests: $(tail -n 1 "$log")"
}
nginx_dpm() {
  bench_outer "$RUN" "$MTU0" 10.77.1.0/24
  bench_dpmd "$RUN" "$MTU0" --api-group www-data  # the workers run as www-data
  nginx_conf "$RUN"
  bench_bg "$H" "$TMP/nginx-$RUN.log" "$DPMRUN" --api-socket "$API" -- nginx -c "$NGINX_CONF"
  wrk_run 10.77.1.2 "$1"
}
nginx_kernel() {
  bench_outer "$RUN" "$MTU0" 10.77.2.0/24
  bench_inner_kernel "$RUN" "$MTU0"
  nginx_conf "$RUN"
  bench_bg "$R" "$TMP/nginx-$RUN.log" nginx -c "$NGINX_CONF"
  wrk_run 10.77.2.2 "$1"
}

# --- connect ----------------------------------------------------------------------------------
# rate CLIENT_NS : the listener in S, CLIENT=(...) connecting from CLIENT_NS; sets CPS, NOTE, OK.
rate() {
  local client_ns=$1 llog=$TMP/listen-$RUN.log clog=$TMP/connect-$RUN.log
  CPS=0
  NOTE=""
  OK="listener did not start"
  bench_bg "$S" "$llog" "$BIN/connect_rate" --listen 7000 --address 198.51.100.10 --timeout $((CONNS / 100 + 120))
  bench_wait_log 10 "$llog" listening "$LAST_PID" || return 0
  if ! ip netns exec "$client_ns" "${CLIENT[@]}" 198.51.100.10 7000 --count "$CONNS" --timeout $((CONNS / 100 + 60)) \
    >"$clog" 2>&1; then
    OK="client failed: $(tail -n 1 "$clog")"
    return 0
  fi
  CPS=$(bench_field "$clog" per_second)
  NOTE="p50 $(bench_field "$clog" p50_us) us, p99 $(bench_field "$clog" p99_us) us"
  OK=ok
}
connect_native() {
  bench_outer "$RUN" "$MTU0" 10.77.1.0/24
  bench_dpmd "$RUN" "$MTU0"
  CLIENT=(env DPM_SOCKET="$API" "$BIN/connect_rate_dpm")
  rate "$H"
}
connect_hook() {
  bench_outer "$RUN" "$MTU0" 10.77.1.0/24
  bench_dpmd "$RUN" "$MTU0"
  CLIENT=("$DPMRUN" --api-socket "$API" -- "$BIN/connect_rate")
  rate "$H"
}
connect_kernel() {
  bench_outer "$RUN" "$MTU0" 10.77.2.0/24
  bench_inner_kernel "$RUN" "$MTU0"
  CLIENT=("$BIN/connect_rate")
  rate "$R"
}

# wanted PART CASE : whether BENCH_CASES selects the run.
wanted() { grep -Eq -- "$CASES" <<<"$1 $2"; }

# record PART CASE MTU FIGURE [NOTE] : one run's result.
record() {
  local key="$1 $2 $3"
  RESULT[$key]="${RESULT[$key]:-} $4"
  EXTRA[$key]=${5:-}
  if [ "$OK" != ok ]; then
    CHECK[$key]=$OK
    FAILED=1
  fi
}

TPUT_CASES="rx_native rx_hook rx_iperf3_hook rx_kernel rx_iperf3_kernel tx_native tx_hook tx_iperf3_hook tx_kernel tx_iperf3_kernel"
echo "preload: ${SECS}s per measurement, MTU $MTUS (nginx and connect at $MTU0), $REPEAT run(s) per cell, $(nproc) CPUs"
for rep in $(seq "$REPEAT"); do
  for part in $PARTS; do
    case $part in
      tput)
        for mtu in $MTUS; do
          for c in $TPUT_CASES; do
            wanted tput "$c" || continue
            RUN=$((RUN + 1))
            tput_run "$c" "$mtu"
            bench_teardown
            printf '  run %-2d tput    %-18s MTU %-5s %8s Gbit/s  %s\n' "$rep" "$c" "$mtu" "$GBPS" "$OK"
            record tput "$c" "$mtu" "$GBPS"
          done
        done
        ;;
      nginx)
        for mode in keepalive close; do
          for c in dpm kernel; do
            wanted nginx "$c" || continue
            RUN=$((RUN + 1))
            "nginx_$c" "$mode"
            bench_teardown
            printf '  run %-2d nginx   %-6s %-10s %10s req/s  %s %s\n' "$rep" "$c" "$mode" "$RPS" "$OK" "$NOTE"
            record nginx "$c" "$mode" "$RPS" "$NOTE"
          done
        done
        ;;
      connect)
        for c in native hook kernel; do
          wanted connect "$c" || continue
          RUN=$((RUN + 1))
          "connect_$c"
          bench_teardown
          printf '  run %-2d connect %-8s %10s conn/s  %s %s\n' "$rep" "$c" "$CPS" "$OK" "$NOTE"
          record connect "$c" "$MTU0" "$CPS" "$NOTE"
        done
        ;;
      *) echo "unknown part '$part' in BENCH_PARTS" >&2; exit 2 ;;
    esac
  done
done

# med KEY : the median of a cell's runs, empty when it was not run.
med() { [ -z "${RESULT["$1"]:-}" ] || echo "${RESULT["$1"]}" | bench_median; }
# num VALUE [FORMAT] : VALUE in FORMAT (default %.2f), "-" when empty.
num() { if [ -z "$1" ]; then echo -; else printf "${2:-%.2f}" "$1"; fi; }
# verdict RATIO MIN : met / NOT met / not measured.
verdict() { awk -v r="$1" -v m="$2" 'BEGIN { if (r == "-") print "not measured"; else if (r >= m) print "met"; else print "NOT met" }'; }
VERDICTS=()

if [[ " $PARTS " == *" tput "* ]]; then
  label() {
    case $1 in
      *_native) [ "${1%%_*}" = rx ] && echo "libdpm (dpm_sink)" || echo "libdpm (dpm_blast)" ;;
      *_iperf3_hook) echo "hook (iperf3, dpm-run)" ;;
      *_iperf3_kernel) echo "kernel (iperf3, veth)" ;;
      rx_hook) echo "hook (kernel_sink, dpm-run)" ;;
      tx_hook) echo "hook (tcp_blast, dpm-run)" ;;
      rx_kernel) echo "kernel (kernel_sink, veth)" ;;
      tx_kernel) echo "kernel (tcp_blast, veth)" ;;
    esac
  }
  # ok_text CASE FIGURE : what a cell's runs showed when none failed.
  ok_text() {
    if [ -z "$2" ]; then echo "not run"; elif [[ $1 == *iperf3* ]]; then echo "bytes received"; else echo "sent = received"; fi
  }
  echo
  echo "One TCP stream (Gbit/s at the receiver; x native: / the libdpm build of the same program; x kernel: / the same program on the kernel path)"
  printf '%-15s %-29s %5s %8s %9s %9s  %s\n' direction program MTU Gbit/s "x native" "x kernel" check
  for mtu in $MTUS; do
    for c in $TPUT_CASES; do
      dir=${c%%_*}
      g=$(med "tput $c $mtu")
      native=$(med "tput ${dir}_native $mtu")
      case $c in
        *iperf3*) kern=$(med "tput ${dir}_iperf3_kernel $mtu") ;;
        *) kern=$(med "tput ${dir}_kernel $mtu") ;;
      esac
      printf '%-15s %-29s %5s %8s %9s %9s  %s\n' "$([ "$dir" = rx ] && echo "into the stack" || echo "out of it")" \
        "$(label "$c")" "$mtu" "$(num "$g")" "$(bench_ratio "$g" "$native")" "$(bench_ratio "$g" "$kern" %.3f)" \
        "${CHECK["tput $c $mtu"]:-$(ok_text "$c" "$g")}"
      if [ "$c" = "${dir}_hook" ]; then
        r=$(bench_ratio "$g" "$native")
        VERDICTS+=("target hook >= 0.9 x native libdpm, $([ "$dir" = rx ] && echo into || echo out of) the stack, MTU $mtu: $(verdict "$r" 0.9) (x native = $r)")
      fi
    done
  done
fi

if [[ " $PARTS " == *" nginx "* ]]; then
  echo
  echo "nginx under wrk (-c $WRK_CONNS -t 2, ${SECS}s, 1 KiB file, $WORKERS worker(s), MTU $MTU0)"
  printf '%-24s %-22s %10s %9s  %s\n' nginx connections req/s "x kernel" "wrk errors"
  for mode in keepalive close; do
    k=$(med "nginx kernel $mode")
    for c in dpm kernel; do
      g=$(med "nginx $c $mode")
      printf '%-24s %-22s %10s %9s  %s\n' "$([ $c = dpm ] && echo "in the stack (dpm-run)" || echo "on the kernel (veth)")" \
        "$([ "$mode" = close ] && echo "one per request" || echo "keep-alive")" "$(num "$g" %.0f)" \
        "$(bench_ratio "$g" "$k" %.3f)" "${CHECK["nginx $c $mode"]:-${EXTRA["nginx $c $mode"]:-$([ -n "$g" ] && echo none || echo "not run")}}"
    done
    if [ "$mode" = keepalive ]; then
      r=$(bench_ratio "$(med "nginx dpm keepalive")" "$k" %.3f)
      VERDICTS+=("target nginx keep-alive in the stack >= 0.25 x kernel nginx: $(verdict "$r" 0.25) (x kernel = $r)")
    fi
  done
fi

if [[ " $PARTS " == *" connect "* ]]; then
  echo
  echo "Connections set up and closed per second (connect_rate, $CONNS per run, one at a time, MTU $MTU0)"
  printf '%-34s %10s %9s %9s  %s\n' client conn/s "x native" "x kernel" "per connection (last run)"
  n=$(med "connect native $MTU0")
  k=$(med "connect kernel $MTU0")
  for c in native hook kernel; do
    g=$(med "connect $c $MTU0")
    case $c in
      native) l="libdpm (connect_rate_dpm)" ;;
      hook) l="hook (connect_rate, dpm-run)" ;;
      kernel) l="kernel (connect_rate, veth)" ;;
    esac
    printf '%-34s %10s %9s %9s  %s\n' "$l" "$(num "$g" %.0f)" "$(bench_ratio "$g" "$n")" "$(bench_ratio "$g" "$k" %.3f)" \
      "${CHECK["connect $c $MTU0"]:-${EXTRA["connect $c $MTU0"]:-not run}}"
  done
fi

echo
for v in "${VERDICTS[@]}"; do echo "$v"; done
if [ "$FAILED" != 0 ]; then
  echo "some runs failed (see above); logs: rerun with BENCH_KEEP_TMP=1" >&2
  exit 1
fi
