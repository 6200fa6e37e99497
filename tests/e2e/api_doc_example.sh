#!/usr/bin/env bash
# e2e.api_doc_example (no root): the example at the top of docs/api.md works when pasted.
# Takes the first C block of its "## Example" section and the compile line under it (the
# indented line that starts with "cc ") exactly as written, compiles the one with the other
# from a directory laid out like the repository root (include/ and build/ linked to this
# checkout and $BUILD), and runs the program with no daemon to reach: it must start — no
# loader error such as "libdpm.so: cannot open shared object file" — and fail with libdpm's
# clear error for that case, ENETDOWN ("Network is down"), exit status 1.
source "$(dirname "$0")/lib.sh"

e2e_require_cmd cc
[ -f "$BUILD/libdpm.so" ] || e2e_fail "no libdpm.so in BUILD=$BUILD (build first)"
TMP=$(mktemp -d "/tmp/dpm-api_doc_example-$$.XXXX")
trap 'rm -rf "$TMP"' EXIT

doc=$E2E_ROOT/docs/api.md
section=$(awk '/^## Example/ {on = 1; next} /^## / {on = 0} on' "$doc")
[ -n "$section" ] || e2e_fail "docs/api.md has no \"## Example\" section"
printf '%s\n' "$section" | awk '/^```c$/ {on = 1; next} /^```$/ {if (on) exit} on' >"$TMP/example.c"
[ -s "$TMP/example.c" ] || e2e_fail "no C block in docs/api.md's Example section"
line=$(printf '%s\n' "$section" | sed -n 's/^    \(cc .*\)$/\1/p' | head -n 1)
[ -n "$line" ] || e2e_fail "no indented compile line (\"    cc ...\") in docs/api.md's Example section"
echo "compile line: $line"

# The line is written for the repository root with the build in build/.
ln -s "$E2E_ROOT/include" "$TMP/include"
ln -s "$BUILD" "$TMP/build"
(cd "$TMP" && bash -c "$line") || e2e_fail "the compile line of docs/api.md failed"
[ -x "$TMP/example" ] || e2e_fail "the compile line did not make ./example"

# A daemon nobody runs: an abstract name of this test's own.
set +e
out=$(cd "$TMP" && DPM_SOCKET="@dpm-api-doc-example-$$-$RANDOM" ./example 2>&1)
rc=$?
set -e
echo "example: exit $rc, output: $out"
if printf '%s' "$out" | grep -qiE 'shared object|error while loading'; then
  e2e_fail "the program did not start: $out"
fi
e2e_expect_eq "exit status with no daemon" 1 "$rc"
e2e_check "it names the failing call and ENETDOWN" grep -q "dpm_socket: Network is down" <<<"$out"
e2e_finish
