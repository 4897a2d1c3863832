#!/usr/bin/env bash
# Local demo on a fresh machine: PostgreSQL with logical WAL, a Kafka-protocol broker, the
# daemon with connectors/demo-postgres.toml, a few live changes, and the events they produced.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
echo "demo: building cdcd..."
cargo build --bins --quiet
STATE=${CDCD_DEMO_DIR:-/tmp/cdcd-demo}
rm -rf "$STATE/state"; mkdir -p "$STATE/state"
[ "$(id -u)" = 0 ] && chmod 755 "$STATE"
BASE=$(scripts/pg.sh start "$STATE/pg" 54331 logical)
export PGPASSWORD=cdcd
sql() { psql -h 127.0.0.1 -p 54331 -U cdcd -qtA "$@"; }
sql -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database='shop'" >/dev/null
sql -d postgres -c "DROP DATABASE IF EXISTS shop" -c "CREATE DATABASE shop"
sql -d shop <<'SQL'
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers, total numeric(10,2), placed_at timestamptz DEFAULT now());
INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com'), ('Linus', 'linus@example.com');
SQL

./target/debug/cdcd-mock-broker > "$STATE/broker.out" &
BROKER=$!
trap 'kill $BROKER 2>/dev/null || true; [ -n "${CDCD:-}" ] && kill $CDCD 2>/dev/null || true; scripts/pg.sh stop "$STATE/pg"' EXIT
for _ in $(seq 50); do grep -q bootstrap= "$STATE/broker.out" && break; sleep 0.1; done
export CDCD_DEMO_BROKERS=$(sed -n 's/^bootstrap=//p' "$STATE/broker.out")
export CDCD_DEMO_PG_URL="$BASE/shop" CDCD_DEMO_STATE="$STATE/state"
echo "demo: PostgreSQL $CDCD_DEMO_PG_URL, broker $CDCD_DEMO_BROKERS"

./target/debug/cdcd check --config connectors/demo-postgres.toml
./target/debug/cdcd run --config connectors/demo-postgres.toml 2> "$STATE/cdcd.log" &
CDCD=$!
for _ in $(seq 100); do grep -q streaming "$STATE/cdcd.log" && break; sleep 0.1; done
echo "demo: daemon streaming (log: $STATE/cdcd.log); making live changes"
sql -d shop <<'SQL'
INSERT INTO orders (customer_id, total) VALUES (1, 19.99), (2, 5.00);
UPDATE customers SET email = 'ada@lovelace.org' WHERE id = 1;
BEGIN; DELETE FROM orders WHERE customer_id = 2; DELETE FROM customers WHERE id = 2; COMMIT;
ALTER TABLE customers ADD COLUMN vip boolean DEFAULT false;
INSERT INTO customers (name, vip) VALUES ('Grace', true);
SQL
echo "demo: events in Kafka (read back with an independent client):"
python3 tests/support/read_topics.py --bootstrap "$CDCD_DEMO_BROKERS" --topic demo.public.customers --topic demo.public.orders --min 10 --idle 3 --timeout 60 \
 | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    v = json.loads(r["value"]) if r["value"] else None
    what = "tombstone" if v is None else "op=%s before=%s after=%s" % (v["op"], json.dumps(v["before"]), json.dumps(v["after"]))
    print("%-22s key=%-10s %s" % (r["topic"], r["key"], what))'
kill -TERM $CDCD; wait $CDCD || true; CDCD=
echo "demo: stopped cleanly; checkpoint:"; cat "$STATE/state/demo/checkpoint.json"
