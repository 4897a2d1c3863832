#!/usr/bin/env python3
"""Independent consumer for the large snapshot tests: reads cdcd's topics with confluent-kafka
(not the daemon's client) and applies every record in partition order, as a materialized-view
builder would, printing only a summary as one JSON object:
{"records", "reads", "distinct_reads", "state": {key: after-row or null for deleted}}.
Stops once at least --min records were read and nothing new arrived for --idle seconds, or at
--timeout (exit 3 when --min was never reached)."""
import argparse, json, sys, time, uuid
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", action="append", required=True)
ap.add_argument("--min", type=int, default=1)
ap.add_argument("--idle", type=float, default=5.0)
ap.add_argument("--timeout", type=float, default=300.0)
a = ap.parse_args()

c = Consumer({
    "bootstrap.servers": a.bootstrap,
    "group.id": "cdcd-test-" + uuid.uuid4().hex,
    "enable.auto.commit": False,
    "topic.metadata.refresh.interval.ms": 1000,
})
assigned = set()


def assign_new_partitions():
    try:
        md = c.list_topics(timeout=1.0)
    except Exception:
        return
    new = []
    for t in a.topic:
        tm = md.topics.get(t)
        if tm is None or tm.error is not None:
            continue
        for p in tm.partitions:
            if (t, p) not in assigned:
                assigned.add((t, p))
                new.append(TopicPartition(t, p, OFFSET_BEGINNING))
    if new:
        c.incremental_assign(new)


state, read_counts = {}, {}
records = reads = 0
start = last_new = time.time()
next_assign = 0.0
while True:
    now = time.time()
    if now - start > a.timeout or (records >= a.min and now - last_new > a.idle):
        break
    if now >= next_assign:
        assign_new_partitions()
        next_assign = now + 1.0
    msgs = c.consume(10000, 0.05)
    for m in msgs:
        if m.error():
            continue
        records += 1
        last_new = time.time()
        if m.value() is None:
            continue  # tombstone: the delete before it already removed the row
        v = json.loads(m.value())
        key = m.key().decode() if m.key() is not None else None
        op = v.get("op")
        if op in ("c", "u", "r"):
            state[key] = v["after"]
            if op == "r":
                reads += 1
                read_counts[key] = read_counts.get(key, 0) + 1
        elif op == "d":
            state[key] = None
        elif op == "t":
            state = {k: None for k in state}
c.close()
json.dump({"records": records, "reads": reads, "distinct_reads": len(read_counts), "state": state}, sys.stdout)
sys.exit(0 if records >= a.min else 3)
