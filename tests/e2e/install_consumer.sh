#!/usr/bin/env bash
# e2e.install_consumer (no root, no network): dpm installs like a library. `cmake --install`
# of the build into a fresh prefix gives the layout of README "Install" (programs, libdpm.so.0
# with its SONAME, the header, dpm.pc, the CMake package, man pages); the installed programs
# and library depend on nothing of the build tree. A small C program (tests/e2e/consumer/) is
# then built out of tree against the prefix twice — with pkg-config and with find_package(dpm)
# — and each build runs: against no daemon (ENETDOWN, and dpm_daemon_path() names the socket
# tried), and through the installed dpmd pair on a virtual link to an installed dpm-cat
# listener; docs/api.md's example builds with README "Install"'s pkg-config and find_package
# lines exactly as written. Last, the installed dpm-run: its help, its one-line refusal without
# a daemon, the environment it hands a program, the exit statuses of a program it cannot run,
# and bash's /dev/tcp through the installed hook (libdpm-preload.so) to the listener on B.
source "$(dirname "$0")/lib.sh"
e2e_require_cmd cmake pkg-config readelf nm ldd cc groff man
e2e_init install_consumer

PREFIX=$TMP/prefix
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
LIBDIR=$(cache CMAKE_INSTALL_LIBDIR)
VERSION=$(cache CMAKE_PROJECT_VERSION)
[ -n "$LIBDIR" ] && [ -n "$VERSION" ] || e2e_fail "no CMAKE_INSTALL_LIBDIR / CMAKE_PROJECT_VERSION in $BUILD/CMakeCache.txt"
LIB=$PREFIX/$LIBDIR
MAN=$PREFIX/share/man

echo "--- cmake --install $BUILD --prefix $PREFIX ---"
cmake --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; e2e_fail "cmake --install failed"; }

echo "--- layout ---"
for f in sbin/dpmd bin/dpm-cat bin/dpm-run; do
  e2e_check "$f is installed and executable" test -x "$PREFIX/$f"
done
e2e_check "$LIBDIR/libdpm.so.$VERSION is the library" test -f "$LIB/libdpm.so.$VERSION"
e2e_expect_eq "$LIBDIR/libdpm.so.0 points at it" "libdpm.so.$VERSION" "$(readlink "$LIB/libdpm.so.0")"
e2e_expect_eq "$LIBDIR/libdpm.so (for -ldpm) points at libdpm.so.0" "libdpm.so.0" "$(readlink "$LIB/libdpm.so")"
soname() { readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }
e2e_expect_eq "libdpm's SONAME" "libdpm.so.0" "$(soname "$LIB/libdpm.so.$VERSION")"
header_functions=$(grep -oE '\bdpm_[a-z_]+\(' "$E2E_ROOT/include/dpm/socket.h" | tr -d '(' | sort -u)
e2e_expect_eq "libdpm exports exactly the functions of dpm/socket.h" "$(echo $header_functions)" \
  "$(echo $(nm -D --defined-only "$LIB/libdpm.so.$VERSION" | awk '{print $3}' | sort -u))"
e2e_check "include/dpm/socket.h is the source tree's header" cmp -s "$E2E_ROOT/include/dpm/socket.h" "$PREFIX/include/dpm/socket.h"
e2e_check "$LIBDIR/pkgconfig/dpm.pc" test -f "$LIB/pkgconfig/dpm.pc"
for f in dpmConfig.cmake dpmConfigVersion.cmake dpmTargets.cmake; do
  e2e_check "$LIBDIR/cmake/dpm/$f" test -f "$LIB/cmake/dpm/$f"
done
e2e_check "$LIBDIR/libdpm-preload.so is installed" test -f "$LIB/libdpm-preload.so"
e2e_expect_eq "libdpm-preload.so has no versioned SONAME" "" "$(soname "$LIB/libdpm-preload.so" | grep -v '^libdpm-preload\.so$' || true)"
# The export names dpm::dpm alone: no internal static library (dpm_api, dpm_os, dpm_wire) and
# no path of the build or source tree leaks into what a consumer reads.
e2e_expect_eq "the CMake export defines only dpm::dpm" "dpm::dpm" \
  "$(sed -n 's/^add_library(\([^ ]*\) .*/\1/p' "$LIB"/cmake/dpm/dpmTargets.cmake | tr '\n' ' ' | sed 's/ $//')"
