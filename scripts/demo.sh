#!/usr/bin/env bash
# README command 1: set up (Debian packages, lwIP source), build into build/, and run the demo
# (tests/e2e/dpm_demo.sh): a DPM gateway, two DPM clients and a plain host reach real nginx
# and iperf3 servers; then tests/e2e/addresses_demo.sh: one program's two sockets with two
# addresses of their own, seen by nginx; then tests/e2e/tunnel_demo.sh: an unmodified curl in
# one private network reaches nginx in another by pseudo DNS name through a tunnel server; then
# tests/e2e/vpm_demo.sh: two unmodified nginx serving different sites on port 80 of one
# instance, each source's curl getting its site, and curl reaching a server of its AID on
# another instance through a negotiated hidden port (cooperative mode).
# See those scripts for what they show.
# tests/e2e/demo.sh is the stack-only demo.
# Needs root: it installs packages and creates namespaces and a TUN device (all removed after).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
  echo "demo: must run as root: it installs packages and creates network namespaces and a TUN device (try: sudo $0)" >&2
  exit 1
fi
echo "demo: setting up (packages, lwIP source)..."
"$root/scripts/setup.sh"
echo "demo: building into build/ ..."
log=$(mktemp /tmp/dpm-build.XXXXXX.log)
"$root/scripts/build.sh" >"$log" 2>&1 || { tail -n 30 "$log" >&2; echo "demo: build failed (full log: $log)" >&2; exit 1; }
rm -f "$log"
BUILD="$root/build" "$root/tests/e2e/dpm_demo.sh"
BUILD="$root/build" "$root/tests/e2e/addresses_demo.sh"
BUILD="$root/build" "$root/tests/e2e/tunnel_demo.sh"
BUILD="$root/build" exec "$root/tests/e2e/vpm_demo.sh"
