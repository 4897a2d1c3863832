# Shared pieces of the backlog benchmarks. Source from the repo root after setting STATE (a
# scratch directory holding bench.toml, the checkpoint under state/, and logs). A script that
# drains several connectors sets CONFIG (the connector file) and CKPT (its checkpoint folder)
# before each prime_checkpoint / drain.

now() { date +%s.%N; }
# CPU seconds (user + system, all threads) process $1 has used so far.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
secs() { python3 -c "print($2 - $1)"; }
# CPU seconds the whole machine has spent busy (all cores, every process) since boot: the
# difference over a run, divided by its length, is how many cores it kept busy.
machine_busy() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit}' /proc/stat
}
# Cores kept busy between machine_busy readings $1 and $2 over $3 seconds.
cores() { python3 -c "print('%.2f' % (($2 - $1) / $3))"; }

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

# Runs cdcd until the command "$1" succeeds (the backlog is confirmed drained). Sets cdcd_secs,
# peak (kB, VmHWM: the kernel keeps the high-water mark, so it is read once at the end), cpu
# (cdcd's CPU seconds, all threads) and delivered, and fails unless exactly $ROWS events were
# delivered. The check runs every 20 ms and must not start a process per check: on 2 cores, a
# psql or python3 every 50 ms took a quarter of the machine away from the server and cdcd.
drain() {
  local drained=$1 t0 t1 tick
  exec {tick}<> <(:) # read -t on it is a sleep without a process
  t0=$(now)
  ./target/release/cdcd run --config "${CONFIG:-$STATE/bench.toml}" 2> "$STATE/cdcd.log" &
  CDCD_PID=$!
  until "$drained"; do
    kill -0 $CDCD_PID 2>/dev/null || { echo "cdcd exited early:"; cat "$STATE/cdcd.log"; exit 1; }
    read -rt 0.02 -u "$tick" || true
  done
  exec {tick}<&-
  t1=$(now)
  peak=$(awk '/VmHWM/ {print $2}' /proc/$CDCD_PID/status)
  cpu=$(cpu_secs $CDCD_PID)
  kill -TERM $CDCD_PID; wait $CDCD_PID || true; CDCD_PID=
  cdcd_secs=$(secs "$t0" "$t1")
  delivered=$(sed -n 's/.*stopped cleanly.*events=\([0-9]*\).*/\1/p' "$STATE/cdcd.log")
  [ "${delivered:-0}" = "$ROWS" ] || { echo "bench: cdcd delivered ${delivered:-?} events, expected $ROWS"; exit 1; }
}

# Whether file $1 matches the bash regex $2, with builtins only (a drain check).
file_matches() {
  local text=
  [ -r "$1" ] && { read -r -d '' text < "$1" || true; }
  [[ $text =~ $2 ]]
}

# Starts one background session that ends once slot $1 has confirmed LSN $2; it polls inside
# the server, so checking it costs no process. `slot_drained` is the matching drain check.
# Needs the caller's `psql` function.
wait_slot() {
  psql -d postgres -c "DO \$\$ BEGIN
    WHILE (SELECT confirmed_flush_lsn < '$2'::pg_lsn FROM pg_replication_slots WHERE slot_name = '$1') LOOP
      PERFORM pg_sleep(0.02);
    END LOOP; END \$\$" >/dev/null &
  SLOT_WAITER=$!
}
slot_drained() { ! kill -0 "$SLOT_WAITER" 2>/dev/null; }

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

# The client programs of the PostgreSQL whose data directory is $1 (scripts/pg.sh records its
# binaries there), so each major is measured with its own psql and pg_recvlogical; sets PGBIN.
pg_tools() { PGBIN=$(cat "$1/.cdcd-bin"); }
pg_tool() { env LD_LIBRARY_PATH="$(dirname "$PGBIN")/lib" "$PGBIN/$1" "${@:2}"; }
