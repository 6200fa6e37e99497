#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang and runs each for SECONDS (default 30) on a
# copy of its seed corpus. Exits 0 when no target crashed, 1 on a crash (the reproducer is
# left in $DPM_FUZZ_BUILD_DIR/artifacts/), 77 when clang or libFuzzer is not installed.
#
#   scripts/fuzz.sh [SECONDS]          DPM_FUZZ_BUILD_DIR (default build-fuzz) holds the build.
set -euo pipefail

seconds=${1:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DPM_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${DPM_FUZZ_BUILD_JOBS:-2}

if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: $0 [SECONDS]   (SECONDS: whole seconds per fuzz target, at least 1)" >&2
  exit 2
fi
if ! command -v clang >/dev/null || ! command -v clang++ >/dev/null; then
  echo "SKIP: clang is not installed (apt-get install clang)"
  exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe/p.cc"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cc" -o "$probe/p" 2>"$probe/err"; then
  echo "SKIP: clang cannot link libFuzzer targets (install libclang-rt-dev or clang's runtime):"
  cat "$probe/err"
  exit 77
fi

echo "== configuring $build (clang, DPM_FUZZ=ON)"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDPM_FUZZ=ON >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
rm -f "$build.configure.log"
echo "== building the fuzz targets"
cmake --build "$build" -j"$jobs" --target fuzzers

# Every fuzz/<name>_fuzzer.cc, seeded from fuzz/corpus/<name>/.
fuzzers=()
for f in "$root"/fuzz/*_fuzzer.cc; do n=$(basename "$f" .cc); fuzzers+=("${n%_fuzzer}"); done
work="$build/fuzz-work"
artifacts="$build/artifacts"
mkdir -p "$artifacts"
status=0
for name in "${fuzzers[@]}"; do
  # A fresh copy of the checked-in seeds: what the fuzzer adds stays out of the source tree.
  rm -rf "${work:?}/$name"
  mkdir -p "$work/$name"
  cp "$root/fuzz/corpus/$name/"* "$work/$name/"
  log="$build/${name}_fuzzer.log"
  echo "== fuzzing ${name}_fuzzer for ${seconds}s (log: $log)"
  rc=0
  # libFuzzer's default error exit code is 77, which ctest would read as "skipped": use 1.
  "$build/fuzz/${name}_fuzzer" -max_total_time="$seconds" -error_exitcode=1 -timeout_exitcode=1 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/${name}-" "$work/$name" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "FAIL: ${name}_fuzzer exited with $rc; reproducer in $artifacts:"
    tail -n 60 "$log"
    status=1
  else
    grep -E "^stat::number_of_executed_units|^stat::new_units_added|Done [0-9]+ runs" "$log" || true
  fi
done
exit "$status"
