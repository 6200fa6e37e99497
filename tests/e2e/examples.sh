#!/usr/bin/env bash
# e2e.examples (root): examples/client.sh and examples/gateway.sh, run as a user would run
# them, do what they say and leave nothing behind. Asserts: each exits 0; client.sh's dpm-cat
# gets the server's page (HTTP 200) through the stack and its `dpmd status` is the client's,
# and curl under dpm-run gets the page from the stack's address;
# gateway.sh's curl from the plain host gets HTTP 200 and the page, its DPM client's dpm-cat
# gets a registered local address from the pool, the server saw only pool addresses, and the
# gateway's status lists both sessions (napt and dpm). Afterwards no namespace and no root
# namespace device they made is left, and no process they started still runs (each run
# carries a mark in its environment that its children inherit).
source "$(dirname "$0")/lib.sh"
e2e_require_root examples
e2e_require_cmd python3 curl
e2e_init examples

# run_example NAME : runs examples/NAME.sh (output in $TMP/NAME.out) and checks its exit status
# and that it leaves no namespace, root-namespace device or process behind.
run_example() {
  local name=$1 mark="DPM_EXAMPLE_RUN=$P-$1" rc=0 ns_before links_before
  ns_before=$(ip netns list | awk '{print $1}' | sort)
  links_before=$(ip -o link show | awk -F': ' '{print $2}' | sort)
  echo "--- examples/$name.sh ---"
  env "$mark" BUILD="$BUILD" timeout 60 bash "$E2E_ROOT/examples/$name.sh" >"$TMP/$name.out" 2>&1 || rc=$?
  sed 's/^/  | /' "$TMP/$name.out"
  e2e_expect_eq "$name.sh exits 0" 0 "$rc"
  e2e_expect_eq "no namespace of $name.sh is left" "" \
    "$(comm -13 <(echo "$ns_before") <(ip netns list | awk '{print $1}' | sort))"
  e2e_expect_eq "no device was made in the root namespace" "" \
    "$(comm -13 <(echo "$links_before") <(ip -o link show | awk -F': ' '{print $2}' | sort))"
  e2e_wait_for 5 sh -c "! grep -qsa '$mark' /proc/[0-9]*/environ" || true
  e2e_expect_eq "no process of $name.sh is left" "" "$(grep -lsa "$mark" /proc/[0-9]*/environ || true)"
}

run_example client
out=$TMP/client.out
e2e_check "client: dpm-cat got HTTP 200" grep -q "^HTTP/1.0 200 OK" "$out"
e2e_check "client: and the page" grep -q "^hello from the server namespace" "$out"
e2e_check "client: dpm-cat's local address is the stack's" grep -q "^dpm-cat: local 10\.77\.1\.2:" "$out"
e2e_check "client: dpmd status is the client's, on dpm0" grep -q "^link  *tun:dpm0 .*address 10\.77\.1\.2/24" "$out"
e2e_check "client: it counted the socket" grep -q "sockets 0 (opened 1, closed 1)" "$out"
e2e_check "client: curl under dpm-run got the page" grep -q "^curl: hello from the server namespace" "$out"
e2e_check "client: from the stack's address" grep -q "^curl: HTTP 200 from 10\.77\.1\.2$" "$out"

run_example gateway
out=$TMP/gateway.out
e2e_check "gateway: curl from the plain host got HTTP 200" grep -q "^curl: HTTP 200" "$out"
e2e_check "gateway: the page arrived (curl and dpm-cat)" test "$(grep -c "^hello from the wan namespace" "$out")" = 2
e2e_check "gateway: dpm-cat's local endpoint is registered" \
  grep -Eq "^dpm-cat: local 203\.0\.113\.[1-8]:[0-9]+ peer 198\.51\.100\.10:80" "$out"
e2e_check "gateway: the server saw two requests from the pool" \
  test "$(grep -Ec '^203\.0\.113\.[1-8] - - .*"GET / HTTP/1\.[01]" 200' "$out")" = 2
e2e_check "gateway: and none from a private address" sh -c "! grep -q '^10\.77\.' '$out'"
e2e_check "gateway: status is the gateway's" grep -q "^link  *tun:gwin .*address 10\.77\.0\.1/16" "$out"
e2e_check "gateway: it lists the plain host's NAPT session" \
  grep -Eq "^tcp +10\.77\.3\.2:[0-9]+ +203\.0\.113\.[1-8]:[0-9]+ +198\.51\.100\.10:80 .* napt$" "$out"
e2e_check "gateway: and the DPM client's session" \
  grep -Eq "^tcp +10\.77\.1\.2:[0-9]+ +203\.0\.113\.[1-8]:[0-9]+ +198\.51\.100\.10:80 +10\.77\.0\.1:[0-9]+ +ESTABLISHED .* dpm$" "$out"
e2e_finish
