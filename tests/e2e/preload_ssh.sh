#!/usr/bin/env bash
# e2e.preload_ssh: OpenSSH's ssh under dpm-run logs in to an sshd in "wan" and runs a command.
# The host key, the client key and authorized_keys are made in $TMP with ssh-keygen; sshd runs
# with only $TMP/sshd_config (and -o options), so nothing under /etc/ssh is used, and ssh with
# -F /dev/null and a known_hosts file in $TMP that holds the host key (strict checking).
# ConnectTimeout makes ssh connect non-blocking and wait with poll().
# Checks: the command's output is exactly "hello-from-wan"; sshd logged the login from the
# stack's address 10.77.1.2; the daemon is idle afterwards. The same ssh from the kernel in
# "host" is the control (sshd sees 198.51.100.1).
source "$(dirname "$0")/lib.sh"
e2e_require_root preload_ssh
e2e_require_cmd ssh ssh-keygen /usr/sbin/sshd
e2e_init preload_ssh
e2e_topology

e2e_sshd "$WAN" 198.51.100.10:2222 "[198.51.100.10]:2222"

SSH=(ssh -F /dev/null -i "$TMP/id" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="$TMP/known_hosts"
  -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=20 -p 2222 root@198.51.100.10)

# login_from SOURCE : sshd logged an accepted public-key login from SOURCE.
login_from() { grep -Eq "Accepted publickey for root from ${1//./\\.} port [0-9]+" "$TMP/sshd.log"; }

echo "--- control: ssh from the kernel in \"host\" ---"
rc=0
out=$(timeout 60 ip netns exec "$HOST" "${SSH[@]}" echo hello-from-wan 2>"$TMP/k-ssh.err") || rc=$?
sed 's/^/  /' "$TMP/k-ssh.err"
e2e_expect_eq "kernel: ssh ran the command in wan" "0 hello-from-wan" "$rc $out"
e2e_check "kernel: sshd saw the login from 198.51.100.1" e2e_wait_for 5 login_from 198.51.100.1

e2e_require_preload
API=$TMP/api.sock
e2e_dpmd "$HOST" "$API" --tun dpm0 --address 10.77.1.2/24 --gateway 10.77.1.1 --host-address 10.77.1.1/24

echo "--- ssh under dpm-run ---"
rc=0
out=$(timeout 60 ip netns exec "$HOST" "$DPMRUN" --api-socket "$API" -- "${SSH[@]}" echo hello-from-wan 2>"$TMP/d-ssh.err") || rc=$?
sed 's/^/  /' "$TMP/d-ssh.err"
e2e_expect_eq "dpm-run: ssh ran the command in wan" "0 hello-from-wan" "$rc $out"
e2e_check "dpm-run: sshd saw the login from the stack (10.77.1.2)" e2e_wait_for 5 login_from 10.77.1.2
grep -E 'Accepted|Connection from|Received disconnect' "$TMP/sshd.log" | sed 's/^/  sshd: /'
e2e_check "the daemon holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API"
e2e_finish
