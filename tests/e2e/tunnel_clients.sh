#!/usr/bin/env bash
# e2e.tunnel_clients (root): unmodified database clients reach real database servers in another
# private network by pseudo DNS name (docs/tunnel.md), across two `dpmd gateway`s. PostgreSQL and
# Redis run in network A (srva, 10.77.3.2); `psql` (libpq) and `redis-cli` (hiredis) run in
# network B under `dpm-run --tunnel`. Both libraries resolve with getaddrinfo and connect
# non-blocking with a poll for the answer, unlike curl's and ssh's paths.
# Asserts: psql runs a query and writes, reads back and sums a table; a 3.9 MB result comes back
# byte-identical to the same query run inside A; the server sees the client at the proxy's side
# of A (10.77.3.1); redis-cli SETs and GETs a value, a 1 MB value comes back intact, and Redis
# lists the client at 10.77.3.1; each tunneled connect() to a database whose server is down
# fails with ECONNREFUSED in the client's own words.
source "$(dirname "$0")/tunnel_lib.sh"
e2e_require_root tunnel_clients
e2e_require_cmd psql redis-cli redis-server openssl
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PGBIN/postgres" ] || { echo "SKIP: the PostgreSQL server is not installed (scripts/setup.sh installs it)"; exit $E2E_SKIP; }
e2e_require_preload
e2e_init tunnel_clients

tunnel_topology
tunnel_pki
tunnel_access

echo "--- PostgreSQL and Redis in network A ---"
# postgres refuses to run as root: its data directory belongs to the postgres user.
PGDATA=$TMP/pg
install -d -o postgres -g postgres -m 0700 "$PGDATA"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA/data" --auth=trust -U postgres >"$TMP/initdb.log" 2>&1 ||
  { cat "$TMP/initdb.log" >&2; e2e_fail "initdb failed"; }
# Network A's hosts may connect without a password (initdb's --auth covers loopback only).
echo "host all all 10.77.0.0/16 trust" >>"$PGDATA/data/pg_hba.conf"
e2e_bg "$SRVA" runuser -u postgres -- "$PGBIN/postgres" -D "$PGDATA/data" -c listen_addresses=10.77.3.2 \
  -c port=5432 -c unix_socket_directories="$PGDATA" -c fsync=off -c log_connections=on \
  >"$TMP/postgres.log" 2>&1
PG_PID=$LAST_PID
e2e_check "postgres accepts connections in network A" \
  e2e_wait_for 30 ip netns exec "$SRVA" "$PGBIN/pg_isready" -q -h 10.77.3.2 -p 5432
e2e_bg "$SRVA" redis-server --bind 10.77.3.2 --port 6379 --save '' --appendonly no --protected-mode no \
  --unixsocket '' --logfile "$TMP/redis.log"
e2e_check "redis accepts connections in network A" \
  e2e_wait_for 10 ip netns exec "$SRVA" redis-cli -h 10.77.3.2 -p 6379 PING

tunnel_start_server
# "gone": a port in A where nothing listens.
tunnel_start_proxy --service pg=10.77.3.2:5432 --service kv=10.77.3.2:6379 --service gone=10.77.3.2:5433
e2e_check "the proxy's session comes up" e2e_wait_for 20 tunnel_up "$SP_CTL"
e2e_check "the server publishes pg.alpha.dpm.internal" e2e_wait_for 10 tunnel_published pg.alpha.dpm.internal
tunnel_start_redirector bob
e2e_check "the redirector's session comes up" e2e_wait_for 20 tunnel_up "$RD_CTL"

PG="host=pg.alpha.dpm.internal port=5432 user=postgres dbname=postgres connect_timeout=20"
echo "--- psql by pseudo name ---"
rc=0
out=$(timeout 60 ip netns exec "$LANB" "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- \
  psql "$PG" -XAt -c "select 'answer', 6 * 7" 2>"$TMP/psql.err") || rc=$?
cat "$TMP/psql.err"
e2e_expect_eq "psql ran a query" "0 answer|42" "$rc $out"
out=$(timeout 60 ip netns exec "$LANB" "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- psql "$PG" -XAtq \
  -c "create table t (i int, v text)" -c "insert into t select i, md5(i::text) from generate_series(1, 20000) i" \
  -c "select count(*), sum(i) from t" -c "select host(inet_client_addr())" 2>&1) || true
echo "$out" | sed 's/^/  /'
e2e_expect_eq "a table written and read back through the tunnel" "20000|200010000" "$(sed -n 1p <<<"$out")"
e2e_expect_eq "postgres saw the client at the proxy's side of network A" 10.77.3.1 "$(sed -n 2p <<<"$out")"
# 100,000 md5 rows, about 3.9 MB: the same bytes through the tunnel as from inside A.
Q="select i, md5(i::text) from generate_series(1, 100000) i"
timeout 60 ip netns exec "$LANB" "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- psql "$PG" -XAt -c "$Q" \
  >"$TMP/rows-tunnel.txt" 2>"$TMP/psql-rows.err" || cat "$TMP/psql-rows.err"
ip netns exec "$SRVA" psql "host=10.77.3.2 port=5432 user=postgres dbname=postgres" -XAt -c "$Q" >"$TMP/rows-local.txt" || true
echo "  $(wc -c <"$TMP/rows-tunnel.txt") bytes through the tunnel, $(wc -c <"$TMP/rows-local.txt") inside A"
e2e_expect_eq "a 3.9 MB result is byte-identical through the tunnel" "$(sha "$TMP/rows-local.txt")" "$(sha "$TMP/rows-tunnel.txt")"

echo "--- redis-cli by pseudo name ---"
rcli() { timeout 30 ip netns exec "$LANB" "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- redis-cli -h kv.alpha.dpm.internal -p 6379 "$@"; }
e2e_expect_eq "SET" OK "$(rcli SET greeting hello-from-b 2>&1)"
e2e_expect_eq "GET returns the value" hello-from-b "$(rcli GET greeting 2>&1)"
head -c 786432 /dev/urandom | base64 -w 0 >"$TMP/big.txt"  # 1 MiB of text
e2e_expect_eq "SET of a 1 MiB value (from stdin)" OK "$(rcli -x SET big <"$TMP/big.txt" 2>&1)"
rcli --raw GET big 2>/dev/null | head -c "$(wc -c <"$TMP/big.txt")" >"$TMP/big-back.txt"
e2e_expect_eq "the 1 MiB value comes back intact" "$(sha "$TMP/big.txt")" "$(sha "$TMP/big-back.txt")"
out=$(rcli CLIENT INFO 2>&1)
echo "  $out"
e2e_check "redis lists the client at the proxy's side of network A" grep -q ' addr=10\.77\.3\.1:' <<<" $out"

echo "--- a database that is down: the client's own error ---"
rc=0
out=$(timeout 30 ip netns exec "$LANB" "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- \
  psql "host=gone.alpha.dpm.internal port=5433 user=postgres connect_timeout=20" -XAt -c "select 1" 2>&1) || rc=$?
echo "  $out"
e2e_check "psql reports the refused connection (exit $rc)" grep -q "Connection refused" <<<"$out"
out=$(timeout 30 ip netns exec "$LANB" "$DPMRUN" --tunnel --api-socket "$RD_CTL" -- \
  redis-cli -h gone.alpha.dpm.internal -p 5433 PING 2>&1) || true
echo "  $out"
e2e_check "redis-cli reports the refused connection" grep -q "Connection refused" <<<"$out"

e2e_check "postgres is still running" kill -0 "$PG_PID"
e2e_finish
