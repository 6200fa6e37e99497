#!/usr/bin/env bash
# e2e.config_file (no root): `dpmd client --config FILE` takes the same settings as the
# flags, from a [client] section; flags and file work in either order; a bad value in the
# file is refused with one line.
source "$(dirname "$0")/lib.sh"
e2e_init config_file

cat >"$TMP/a.toml" <<CONF
[client]
virtual = "$TMP/a.link,$TMP/b.link"
address = "10.77.9.1/24"
gateway = ""
mtu = 9000
api-socket = "$TMP/a.sock"
max-sockets = 3
CONF
e2e_bg - "$DPMD" client --config "$TMP/a.toml" >"$TMP/a.log" 2>&1
e2e_wait_for 10 grep -q "dpmd: ready" "$TMP/a.log" || { cat "$TMP/a.log"; e2e_fail "dpmd with --config did not start"; }
e2e_expect_eq "address from the file" "10.77.9.1/24" "$(e2e_json "$TMP/a.sock" 's["link"]["address"]')"
e2e_expect_eq "MTU from the file" "9000" "$(e2e_json "$TMP/a.sock" 's["link"]["mtu"]')"
e2e_expect_eq "link from the file" "virtual:$TMP/a.link" "$(e2e_json "$TMP/a.sock" 's["link"]["name"]')"

# max-sockets = 3 from the file: a fourth socket is refused (ENOBUFS) by the daemon.
for i in 1 2 3; do
  e2e_bg - "$DPMCAT" --socket "$TMP/a.sock" -u -l $((6000 + i)) </dev/null >/dev/null 2>"$TMP/u$i.err"
done
e2e_wait_for 10 bash -c "[ \"\$(\"$DPMD\" status --api-socket $TMP/a.sock --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"sockets\"]))')\" = 3 ]" ||
  e2e_fail "three UDP listeners did not come up"
out=$("$DPMCAT" --socket "$TMP/a.sock" -u -l 6004 </dev/null 2>&1 >/dev/null || true)
e2e_check "the fourth socket is refused with ENOBUFS (max-sockets from the file): '$out'" \
  grep -q "No buffer space available" <<<"$out"

cat >"$TMP/bad.toml" <<CONF
[client]
virtual = "$TMP/c.link,$TMP/d.link"
mtu = 10
CONF
rc=0
err=$("$DPMD" --config "$TMP/bad.toml" client 2>&1 >/dev/null) || rc=$?
e2e_check "a bad MTU in the file exits non-zero ($rc)" test "$rc" -ne 0
e2e_expect_eq "with one line on stderr" 1 "$(printf '%s\n' "$err" | grep -c .)"
e2e_check "that names the option: '$err'" grep -q -- "mtu" <<<"$err"
# A misspelled key is an error naming the key and its line, not a setting left at its default.
cat >"$TMP/typo.toml" <<CONF
[client]
virtual = "$TMP/e.link,$TMP/f.link"
# the next key is misspelled
adress = "10.77.9.5/24"
CONF
rc=0
err=$("$DPMD" client --config "$TMP/typo.toml" 2>&1 >/dev/null) || rc=$?
e2e_expect_eq "a misspelled key exits 2" 2 "$rc"
e2e_expect_eq "  with one line on stderr" 1 "$(printf '%s\n' "$err" | grep -c .)"
e2e_check "  naming the key, its line and the option meant: '$err'" \
  grep -q "typo.toml:4: unknown key 'adress' in \[client\] (did you mean 'address'?)" <<<"$err"
# A command's option outside its section would be ignored by the parser: refused too.
printf 'address = "10.77.9.5/24"\n' >"$TMP/nosection.toml"
rc=0
err=$("$DPMD" client --config "$TMP/nosection.toml" 2>&1 >/dev/null) || rc=$?
e2e_expect_eq "a key outside its section exits 2" 2 "$rc"
e2e_check "  and says where it belongs: '$err'" grep -q "put it under \[client\]" <<<"$err"
e2e_finish
