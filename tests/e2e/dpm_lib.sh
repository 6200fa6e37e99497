#!/usr/bin/env bash
# The DPM test network (docs/design.md §5): namespaces made for the run and removed after.
#
#   wan    real servers: nginx on 198.51.100.10:80 and 198.51.100.11:80, iperf3 on .10:5201;
#          route to the registered pool 203.0.113.0/24 through the gateway's outside TUN "gwout"
#   lan    the private network's router: the gateway's inside TUN "gwin" (kernel side
#          10.77.0.254/16; the gateway itself is 10.77.0.1, where the DPM server answers), two
#          DPM clients on TUNs c1 (stack 10.77.1.2) and c2 (stack 10.77.2.2), a veth to "plain"
#   plain  an ordinary Linux host without a driver, 10.77.3.2, default route via lan
#
# `dpmd gateway` runs in lan; it creates gwout there, and the script moves it into wan.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# dpm_topology POOL : builds it all; sets LAN WAN PLAIN GW_API C1_API C2_API GW_PID.
dpm_topology() {
  local pool=${1:-203.0.113.1}
  e2e_netns lan LAN
  e2e_netns wan WAN
  e2e_netns plain PLAIN
  # The servers' addresses live on wan's loopback (no dummy-device module on every kernel).
  ip -n "$WAN" addr add 198.51.100.10/32 dev lo
  ip -n "$WAN" addr add 198.51.100.11/32 dev lo
  dpm_host_behind "$PLAIN" "$LAN"

  dpm_start_gateway "$pool"

  C1_API=$TMP/c1.sock
  C2_API=$TMP/c2.sock
  # shellcheck disable=SC2086  # DPM_C1_ARGS: extra flags for client 1 (e.g. an address pool)
  e2e_dpmd "$LAN" "$C1_API" --tun c1 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24 \
    --dpm-gateway 10.77.0.1 --private-network 10.77.0.0/16 ${DPM_C1_ARGS:-}
  e2e_dpmd "$LAN" "$C2_API" --tun c2 --address 10.77.2.2/24 --gateway 10.77.2.1 --host-address 10.77.2.1/24 \
    --dpm-gateway 10.77.0.1 --private-network 10.77.0.0/16
}

# dpm_host_behind HOST ROUTER : a veth from namespace HOST (10.77.3.2/24, default route) to
# ROUTER (10.77.3.1/24, forwarding on): an ordinary host of the private network.
dpm_host_behind() {
  ip link add vp-$$ netns "$1" type veth peer name vl-$$ netns "$2"
  ip -n "$1" addr add 10.77.3.2/24 dev vp-$$
  ip -n "$2" addr add 10.77.3.1/24 dev vl-$$
  ip -n "$1" link set vp-$$ up
  ip -n "$2" link set vl-$$ up
  ip -n "$1" route add default via 10.77.3.1
  ip netns exec "$2" sysctl -qw net.ipv4.ip_forward=1
}

# dpm_start_gateway POOL : starts `dpmd gateway` in lan (extra flags from $DPM_GW_ARGS), moves
# its outside TUN into wan and routes through it; sets GW_API and GW_PID. Also used to start
# it again after dpm_stop_gateway (its TUN devices go with the process).
dpm_start_gateway() {
  dpm_run_gateway "$LAN" "$1" --inside-host-address 10.77.0.254/16
  ip -n "$LAN" route add default dev gwin
}

# dpm_run_gateway NS POOL ARGS... : starts `dpmd gateway` in NS with inside TUN gwin and
# outside TUN gwout (more flags: ARGS, then $DPM_GW_ARGS), moves gwout into $WAN and routes the
# pool through it; sets GW_API and GW_PID. Routes towards gwin are the caller's.
dpm_run_gateway() {
  local ns=$1 pool=$2 log=$TMP/gw.log
  shift 2
  [ -e "$log" ] && mv "$log" "$TMP/gw-$(date +%s%N).log"
  GW_API=${DPM_GW_API:-$TMP/gw.sock}  # DPM_GW_API=@dpm/gateway: the gateway's default
  # shellcheck disable=SC2086
  e2e_bg "$ns" "$DPMD" gateway --inside-tun gwin --outside-tun gwout "$@" \
    --address 10.77.0.1/16 --inside-network 10.77.0.0/16 --pool "$pool" --api-socket "$GW_API" \
    --pcap-inside "$TMP/gw-inside.pcap" --pcap-snaplen 256 ${DPM_GW_ARGS:-} >"$log" 2>&1
  GW_PID=$LAST_PID
  e2e_wait_for 10 grep -q "gateway ready" "$log" || { cat "$log" >&2; e2e_fail "dpmd gateway did not start"; }
  ip -n "$ns" link set gwout netns "$WAN"
  ip -n "$WAN" link set gwout up
  ip -n "$WAN" route add 203.0.113.0/24 dev gwout
}

# dpm_stop_gateway : stops it; its TUN devices and routes disappear with it.
dpm_stop_gateway() {
  e2e_stop "$GW_PID"
  e2e_wait_for 5 sh -c "! ip -n '$WAN' link show gwout" || true
}

# dpm_servers DOCROOT : nginx on 198.51.100.10 and .11 (access log with the peer's port) and iperf3.
dpm_servers() {
  local root=$1
  NGINX_LOG_FORMAT='$remote_addr:$remote_port $server_addr "$request" $status $body_bytes_sent' \
    e2e_nginx "$WAN" 198.51.100.10 80 "$root" 198.51.100.11
  e2e_bg "$WAN" iperf3 -s -B 198.51.100.10 -1 >"$TMP/iperf3-server.log" 2>&1
}
