#!/usr/bin/env python3
"""Independent Kafka reader for cdcd's tests (confluent-kafka, i.e. a different client from the
daemon's producer). Prints every record of the given topics as one JSON line:
{"topic", "partition", "offset", "key", "value"} with key/value decoded as UTF-8 text or null.
Stops once at least --min records were read and nothing new arrived for --idle seconds, or at
--timeout."""
import argparse, json, sys, time, uuid
from confluent_kafka import Consumer, KafkaError

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", action="append", required=True)
ap.add_argument("--min", type=int, default=1)
ap.add_argument("--idle", type=float, default=2.0)
ap.add_argument("--timeout", type=float, default=60.0)
a = ap.parse_args()

c = Consumer({
    "bootstrap.servers": a.bootstrap,
    "group.id": "cdcd-test-" + uuid.uuid4().hex,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "topic.metadata.refresh.interval.ms": 1000,
    "session.timeout.ms": 6000,
})
c.subscribe(a.topic)
n, start, last = 0, time.time(), time.time()
out = sys.stdout
while True:
    now = time.time()
    if now - start > a.timeout or (n >= a.min and now - last > a.idle):
        break
    m = c.poll(0.2)
    if m is None:
        continue
    if m.error():
        if m.error().code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
            print("reader error: %s" % m.error(), file=sys.stderr)
        continue
    k, v = m.key(), m.value()
    out.write(json.dumps({
        "topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
        "key": None if k is None else k.decode(), "value": None if v is None else v.decode(),
    }) + "\n")
    n += 1
    last = time.time()
out.flush()
c.close()
print("read %d records" % n, file=sys.stderr)
