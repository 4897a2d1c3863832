#!/usr/bin/env bash
# Local demo on a fresh machine: a source database, a Kafka-protocol broker, the daemon, a few
# live changes, and the events they produced.
#   scripts/demo.sh            PostgreSQL 15 with logical WAL, connectors/demo-postgres.toml
#   scripts/demo.sh mysql      Oracle MySQL 9.7 (scripts/mysql.sh: a chroot made once, about a
#                              minute and 800 MB), connectors/demo-mysql.toml
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCE=${1:-postgres}
case "$SOURCE" in postgres|mysql) ;; *) echo "usage: $0 [postgres|mysql]" >&2; exit 2 ;; esac
scripts/deps.sh
echo "demo: building cdcd..."
cargo build --bins --quiet
STATE=${CDCD_DEMO_DIR:-/tmp/cdcd-demo}
rm -rf "$STATE/state"; mkdir -p "$STATE/state"
[ "$(id -u)" = 0 ] && chmod 755 "$STATE"
if [ "$SOURCE" = postgres ]; then
  BASE=$(scripts/pg.sh start "$STATE/pg" 54331 logical)
  export PGPASSWORD=cdcd
  sql() { psql -h 127.0.0.1 -p 54331 -U cdcd -qtA -d shop; }
  psql -h 127.0.0.1 -p 54331 -U cdcd -qtA -d postgres \
    -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database='shop'" \
    -c "DROP DATABASE IF EXISTS shop" -c "CREATE DATABASE shop" >/dev/null
  stop_source() { scripts/pg.sh stop "$STATE/pg"; }
  export CDCD_DEMO_PG_URL="$BASE/shop"
  CONNECTOR=connectors/demo-postgres.toml SCHEMA=public SERIAL="serial" BIGSERIAL="bigserial" TS="timestamptz"
  URL_SHOWN=$CDCD_DEMO_PG_URL
else
  export CDCD_DEMO_MYSQL_URL=$(scripts/mysql.sh start "$STATE/mysql" 23310)
  MYROOT=${CDCD_MYSQL_ROOT:-${CDCD_CACHE:-$HOME/.cache/cdcd}/mysql-sid}
  my() { chroot "$MYROOT" mysql --no-defaults -h127.0.0.1 -P23310 -ucdcd -pcdcd "$@" 2> >(grep -v "Using a password" >&2); }
  my -e "DROP DATABASE IF EXISTS shop; CREATE DATABASE shop"
  sql() { my shop; }
  stop_source() { scripts/mysql.sh stop "$STATE/mysql"; }
  CONNECTOR=connectors/demo-mysql.toml SCHEMA=shop SERIAL="int AUTO_INCREMENT" BIGSERIAL="bigint AUTO_INCREMENT" TS="timestamp"
  URL_SHOWN=$CDCD_DEMO_MYSQL_URL
fi
sql <<SQL
CREATE TABLE customers (id $SERIAL PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE orders (id $BIGSERIAL PRIMARY KEY, customer_id int REFERENCES customers (id), total numeric(10,2), placed_at $TS DEFAULT CURRENT_TIMESTAMP);
INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com'), ('Linus', 'linus@example.com');
SQL

./target/debug/cdcd-mock-broker > "$STATE/broker.out" &
BROKER=$!
trap 'kill $BROKER 2>/dev/null || true; [ -n "${CDCD:-}" ] && kill $CDCD 2>/dev/null || true; stop_source' EXIT
for _ in $(seq 50); do grep -q bootstrap= "$STATE/broker.out" && break; sleep 0.1; done
export CDCD_DEMO_BROKERS=$(sed -n 's/^bootstrap=//p' "$STATE/broker.out")
export CDCD_DEMO_STATE="$STATE/state"
echo "demo: $SOURCE $URL_SHOWN, broker $CDCD_DEMO_BROKERS"

./target/debug/cdcd check --config "$CONNECTOR"
./target/debug/cdcd run --config "$CONNECTOR" 2> "$STATE/cdcd.log" &
CDCD=$!
for _ in $(seq 100); do grep -q streaming "$STATE/cdcd.log" && break; sleep 0.1; done
echo "demo: daemon streaming (log: $STATE/cdcd.log); making live changes"
sql <<'SQL'
INSERT INTO orders (customer_id, total) VALUES (1, 19.99), (2, 5.00);
UPDATE customers SET email = 'ada@lovelace.org' WHERE id = 1;
BEGIN; DELETE FROM orders WHERE customer_id = 2; DELETE FROM customers WHERE id = 2; COMMIT;
ALTER TABLE customers ADD COLUMN vip boolean DEFAULT false;
INSERT INTO customers (name, vip) VALUES ('Grace', true);
SQL
echo "demo: events in Kafka (read back with an independent client):"
python3 tests/support/read_topics.py --bootstrap "$CDCD_DEMO_BROKERS" --topic "demo.$SCHEMA.customers" --topic "demo.$SCHEMA.orders" --min 10 --idle 3 --timeout 60 \
 | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    v = json.loads(r["value"]) if r["value"] else None
    what = "tombstone" if v is None else "op=%s before=%s after=%s" % (v["op"], json.dumps(v["before"]), json.dumps(v["after"]))
    print("%-22s key=%-10s %s" % (r["topic"], r["key"], what))'
kill -TERM $CDCD; wait $CDCD || true; CDCD=
echo "demo: stopped cleanly; checkpoint:"; cat "$STATE/state/demo"*/checkpoint.json
