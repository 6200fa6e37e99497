#!/usr/bin/env bash
# e2e.preload_iperf3 (root): iperf3 through dpm-run against a kernel iperf3, both ways round
# and both directions of data.
#  (a) iperf3 -s through dpm-run listens in the stack (10.77.1.2:5201, "host"); a kernel
#      iperf3 -c in "wan" runs against it for 2 s, once sending (the stack receives) and once
#      with -R (the stack sends).
#  (b) iperf3 -c through dpm-run in "host" against a kernel iperf3 -s in "wan", the same two
#      directions.
# Each run's --json reports on both ends: no error, bytes sent and received (> 0; no speed is
# asserted), and the endpoints each end saw: the stack's address is 10.77.1.2 on both sides (so the
# connection went through the stack, not the kernel of "host", whose address is 198.51.100.1).
# After every run the daemon holds no socket and no active pcb.
#
# iperf3 gets -4: without it, its server asks for an IPv6 socket and, like on a kernel with
# IPv6 off, does not fall back (the hook gives AF_INET6 sockets EAFNOSUPPORT).
source "$(dirname "$0")/preload_lib.sh"
e2e_require_root preload_iperf3
e2e_require_cmd iperf3
e2e_init preload_iperf3
e2e_require_preload
e2e_topology

API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24

# check_run NAME DIR SERVER_JSON CLIENT_JSON SERVER_ADDR CLIENT_ADDR : the assertions on one
# run. The client's report holds both ends' byte counts; the server's its own side only (what
# it received, or with -R what it sent).
check_run() {
  local name=$1 dir=$2 sj=$3 cj=$4 saddr=$5 caddr=$6 f side
  for f in "$sj" "$cj"; do
    side=server
    [ "$f" = "$cj" ] && side=client
    [ -z "$(json_field "$f" 'j.get("error", "")')" ] || echo "  $name: iperf3 $side error: $(json_field "$f" 'j["error"]')"
    echo "  $name $side: sent $(json_field "$f" 'j["end"]["sum_sent"]["bytes"]') received" \
      "$(json_field "$f" 'j["end"]["sum_received"]["bytes"]') bytes;" \
      "$(json_field "$f" '" ".join("%s:%s-%s:%s" % (c["local_host"], c["local_port"], c["remote_host"], c["remote_port"]) for c in j["start"]["connected"])')"
  done
  # iperf3 puts what went wrong in "error" (the run may still have moved data): e.g. a socket
  # option it reads every interval (TCP_INFO) that the hook refused.
  e2e_expect_eq "$name: neither end reports an error" "" \
    "$(json_field "$sj" 'j.get("error", "")')$(json_field "$cj" 'j.get("error", "")')"
  local server_side=sum_received
  [ "$dir" = -R ] && server_side=sum_sent
  e2e_check "$name: the client received bytes" test "$(json_field "$cj" 'j["end"]["sum_received"]["bytes"]')" -gt 0 2>/dev/null
  e2e_check "$name: the client sent bytes" test "$(json_field "$cj" 'j["end"]["sum_sent"]["bytes"]')" -gt 0 2>/dev/null
  e2e_check "$name: the server's own report: bytes ${server_side#sum_}" \
    test "$(json_field "$sj" 'j["end"]["'$server_side'"]["bytes"]')" -gt 0 2>/dev/null
  e2e_expect_eq "$name: the server's stream is $saddr:5201 from $caddr" "$saddr:5201 $caddr" \
    "$(json_field "$sj" '"%s:%s %s" % (j["start"]["connected"][0]["local_host"], j["start"]["connected"][0]["local_port"], j["start"]["connected"][0]["remote_host"])')"
  e2e_expect_eq "$name: the client's stream is from $caddr to $saddr:5201" "$caddr $saddr:5201" \
    "$(json_field "$cj" '"%s %s:%s" % (j["start"]["connected"][0]["local_host"], j["start"]["connected"][0]["remote_host"], j["start"]["connected"][0]["remote_port"])')"
  e2e_check "$name: the daemon holds no socket and no active pcb afterwards" e2e_wait_for 10 e2e_idle "$API"
}

for dir in "" -R; do
  name="server in the stack${dir:+, $dir}"
  echo "--- (a) $name ---"
  sj=$TMP/a-server$dir.json
  cj=$TMP/a-client$dir.json
  e2e_bg "$HOST" "$DPMRUN" --api-socket "$API" -- iperf3 -4 -s -1 --json >"$sj" 2>"$sj.err"
  SERVER=$LAST_PID
  e2e_wait_for 10 has_listener "$API" 0.0.0.0:5201 || echo "  no listener in the daemon: $(cat "$sj.err")"
  ip netns exec "$WAN" timeout 30 iperf3 -4 -c 10.77.1.2 -t 2 --json $dir >"$cj" 2>&1 || echo "  iperf3 -c exited with $?"
  e2e_wait_for 10 sh -c "! kill -0 $SERVER" || echo "  the server did not exit after its one test"
  e2e_stop "$SERVER"
  check_run "$name" "$dir" "$sj" "$cj" 10.77.1.2 198.51.100.10
done

for dir in "" -R; do
  name="client in the stack${dir:+, $dir}"
  echo "--- (b) $name ---"
  sj=$TMP/b-server$dir.json
  cj=$TMP/b-client$dir.json
  e2e_bg "$WAN" iperf3 -4 -s -1 -B 198.51.100.10 --json >"$sj" 2>"$sj.err"
  SERVER=$LAST_PID
  e2e_wait_for 10 ip netns exec "$WAN" bash -c 'ss -Hltn "sport = :5201" | grep -q .' || echo "  the kernel server did not start"
  preload_run "$HOST" "$API" -- timeout 30 iperf3 -4 -c 198.51.100.10 -t 2 --json $dir >"$cj" 2>&1 ||
    echo "  iperf3 -c exited with $?"
  e2e_wait_for 10 sh -c "! kill -0 $SERVER" || echo "  the server did not exit after its one test"
  e2e_stop "$SERVER"
  check_run "$name" "$dir" "$sj" "$cj" 198.51.100.10 10.77.1.2
done
e2e_finish
