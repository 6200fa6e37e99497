#!/usr/bin/env bash
# Helpers for the tests that run unmodified programs on a dpm instance through `dpm-run` and
# the preload hook (libdpm-preload.so). Sources dpm_lib.sh (and so lib.sh): both the plain
# topology (e2e_topology) and the DPM network (dpm_topology) are at hand.
source "$(dirname "${BASH_SOURCE[0]}")/dpm_lib.sh"

DPMRUN=$BUILD/dpm-run

# e2e_require_preload : fails clearly when dpm-run or the hook library is not built.
e2e_require_preload() {
  [ -x "$DPMRUN" ] && [ -e "$BUILD/libdpm-preload.so" ] ||
    e2e_fail "no dpm-run or libdpm-preload.so in BUILD=$BUILD (build the targets dpm-run and dpm_preload)"
}

# preload_run NS API DPM-RUN-ARGS... -- PROGRAM ARGS... : runs PROGRAM in namespace NS on the
# instance at API through dpm-run, in the foreground.
preload_run() {
  local ns=$1 api=$2
  shift 2
  ip netns exec "$ns" "$DPMRUN" --api-socket "$api" "$@"
}

# socket_rows API : one line per socket of the instance: "PROTO STATE LOCAL PEER".
socket_rows() {
  e2e_json "$1" '"\n".join(" ".join((x["proto"], x["state"], x["local"], x["peer"])) for x in s["sockets"])'
}

# connected_local API PEER : the local endpoint of the instance's connected TCP socket towards
# PEER (A.B.C.D:P), empty when there is none. A DPM socket (proto "tcp*") lists its registered
# endpoint there, the one getsockname() gives.
connected_local() {
  socket_rows "$1" | awk -v peer="$2" '$1 ~ /^tcp/ && $2 == "connected" && $4 == peer {print $3; exit}'
}

# has_connected API PEER : true while such a socket exists.
has_connected() { [ -n "$(connected_local "$1" "$2")" ]; }

# has_listener API LOCAL : true when the instance has a TCP socket listening on LOCAL.
has_listener() {
  socket_rows "$1" | awk -v local="$2" '$1 ~ /^tcp/ && $2 == "listening" && $3 == local {found=1} END {exit !found}'
}

# json_field FILE EXPR : a Python expression over the JSON document in FILE bound to `j`
# (prints "" if the file is not JSON or the expression fails).
json_field() {
  "$PY" -c 'import json,sys
try:
    j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))
except Exception:
    print("")' "$1" "$2"
}

# preload_nginx MAIN HTTP : starts an nginx through dpm-run in $HOST on a fresh `dpmd client`
# (10.77.1.2/24 on TUN dpm0, API socket $API = $TMP/api.sock) and waits for its listener
# 0.0.0.0:8080 in the stack. Its configuration $TMP/ng/nginx.conf: workers as www-data (the
# daemon gets --api-group www-data so they may use the API as the master, root, does), pid,
# error log and temporary files in $TMP/ng, `daemon off`; MAIN adds main-context lines, HTTP
# the http block's lines (a `server { listen 8080; ... }` among them). Sets NGINX_PID.
preload_nginx() {
  API=$TMP/api.sock
  e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
    --api-group www-data
  mkdir -p "$TMP/ng"
  cat >"$TMP/ng/nginx.conf" <<CONF
daemon off;
user www-data www-data;
pid $TMP/ng/nginx.pid;
error_log $TMP/ng/error.log info;
$1
http {
  client_body_temp_path $TMP/ng;
  proxy_temp_path $TMP/ng;
  fastcgi_temp_path $TMP/ng;
  uwsgi_temp_path $TMP/ng;
  scgi_temp_path $TMP/ng;
  $2
}
CONF
  e2e_bg "$HOST" "$DPMRUN" --api-socket "$API" -- nginx -c "$TMP/ng/nginx.conf"
  NGINX_PID=$LAST_PID
  e2e_wait_for 10 has_listener "$API" 0.0.0.0:8080 || { cat "$TMP/ng/error.log" >&2 || true; }
}

# vpm_wire_checks PCAP PROTO PORT LOW HIGH MIN : virtual port multiplexing as the link saw it
# (docs/vpm.md): every PROTO (tcp or udp) packet in PCAP to or from the stack (10.77.1.2) has
# PORT as the stack's port, never another one (the hidden ports LOW-HIGH least of all; the
# peers' ephemeral ports may fall anywhere); at least MIN such packets; every one's checksum
# verifies (tshark's checksum status: 0 bad, 1 good, 2 not verified).
vpm_wire_checks() {
  local pcap=$1 proto=$2 port=$3 low=$4 high=$5 min=$6 ports good count
  ports=$( (tshark -r "$pcap" -Y "$proto && ip.src == 10.77.1.2" -T fields -e "$proto.srcport" 2>/dev/null
    tshark -r "$pcap" -Y "$proto && ip.dst == 10.77.1.2" -T fields -e "$proto.dstport" 2>/dev/null) | sort -un | xargs)
  echo "  the stack's ${proto^^} ports on the link: $ports (hidden range $low-$high)"
  e2e_expect_eq "the link shows the stack on port $port only, never a hidden port" "$port" "$ports"
  good=$(tshark -r "$pcap" -o "$proto.check_checksum:TRUE" -Y "$proto.checksum.status == 1" 2>/dev/null | wc -l)
  count=$(tshark -r "$pcap" -Y "$proto" 2>/dev/null | wc -l)
  e2e_check "the capture holds the test's traffic ($count ${proto^^} packets)" test "$count" -ge "$min"
  e2e_expect_eq "every ${proto^^} checksum on the link verifies" "$count" "$good"
}

# vpm_site NAME AID : an unmodified nginx (one process, no master) of AID, through dpm-run on
# the instance at $API, serving "this is site NAME" ($TMP/NAME/www/index.html) on port 80; its
# access log $TMP/NAME/access.log has "PEER SERVER_PORT \"REQUEST\" STATUS" lines. Sets LAST_PID.
vpm_site() {
  local name=$1 aid=$2 d=$TMP/$1
  mkdir -p "$d/www"
  echo "this is site $name" >"$d/www/index.html"
  cat >"$d/nginx.conf" <<CONF
daemon off;
master_process off;
pid $d/nginx.pid;
error_log $d/error.log info;
events { worker_connections 64; }
http {
  client_body_temp_path $d; proxy_temp_path $d; fastcgi_temp_path $d; uwsgi_temp_path $d; scgi_temp_path $d;
  log_format peers '\$remote_addr \$server_port "\$request" \$status';
  access_log $d/access.log peers;
  server { listen 80; root $d/www; }
}
CONF
  e2e_bg "$HOST" "$DPMRUN" --api-socket "$API" --aid "$aid" -- nginx -c "$d/nginx.conf"
}
