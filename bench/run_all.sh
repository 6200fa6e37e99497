#!/usr/bin/env bash
# Every dpm benchmark, one after the other (bench/README.md). Run as root:
#   sudo bench/run_all.sh
# Uses the binaries in $BUILD (default ./build); the environment knobs of throughput.sh,
# idle_memory.sh, setup_latency.sh, preload.sh, tunnel.sh and vpm.sh pass through. Exits non-zero
# if a run lost bytes or missed a target (tunnel.sh and vpm.sh only report: they print MISSED and
# exit 0).
set -uo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
rc=0
echo "== dpm benchmarks: $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs"
echo
"$dir/throughput.sh" || rc=1
echo
"$dir/idle_memory.sh" || rc=1
echo
"${BUILD:-$dir/../build}/bench/setup_bench" || rc=1
echo
"$dir/setup_latency.sh" || rc=1
echo
"$dir/address_sockets.sh" || rc=1
echo
"$dir/preload.sh" || rc=1
echo
"$dir/tunnel.sh" || rc=1
echo
"$dir/vpm.sh" || rc=1
exit $rc
