#!/usr/bin/env python3
"""A reference consumer of cdcd's transaction metadata: keeps a SQLite replica of cdcd's topics and
applies each source transaction atomically when its END arrives.

How it works (docs/transactions.md has the contract):
  * It reads `<prefix>.transaction` in order. BEGIN records are skipped.
  * An END names, per topic partition, the offset of the transaction's last record there
    (`last_offsets`). cdcd writes END only after the broker acknowledged all of those records, so
    they are readable now: the consumer reads each named partition up to that offset, collects
    the records whose `transaction.id` is the END's, checks that they add up to `event_count` and
    `data_collections`, and applies them, in `total_order`, in one SQLite transaction.
  * Records without a transaction (snapshot reads) met on the way are applied as they come.
  * After a crash cdcd may repeat a transaction's records and its END (at-least-once); they never
    disagree. A transaction applied once is skipped when it comes again.

The replica is one table, rows(topic, key, value): the row's key and its latest `after` image as
JSON, deleted rows removed. Usage:
  python3 examples/txn_consumer.py --bootstrap localhost:9092 --prefix shop --db replica.sqlite
Options for tests: --check-sum TOPIC:FIELD=TOTAL verifies after every applied transaction that the
FIELD values of TOPIC's rows add up to TOTAL; --ends N stops after N distinct transactions;
--read-committed for an exactly-once sink. At the end it prints a JSON summary on stdout.
Needs `pip install confluent-kafka`."""
import argparse, json, sqlite3, sys, time, uuid
from confluent_kafka import Consumer, TopicPartition, KafkaError

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--prefix", required=True, help="cdcd's topic_prefix (the connector name by default)")
ap.add_argument("--db", default=":memory:", help="SQLite file of the replica")
ap.add_argument("--read-committed", action="store_true", help="for delivery = \"exactly-once\"")
ap.add_argument("--ends", type=int, default=0, help="stop after this many distinct transactions")
ap.add_argument("--idle", type=float, default=30.0, help="stop after this long without an END")
ap.add_argument("--progress", type=int, default=0, help="log every N transactions applied (stderr)")
ap.add_argument("--check-sum", action="append", default=[], metavar="TOPIC:FIELD=TOTAL")
a = ap.parse_args()

settings = {
    "bootstrap.servers": a.bootstrap,
    "group.id": "cdcd-txn-consumer-" + uuid.uuid4().hex,
    "enable.auto.commit": False,
    "isolation.level": "read_committed" if a.read_committed else "read_uncommitted",
}


def payload(raw):
    """A record's JSON, unwrapped from JsonConverter's {"schema", "payload"} if it has one."""
    if raw is None:
        return None
    v = json.loads(raw)
    if isinstance(v, dict) and set(v) == {"schema", "payload"}:
        return v["payload"]
    return v


def collection(value):
    s = value["source"]
    return f'{s["schema"]}.{s["table"]}' if s.get("schema") else f'{s["db"]}.{s["table"]}'


class Partition:
    """One data partition, read forward only as far as ENDs ask."""

    def __init__(self, topic, partition):
        self.tp = TopicPartition(topic, partition, 0)
        self.consumer = Consumer(settings)
        self.consumer.assign([self.tp])
        self.next = 0

    def readable_through(self, offset):
        """Whether the record at `offset` is readable now (the end a consumer can read is past it).
        Asked through a consumer that fetches nothing: a broker answers one connection's requests
        in order, so behind this consumer's waiting fetch the answer would take up to
        fetch.wait.max.ms."""
        _, high = probe.get_watermark_offsets(self.tp, timeout=10, cached=False)
        return high > offset

    def read_through(self, offset, timeout=30.0):
        out, deadline = [], time.time() + timeout
        while self.next <= offset:
            m = self.consumer.poll(0.5)
            if m is None:
                if time.time() > deadline:
                    raise TimeoutError(f"{self.tp.topic}[{self.tp.partition}] offset {offset} not readable")
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(str(m.error()))
            self.next = m.offset() + 1
            out.append(m)
        return out


