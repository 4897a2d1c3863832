#!/usr/bin/env python3
"""Independent Kafka reader for cdcd's tests (confluent-kafka, i.e. a different client from the
daemon's producer). Prints every record of the given topics as one JSON line:
{"topic", "partition", "offset", "key", "value"} with key/value decoded as UTF-8 text or null.
Stops once at least --min records were read and nothing new arrived for --idle seconds, or at
--timeout; with --to-end, once every partition is read to its end (exit 3 if that never happens).
With --materialize, applies every record in partition order instead, as a materialized-view
builder would, and prints only a summary as one JSON object:
{"records", "reads", "distinct_reads", "state": {key: after-row, or null once deleted}}.
With --registry URL, keys and values are Avro in Confluent's wire format: they are decoded with
confluent-kafka's AvroDeserializer against that Schema Registry, printed as JsonConverter would
write them (avro_values.py), and each line also carries "key_schema_id" and "value_schema_id"."""
import argparse, json, sys, time, uuid
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", action="append", required=True)
ap.add_argument("--min", type=int, default=1)
ap.add_argument("--idle", type=float, default=2.0)
ap.add_argument("--timeout", type=float, default=60.0)
ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                help="extra client setting, e.g. security.protocol=SSL")
ap.add_argument("--to-end", action="store_true",
                help="stop once every partition is read up to the high watermark it had when all "
                     "topics were found (not for tansu, whose watermarks can lag)")
ap.add_argument("--to-eof", action="store_true",
                help="stop once every partition reported reaching its end at least once (with "
                     "read_committed, the end of the transactions committed by then: what an "
                     "exactly-once test wants)")
ap.add_argument("--registry", help="Schema Registry URL: decode Avro keys and values")
ap.add_argument("--materialize", action="store_true",
                help="print a summary of the final state per key instead of every record")
a = ap.parse_args()

# Partitions are assigned directly rather than through a consumer group: a group subscribed to a
# topic the producer has not auto-created yet can take tens of seconds to rebalance once it
# appears (seen with the mock cluster), which made reads time out with nothing read.
c = Consumer({
    "bootstrap.servers": a.bootstrap,
    "group.id": "cdcd-test-" + uuid.uuid4().hex,
    "enable.auto.commit": False,
    "topic.metadata.refresh.interval.ms": 1000,
    "enable.partition.eof": a.to_eof,
    **dict(kv.split("=", 1) for kv in a.set),
})
assigned = set()
decode = None
if a.registry:
    import os, struct
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from avro_values import to_connect
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    registry = SchemaRegistryClient({"url": a.registry})
    deserializer = AvroDeserializer(registry)
    schemas = {}

    def decode(m, field):
        """(JsonConverter text, schema id) of the message's key or value; (None, None) for null."""
        raw = m.key() if field == MessageField.KEY else m.value()
        if raw is None:
            return None, None
        magic, schema_id = struct.unpack(">bI", raw[:5])
        if magic != 0:
            raise SystemExit("not Confluent's wire format (magic byte %d) at %s/%d@%d" % (
                magic, m.topic(), m.partition(), m.offset()))
        if schema_id not in schemas:
            schemas[schema_id] = json.loads(registry.get_schema(schema_id).schema_str)
        value = deserializer(raw, SerializationContext(m.topic(), field))
        return json.dumps(to_connect(value, schemas[schema_id]), ensure_ascii=False), schema_id


def assign_new_partitions():
    """Adds every partition of the wanted topics that exists now; returns True when all topics
    were found."""
    try:
        md = c.list_topics(timeout=1.0)
    except Exception:
        return False
    new = []
    for t in a.topic:
        tm = md.topics.get(t)
        if tm is None or tm.error is not None or not tm.partitions:
            continue
        for p in tm.partitions:
            if (t, p) not in assigned:
                assigned.add((t, p))
                new.append(TopicPartition(t, p, OFFSET_BEGINNING))
    if new:
        c.incremental_assign(new)
    return all(any(t == at for at, _ in assigned) for t in a.topic)


def reached_end():
    return all(position.get(tp, 0) >= high for tp, high in end.items())


state, read_counts, reads = {}, {}, 0


def handle(m):
    global state, reads
    k, v = m.key(), m.value()
    if not a.materialize:
        line = {"topic": m.topic(), "partition": m.partition(), "offset": m.offset()}
        if decode:
            line["key"], line["key_schema_id"] = decode(m, MessageField.KEY)
            line["value"], line["value_schema_id"] = decode(m, MessageField.VALUE)
        else:
            line["key"] = None if k is None else k.decode()
            line["value"] = None if v is None else v.decode()
        out.write(json.dumps(line) + "\n")
        return
    if v is None:
        return  # tombstone: the delete before it already removed the row
    v = json.loads(v)
    key = None if k is None else k.decode()
    op = v.get("op")
    if op in ("c", "u", "r"):
        state[key] = v["after"]
        if op == "r":
            reads += 1
            read_counts[key] = read_counts.get(key, 0) + 1
    elif op == "d":
        state[key] = None
    elif op == "t":
        state = {key: None for key in state}


at_eof = set()
n, start, last = 0, time.time(), time.time()
all_found, next_lookup = False, 0.0
end, position = None, {}
out = sys.stdout
while True:
    now = time.time()
    if now - start > a.timeout:
        break
    if a.to_end:
        if end is not None and reached_end():
            break
    elif a.to_eof:
        if all_found and assigned and at_eof >= assigned:
            break
    elif n >= a.min and now - last > a.idle:
        # A reader starved of CPU can look idle; stop only if no partition is known to hold
        # more (a watermark that lags, as tansu's can, never holds the reader back).
        if not any(position.get(tp, 0) < c.get_watermark_offsets(TopicPartition(*tp), timeout=2.0)[1]
                   for tp in assigned):
            break
        last = time.time()
    if not all_found and now >= next_lookup:
        all_found = assign_new_partitions()
        next_lookup = now + 0.3
    if all_found and a.to_end and end is None:
        marks = {tp: c.get_watermark_offsets(TopicPartition(*tp), timeout=5.0) for tp in assigned}
        pruned = {tp: low for tp, (low, _) in marks.items() if low > 0}
        if pruned:
            # Records the broker deleted (retention) would show up as lost rows: say so instead.
            print("the broker no longer holds the start of %s (low watermarks); give the topic more "
                  "partitions or write less" % pruned, file=sys.stderr)
            sys.exit(4)
        end = {tp: high for tp, (_, high) in marks.items()}
    if not assigned:
        time.sleep(0.1)
        continue
    for m in c.consume(1000, 0.2):
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                at_eof.add((m.topic(), m.partition()))
            if m.error().code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                print("reader error: %s" % m.error(), file=sys.stderr)
            continue
        handle(m)
        n += 1
        last = time.time()
        position[(m.topic(), m.partition())] = m.offset() + 1
if a.materialize:
    json.dump({"records": n, "reads": reads, "distinct_reads": len(read_counts), "state": state}, out)
out.flush()
c.close()
print("read %d records" % n, file=sys.stderr)
if a.to_eof and not (all_found and at_eof >= assigned):
    print("did not reach the end of every partition: at the end of %s of %s" % (sorted(at_eof), sorted(assigned)),
          file=sys.stderr)
    sys.exit(3)
if a.to_end and (end is None or not reached_end()):
    print("did not reach the end of every partition: read up to %s, end %s" % (position, end), file=sys.stderr)
    sys.exit(3)
