#!/usr/bin/env bash
# e2e.flow_control (no root): a slow reader stalls its sender end to end, and the daemons'
# memory stays bounded. On a virtual-link pair, dpm-cat on A pushes 320 MB to e2e_slow_reader
# (libdpm) on B, which first reads nothing for 4 s, then reads 24 MB at 8 MB/s, then the
# rest at full speed. Checks: while the reader pauses, the sender stops taking input (its
# stdin offset stands still, at a bounded amount); both daemons' VmRSS stay under 64 MiB for
# the whole run; the data arrives intact.
source "$(dirname "$0")/lib.sh"
e2e_init flow_control
[ -x "$E2E_BIN/e2e_slow_reader" ] || e2e_fail "no $E2E_BIN/e2e_slow_reader (build the tests)"
e2e_virtual_pair

RSS_LIMIT_KB=$((64 * 1024))
STALL_LIMIT=$((32 * 1024 * 1024))  # bytes the sender may get rid of while nobody reads
SIZE=$((320 * 1024 * 1024))
PAUSE=4
head -c $SIZE /dev/urandom >"$TMP/data"
want=$(sha "$TMP/data")
echo "  idle RSS: A $(vmrss_kb "$DPMD_A") KiB, B $(vmrss_kb "$DPMD_B") KiB"

e2e_bg - "$E2E_BIN/e2e_slow_reader" --socket "$API_B" --port 7100 --pause $PAUSE --rate 8000000 \
  --slow-bytes $((24 * 1024 * 1024)) >"$TMP/received" 2>"$TMP/reader.err"
READER=$LAST_PID
e2e_wait_for 10 grep -q listening "$TMP/reader.err" || e2e_fail "slow_reader did not start"
e2e_bg - "$DPMCAT" --socket "$API_A" -N 10.77.9.2 7100 <"$TMP/data" >/dev/null 2>"$TMP/sender.err"
SENDER=$LAST_PID
e2e_wait_for 10 grep -q accepted "$TMP/reader.err" || e2e_fail "slow_reader did not accept"
t0=$SECONDS

# Sample both daemons' RSS and the sender's progress until the reader has everything.
max_a=0 max_b=0 pos_early=-1 pos_late=-1 samples=0
sender_pos() { awk '/^pos:/ {print $2}' "/proc/$SENDER/fdinfo/0" 2>/dev/null || echo -1; }
start=$(date +%s%N)
while kill -0 "$READER" 2>/dev/null; do
  ms=$((($(date +%s%N) - start) / 1000000))
  a=$(vmrss_kb "$DPMD_A"); b=$(vmrss_kb "$DPMD_B")
  [ "$a" -gt "$max_a" ] && max_a=$a
  [ "$b" -gt "$max_b" ] && max_b=$b
  # Two readings of the sender's input offset inside the reader's pause, 1 s apart.
  if [ $pos_early -lt 0 ] && [ $ms -ge 1500 ]; then pos_early=$(sender_pos); fi
  if [ $pos_late -lt 0 ] && [ $ms -ge 2500 ]; then pos_late=$(sender_pos); fi
  samples=$((samples + 1))
  [ $((SECONDS - t0)) -lt 90 ] || { echo "  transfer did not finish in 90 s"; break; }
  sleep 0.1
done
wait "$READER" 2>/dev/null || true
e2e_wait_for 10 bash -c "! kill -0 $SENDER" || echo "  sender still running"
elapsed=$((($(date +%s%N) - start) / 1000000))
sed 's/^/  /' "$TMP/reader.err"
sed 's/^/  /' "$TMP/sender.err"
echo "  $samples samples over $elapsed ms; sender offset during the pause: ${pos_early} then ${pos_late} bytes"
echo "  peak RSS: A $max_a KiB, B $max_b KiB (limit $RSS_LIMIT_KB KiB)"

e2e_check "while the reader pauses, the sender is stalled (offset unchanged over 1 s)" \
  test "$pos_early" -ge 0 -a "$pos_early" = "$pos_late"
e2e_check "while the reader pauses, at most $STALL_LIMIT bytes left the sender ($pos_late)" \
  test "$pos_late" -ge 0 -a "$pos_late" -le $STALL_LIMIT
e2e_check "A's peak RSS ($max_a KiB) stays under $RSS_LIMIT_KB KiB" test "$max_a" -gt 0 -a "$max_a" -lt $RSS_LIMIT_KB
e2e_check "B's peak RSS ($max_b KiB) stays under $RSS_LIMIT_KB KiB" test "$max_b" -gt 0 -a "$max_b" -lt $RSS_LIMIT_KB
e2e_check "the reader received all $SIZE bytes" grep -q "received $SIZE bytes" "$TMP/reader.err"
e2e_expect_eq "sha256 of received data equals sent data" "$want" "$(sha "$TMP/received")"
e2e_check "A holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API_A"
e2e_check "B holds no socket and no active pcb afterwards" e2e_wait_for 5 e2e_idle "$API_B"
e2e_finish