probe = Consumer(settings)
db = sqlite3.connect(a.db)
db.execute("CREATE TABLE IF NOT EXISTS rows (topic TEXT, key TEXT, value TEXT, PRIMARY KEY (topic, key))")
sums = []
for spec in a.check_sum:
    topic_field, total = spec.split("=")
    topic, field = topic_field.split(":")
    sums.append((topic, field, int(total)))

partitions, pending, applied = {}, {}, set()
summary = {"ends": 0, "repeated_ends": 0, "applied": 0, "events": 0, "snapshot_reads": 0,
           "not_readable_at_end": [], "mismatches": [], "order_errors": [], "sum_errors": [], "sums_checked": 0}


def apply(cur, topic, key, value):
    k = json.dumps(key, sort_keys=True, separators=(",", ":"))
    if value is None:
        return  # a tombstone: its delete event already removed the row
    if value.get("op") == "d":
        cur.execute("DELETE FROM rows WHERE topic = ? AND key = ?", (topic, k))
    elif value.get("op") == "t":
        cur.execute("DELETE FROM rows WHERE topic = ?", (topic,))
    else:
        cur.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?)", (topic, k, json.dumps(value["after"], sort_keys=True)))


def on_end(end):
    tid = end["id"]
    if tid in applied:
        summary["repeated_ends"] += 1
        pending.pop(tid, None)
        return
    summary["ends"] += 1
    for o in end["last_offsets"]:
        key = (o["topic"], o["partition"])
        p = partitions.setdefault(key, None) or Partition(*key)
        partitions[key] = p
        if not p.readable_through(o["offset"]):
            summary["not_readable_at_end"].append([tid, o])
        for m in p.read_through(o["offset"]):
            value = payload(m.value())
            block = value.get("transaction") if value else None
            if block is None:
                if value is not None and value.get("op") == "r":
                    apply(db, m.topic(), payload(m.key()), value)
                    summary["snapshot_reads"] += 1
                continue
            if block["id"] not in applied:
                # A copy sent again after a crash has the same orders: the later one replaces it.
                pending.setdefault(block["id"], {})[block["total_order"]] = (m.topic(), payload(m.key()), value)
    records = [r for _, r in sorted(pending.pop(tid, {}).items())]
    counts = {}
    for _, _, v in records:
        counts[collection(v)] = counts.get(collection(v), 0) + 1
    expected = {d["data_collection"]: d["event_count"] for d in end["data_collections"]}
    if len(records) != end["event_count"] or counts != expected:
        summary["mismatches"].append({"id": tid, "end": end, "found": counts, "records": len(records)})
    if [r[2]["transaction"]["total_order"] for r in records] != list(range(1, len(records) + 1)):
        summary["order_errors"].append(tid)
    with db:  # one SQLite transaction per source transaction
        for topic, key, value in records:
            apply(db, topic, key, value)
    applied.add(tid)
    summary["applied"] += 1
    summary["events"] += len(records)
    for topic, field, total in sums:
        got = db.execute("SELECT COALESCE(SUM(json_extract(value, ?)), 0) FROM rows WHERE topic = ?",
                         ("$." + field, topic)).fetchone()[0]
        summary["sums_checked"] += 1
        if got != total:
            summary["sum_errors"].append({"after": tid, "sum": got})


meta = Consumer(settings)
meta.assign([TopicPartition(f"{a.prefix}.transaction", 0, 0)])
last = time.time()
while time.time() - last < a.idle and not (a.ends and len(applied) >= a.ends):
    m = meta.poll(0.5)
    if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
        continue
    if m.error():
        if m.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            continue
        sys.exit(f"reading {a.prefix}.transaction: {m.error()}")
    value = payload(m.value())
    if value["status"] == "END":
        on_end(value)
        last = time.time()
        if a.progress and len(applied) % a.progress == 0:
            print(f"{time.strftime('%H:%M:%S')} {len(applied)} transactions applied", file=sys.stderr, flush=True)
summary["state"] = {}
for topic, key, value in db.execute("SELECT topic, key, value FROM rows ORDER BY topic, key"):
    summary["state"].setdefault(topic, {})[key] = json.loads(value)
print(json.dumps(summary))
