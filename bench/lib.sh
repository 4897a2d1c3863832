# Shared pieces of the backlog benchmarks. Source from the repo root after setting STATE (a
# scratch directory holding bench.toml, the checkpoint under state/, and logs). A script that
# drains several connectors sets CONFIG (the connector file) and CKPT (its checkpoint folder)
# before each prime_checkpoint / drain.

now() { date +%s.%N; }
secs() { python3 -c "print($2 - $1)"; }

# Starts cdcd-mock-broker; sets BOOT (its bootstrap address). The broker, and any cdcd still
# running, are killed when the script exits.
start_broker() {
  ./target/release/cdcd-mock-broker > "$STATE/broker.out" &
  BROKER_PID=$!
  CDCD_PID=
  trap 'kill $BROKER_PID 2>/dev/null || true; [ -n "$CDCD_PID" ] && kill $CDCD_PID 2>/dev/null || true' EXIT
  for _ in $(seq 50); do grep -q bootstrap= "$STATE/broker.out" && break; sleep 0.1; done
  BOOT=$(sed -n 's/^bootstrap=//p' "$STATE/broker.out")
}

# Runs cdcd until it has written its first checkpoint (so its slot / binlog position exists),
# then stops it: everything written afterwards is the backlog.
prime_checkpoint() {
  ./target/release/cdcd run --config "${CONFIG:-$STATE/bench.toml}" 2> "$STATE/cdcd-setup.log" &
  CDCD_PID=$!
  for _ in $(seq 100); do [ -s "${CKPT:-$STATE/state}/checkpoint.json" ] && break; sleep 0.1; done
  kill -TERM $CDCD_PID; wait $CDCD_PID || true; CDCD_PID=
}

# Runs cdcd until the command "$1" succeeds (the backlog is confirmed drained), sampling its
# peak RSS. Sets cdcd_secs, peak (kB, VmHWM) and delivered, and fails unless exactly $ROWS
# events were delivered.
drain() {
  local drained=$1 t0 t1 hwm
  peak=0
  t0=$(now)
  ./target/release/cdcd run --config "${CONFIG:-$STATE/bench.toml}" 2> "$STATE/cdcd.log" &
  CDCD_PID=$!
  while true; do
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$CDCD_PID/status 2>/dev/null || echo 0)
    [ "${hwm:-0}" -gt "$peak" ] && peak=$hwm
    "$drained" && break
    kill -0 $CDCD_PID 2>/dev/null || { echo "cdcd exited early:"; cat "$STATE/cdcd.log"; exit 1; }
    sleep 0.05
  done
  t1=$(now)
  hwm=$(awk '/VmHWM/ {print $2}' /proc/$CDCD_PID/status); [ "$hwm" -gt "$peak" ] && peak=$hwm
  kill -TERM $CDCD_PID; wait $CDCD_PID || true; CDCD_PID=
  cdcd_secs=$(secs "$t0" "$t1")
  delivered=$(sed -n 's/.*stopped cleanly.*events=\([0-9]*\).*/\1/p' "$STATE/cdcd.log")
  [ "${delivered:-0}" = "$ROWS" ] || { echo "bench: cdcd delivered ${delivered:-?} events, expected $ROWS"; exit 1; }
}

# The [sink] and [checkpoint] part of a bench connector file: the broker, checkpoint in $STATE/state.
# $1 (optional): more [sink] keys and sections, written before [checkpoint].
toml_tail() {
  printf '[sink]\ntype = "kafka"\nbrokers = "%s"\n%s\n[checkpoint]\npath = "%s"\ninterval_ms = 100\n' \
    "$BOOT" "${1:-}" "${CKPT:-$STATE/state}"
}

# Writes $ROWS inserts into table `bench` of database `bench`, in transactions of $TXN_ROWS rows,
# through the caller's `psql` function; sets END_LSN to the WAL position after them.
pg_write_backlog() {
  echo "bench: writing $ROWS row changes in transactions of $TXN_ROWS rows..."
  psql -d bench -c "DO \$\$ BEGIN FOR i IN 0..($ROWS/$TXN_ROWS - 1) LOOP
    INSERT INTO bench SELECT g, g % 1000, 'note ' || g, now(), g / 100.0 FROM generate_series(i*$TXN_ROWS + 1, (i+1)*$TXN_ROWS) g;
    COMMIT; END LOOP; END \$\$;"
  END_LSN=$(psql -d bench -c "SELECT pg_current_wal_insert_lsn()")
}
