#!/usr/bin/env bash
# README command 2: set up (packages, lwIP source), build, and run every test through ctest.
# End-to-end tests that need root create their own network namespaces and skip when not root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
cd "$root/build"
ctest --output-on-failure --timeout 600 "$@"