e2e_check "the CMake export names no internal library" bash -c "! grep -Eq 'dpm_(api|os|wire)' '$LIB'/cmake/dpm/*.cmake"
e2e_check "no installed text file names the build or source tree" \
  bash -c "! grep -rIlE '$BUILD|$E2E_ROOT' '$LIB/pkgconfig' '$LIB/cmake' '$PREFIX/include' '$MAN'"

echo "--- the installed binaries stand alone ---"
runpath() { readelf -d "$1" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\2/p'; }
for f in bin/dpm-cat bin/dpm-run; do
  e2e_expect_eq "$f finds libdpm in its own prefix (RUNPATH)" "\$ORIGIN/../$LIBDIR" "$(runpath "$PREFIX/$f")"
  e2e_expect_eq "$f loads the installed libdpm.so.0" "$LIB/libdpm.so.0" \
    "$(ldd "$PREFIX/$f" | sed -n 's/^\s*libdpm\.so\.0 => \(\S*\) .*/\1/p' | xargs -r realpath -s)"
done
for f in sbin/dpmd bin/dpm-cat bin/dpm-run "$LIBDIR/libdpm.so.$VERSION" "$LIBDIR/libdpm-preload.so"; do
  e2e_check "ldd $f: every dependency is found" bash -c "! ldd '$PREFIX/$f' | grep -q 'not found'"
  e2e_check "$f names no path of the build tree" bash -c "! readelf -d '$PREFIX/$f' | grep -qF '$BUILD'"
done
e2e_expect_eq "installed dpmd --version" "dpmd $VERSION" "$("$PREFIX/sbin/dpmd" --version)"
e2e_expect_eq "installed dpm-cat --version" "dpm-cat $VERSION" "$("$PREFIX/bin/dpm-cat" --version)"

echo "--- man pages ---"
for page in man8/dpmd.8 man1/dpm-run.1 man1/dpm-cat.1 man3/libdpm.3; do
  e2e_check "$page is installed" test -f "$MAN/$page"
  # groff -ww: every warning; a page that renders with none is well formed.
  e2e_expect_eq "$page renders without warnings" "" "$(groff -man -Tutf8 -ww -z "$MAN/$page" 2>&1)"
done
# Every option a program's --help lists is in its man page, so the pages keep up with the code.
options_missing() {  # PAGE COMMAND... : the options of COMMAND's --help that PAGE does not name
  local text o
  text=$(sed 's/\\-/-/g' "$1"); shift  # roff's \- is the option's '-'
  for o in $("$@" --help | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u); do
    grep -qF -- "$o" <<<"$text" || printf '%s ' "$o"
  done
}
for sub in "" client gateway status; do
  e2e_expect_eq "dpmd.8 names every option of dpmd ${sub:+$sub }--help" "" \
    "$(options_missing "$MAN/man8/dpmd.8" "$PREFIX/sbin/dpmd" $sub)"
done
e2e_expect_eq "dpm-cat.1 names every option of dpm-cat --help" "" "$(options_missing "$MAN/man1/dpm-cat.1" "$PREFIX/bin/dpm-cat")"
e2e_expect_eq "dpm-run.1 names every option of dpm-run --help" "" "$(options_missing "$MAN/man1/dpm-run.1" "$PREFIX/bin/dpm-run")"
for v in DPM_SOCKET DPM_TUPLE DPM_FIXED_PORTS DPM_KERNEL_NETS DPM_TUNNEL DPM_TUNNEL_SUFFIX DPM_TUNNEL_NET \
    DPM_PRELOAD_LIBRARY; do
  grep -q "^\.B $v\$" "$MAN/man1/dpm-run.1" || { echo "FAIL: dpm-run.1 has no entry for $v"; E2E_FAILED=$((E2E_FAILED + 1)); }
done
# Every function of the public header has its name as a page that leads to libdpm(3).
for fn in $header_functions; do
  [ "$(cat "$MAN/man3/$fn.3" 2>/dev/null)" = ".so man3/libdpm.3" ] ||
    { echo "FAIL: man3/$fn.3 is not a link to libdpm.3"; E2E_FAILED=$((E2E_FAILED + 1)); }
done
e2e_check "man 3 dpm_socket shows libdpm(3)'s dpm_socket" \
  bash -c "MANWIDTH=100 man -M '$MAN' 3 dpm_socket 2>/dev/null | grep -q 'dpm_socket(domain, type, protocol, tuple)'"
e2e_check "man dpm-run shows its EXIT STATUS" bash -c "MANWIDTH=100 man -M '$MAN' 1 dpm-run 2>/dev/null | grep -q '^EXIT STATUS'"

echo "--- the consumer, built out of tree with pkg-config and with find_package(dpm) ---"
export PKG_CONFIG_PATH=$LIB/pkgconfig
e2e_expect_eq "pkg-config --modversion dpm" "$VERSION" "$(pkg-config --modversion dpm)"
e2e_expect_eq "pkg-config --cflags --libs dpm" "-I$PREFIX/include -L$LIB -ldpm" "$(pkg-config --cflags --libs dpm | sed 's/ *$//')"
SRC=$E2E_ROOT/tests/e2e/consumer
# shellcheck disable=SC2046  # pkg-config's words are meant to split
cc -Wall -Werror -o "$TMP/consumer-pc" "$SRC/main.c" $(pkg-config --cflags --libs dpm) \
  -Wl,-rpath,"$(pkg-config --variable=libdir dpm)" >"$TMP/cc.log" 2>&1 || { cat "$TMP/cc.log"; e2e_fail "cc with pkg-config failed"; }
e2e_pass "built with cc \$(pkg-config --cflags --libs dpm)"
cmake -S "$SRC" -B "$TMP/consumer-cmake" -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_FLAGS="-Wall -Werror" \
  >"$TMP/cmake.log" 2>&1 && cmake --build "$TMP/consumer-cmake" >>"$TMP/cmake.log" 2>&1 ||
  { cat "$TMP/cmake.log"; e2e_fail "the find_package(dpm) build failed"; }
e2e_pass "built with find_package(dpm REQUIRED) and dpm::dpm"
e2e_check "the find_package build found the prefix's package" \
  grep -q "dpm_DIR:PATH=$LIB/cmake/dpm" "$TMP/consumer-cmake/CMakeCache.txt"
CONSUMERS=("$TMP/consumer-pc" "$TMP/consumer-cmake/consumer")
for c in "${CONSUMERS[@]}"; do
  e2e_expect_eq "$(basename "$c") links the installed libdpm.so.0" "$LIB/libdpm.so.0" \
    "$(ldd "$c" | sed -n 's/^\s*libdpm\.so\.0 => \(\S*\) .*/\1/p')"
  e2e_expect_eq "$(basename "$c"), no daemon: dpm_socket() fails with ENETDOWN at DPM_SOCKET" \
    "ENETDOWN at $TMP/nobody.sock" "$(DPM_SOCKET=$TMP/nobody.sock "$c" down 2>&1)"
done

echo "--- README \"Install\": its pkg-config and find_package lines, pasted ---"
# docs/api.md's example program, built with the README's lines exactly as written.
install_section=$(awk '/^## Install/ {on = 1; next} /^## / {on = 0} on' "$E2E_ROOT/README.md")
awk '/^## Example/ {on = 1; next} /^## / {on = 0} on' "$E2E_ROOT/docs/api.md" |
  awk '/^```c$/ {on = 1; next} /^```$/ {if (on) exit} on' >"$TMP/example.c"
cc_line=$(sed -n 's/^    \(cc .*\)$/\1/p' <<<"$install_section" | head -n 1)
cmake_lines=$(sed -n 's/^    \(find_package(.*\|target_link_libraries(.*\)$/\1/p' <<<"$install_section")
[ -n "$cc_line" ] && [ "$(wc -l <<<"$cmake_lines")" = 2 ] && [ -s "$TMP/example.c" ] ||
  e2e_fail "README's Install section has no cc line and find_package/target_link_libraries pair, or docs/api.md no example"
echo "  $cc_line"
(cd "$TMP" && bash -c "$cc_line") >"$TMP/readme-cc.log" 2>&1 || { cat "$TMP/readme-cc.log"; e2e_fail "README's cc line failed"; }
mkdir -p "$TMP/readme-cmake"
cp "$TMP/example.c" "$TMP/readme-cmake/"
printf 'cmake_minimum_required(VERSION 3.22)\nproject(example C)\nadd_executable(example example.c)\n%s\n' \
  "$cmake_lines" >"$TMP/readme-cmake/CMakeLists.txt"
cmake -S "$TMP/readme-cmake" -B "$TMP/readme-cmake/build" -DCMAKE_PREFIX_PATH="$PREFIX" >"$TMP/readme-cmake.log" 2>&1 &&
  cmake --build "$TMP/readme-cmake/build" >>"$TMP/readme-cmake.log" 2>&1 ||
  { cat "$TMP/readme-cmake.log"; e2e_fail "README's find_package lines failed"; }
for how in pkg-config find_package; do
  c=$TMP/example
  [ "$how" = pkg-config ] || c=$TMP/readme-cmake/build/example
  rc=0
  out=$(LD_LIBRARY_PATH=$LIB DPM_SOCKET=$TMP/nobody.sock "$c" 2>&1) || rc=$?
  e2e_expect_eq "the example built with README's $how lines starts and finds no daemon" \
    "1 dpm_socket: Network is down" "$rc $out"
done

echo "--- through the installed dpmd: two instances on a virtual link ---"
DPMD=$PREFIX/sbin/dpmd  # e2e_dpmd starts $DPMD
DPMCAT=$PREFIX/bin/dpm-cat
e2e_virtual_pair
for i in 0 1; do
  c=${CONSUMERS[$i]}
  port=$((7100 + i))
  e2e_bg - "$DPMCAT" --socket "$API_B" -l "$port" </dev/null >"$TMP/received-$i" 2>"$TMP/listener-$i.err"
  listener=$LAST_PID
  e2e_wait_for 10 grep -q '^dpm-cat: local' "$TMP/listener-$i.err" || e2e_fail "listener on B:$port did not start"
  text="hello from $(basename "$c") $RANDOM"
  out=$(DPM_SOCKET=$API_A timeout 20 "$c" send 10.77.9.2 "$port" "$text" 2>&1) || echo "  $(basename "$c") exited with $?: $out"
  e2e_check "$(basename "$c") got a name from A: local 10.77.9.1:PORT peer 10.77.9.2:$port ($out)" \
    grep -Eq "^local 10\.77\.9\.1:[0-9]+ peer 10\.77\.9\.2:$port\$" <<<"$out"
  e2e_wait_for 10 bash -c "! kill -0 $listener" || echo "  listener on B:$port still running"
  e2e_expect_eq "the installed dpm-cat on B received the text" "$text" "$(cat "$TMP/received-$i")"
done
e2e_check "A holds no socket afterwards" e2e_wait_for 5 e2e_idle "$API_A"

echo "--- the installed dpm-run ---"
RUN=$PREFIX/bin/dpm-run
e2e_check "dpm-run --help shows the usage" bash -c "'$RUN' --help | grep -q 'dpm-run \[OPTIONS\] \[--\] PROGRAM'"
e2e_expect_eq "dpm-run --version" "dpm-run $VERSION" "$("$RUN" --version)"
PRELOAD=$LIB/libdpm-preload.so
rc=0
"$RUN" --api-socket "$TMP/nobody.sock" -- touch "$TMP/ran" >"$TMP/run.out" 2>"$TMP/run.err" || rc=$?
e2e_expect_eq "dpm-run with no daemon exits 1" 1 "$rc"
e2e_expect_eq "... saying in one line what is missing" \
  "dpm-run: no dpmd answers at $TMP/nobody.sock (start 'dpmd client --api-socket $TMP/nobody.sock', or pass --api-socket)" \
  "$(cat "$TMP/run.err")"
e2e_check "... without running the program" test ! -e "$TMP/ran"
abstract=@dpm-install-test-$$-nobody
rc=0
"$RUN" --api-socket "$abstract" -- touch "$TMP/ran" 2>"$TMP/run.err" || rc=$?
e2e_expect_eq "dpm-run with no daemon at an abstract name: exit 1 and one line" \
  "1 dpm-run: no dpmd answers at $abstract (start 'dpmd client' in this network namespace, or pass --api-socket)" \
  "$rc $(cat "$TMP/run.err")"
e2e_expect_eq "dpm-run hands the program the contract's variables, the library first in LD_PRELOAD" \
  "$API_A|static|1|127.0.0.0/8,10.0.0.0/8,192.168.0.0/16|$PRELOAD:$LIB/libdpm.so" \
  "$(LD_PRELOAD=$LIB/libdpm.so "$RUN" --api-socket "$API_A" --tuple static --fixed-ports \
     --kernel-net 127.0.0.0/8,10.0.0.0/8 --kernel-net 192.168.0.0/16 -- printenv DPM_SOCKET DPM_TUPLE \
     DPM_FIXED_PORTS DPM_KERNEL_NETS LD_PRELOAD | paste -sd '|')"
e2e_expect_eq "a relative DPM_PRELOAD_LIBRARY goes into LD_PRELOAD absolute (children may chdir)" "$PRELOAD" \
  "$(cd "$TMP" && DPM_PRELOAD_LIBRARY=prefix/$LIBDIR/../$LIBDIR/libdpm-preload.so LD_PRELOAD= \
     "$RUN" --api-socket "$API_A" -- printenv LD_PRELOAD)"
status_of() { local rc=0; "$RUN" --api-socket "$API_A" "$@" >/dev/null 2>"$TMP/status.err" || rc=$?; echo "$rc $(cat "$TMP/status.err")"; }
e2e_expect_eq "the program's exit status is dpm-run's" "7 " "$(status_of -- sh -c 'exit 7')"
e2e_expect_eq "no such program: 127" "127 dpm-run: cannot run $TMP/nosuch: No such file or directory" "$(status_of -- "$TMP/nosuch")"
touch "$TMP/not-executable"
e2e_expect_eq "a program that cannot be run: 126" "126 dpm-run: cannot run $TMP/not-executable: Permission denied" \
  "$(status_of -- "$TMP/not-executable")"
e2e_expect_eq "a --kernel-net with host bits set: 2" \
  "2 dpm-run: bad --kernel-net '10.1.0.0/8' has host bits set (the network is 10.0.0.0/8)" \
  "$(status_of --kernel-net 10.1.0.0/8 -- true)"
# A dpm-run whose prefix has no preload library says where it looked.
mkdir -p "$TMP/lonely/bin" "$TMP/lonely/$LIBDIR"
cp "$RUN" "$TMP/lonely/bin/"
cp -P "$LIB"/libdpm.so* "$TMP/lonely/$LIBDIR/"
rc=0
env -u DPM_PRELOAD_LIBRARY "$TMP/lonely/bin/dpm-run" --api-socket "$API_A" -- true 2>"$TMP/lonely.err" || rc=$?
e2e_expect_eq "no preload library in the prefix: exit 1 and one line naming where it looked" \
  "1 dpm-run: cannot find libdpm-preload.so (looked at $TMP/lonely/bin/libdpm-preload.so and\
 $TMP/lonely/bin/../$LIBDIR/libdpm-preload.so; set DPM_PRELOAD_LIBRARY to its path)" \
  "$rc $(cat "$TMP/lonely.err")"
# The hook from the prefix: bash's /dev/tcp connect goes through A to the listener on B
# (dpm-run(1)'s example without root).
e2e_bg - "$DPMCAT" --socket "$API_B" -l 7102 </dev/null >"$TMP/received-run" 2>"$TMP/listener-run.err"
e2e_wait_for 10 grep -q '^dpm-cat: local' "$TMP/listener-run.err" || e2e_fail "listener on B:7102 did not start"
text="hello through the hook $RANDOM"
timeout 20 "$RUN" --api-socket "$API_A" -- bash -c "echo '$text' >/dev/tcp/10.77.9.2/7102" || echo "  dpm-run bash exited with $?"
e2e_wait_for 10 grep -qF "$text" "$TMP/received-run" || true
e2e_expect_eq "an unmodified bash through the installed dpm-run reached B" "$text" "$(cat "$TMP/received-run")"
e2e_check "B saw the connection come from A (10.77.9.1)" \
  grep -Eq '^dpm-cat: local 10\.77\.9\.2:7102 peer 10\.77\.9\.1:[0-9]+$' "$TMP/listener-run.err"
e2e_finish
