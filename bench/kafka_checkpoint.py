"""Waits until a connector's committed checkpoint in the Kafka store has reached a position, then
exits 0 (a drain check for the benchmarks, started once per drain rather than once per check).
Reads the checkpoint topic with read_committed, as cdcd does at start.
usage: kafka_checkpoint.py BOOTSTRAP TOPIC CONNECTOR [--lsn N | --binlog SEQ POS] [--timeout S]
With no position: until any checkpoint of the connector is committed."""
import argparse, json, sys, time, uuid
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

ap = argparse.ArgumentParser()
ap.add_argument("bootstrap")
ap.add_argument("topic")
ap.add_argument("connector")
ap.add_argument("--lsn", type=lambda s: int(s.split("/")[0], 16) << 32 | int(s.split("/")[1], 16))
ap.add_argument("--binlog", nargs=2, type=int, metavar=("SEQ", "POS"))
ap.add_argument("--timeout", type=float, default=600)
a = ap.parse_args()

key = json.dumps(a.connector).encode()


def reached(cp):
    pos = cp["position"]
    if a.lsn is not None:
        hi, lo = pos["lsn"].split("/")
        return (int(hi, 16) << 32 | int(lo, 16)) >= a.lsn
    if a.binlog is not None:
        seq = int(pos["file"].rsplit(".", 1)[1])
        return (seq, pos["pos"]) >= tuple(a.binlog)
    return True


c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False,
              "isolation.level": "read_committed", "fetch.wait.max.ms": 10})
while True:
    md = c.list_topics(timeout=2)
    t = md.topics.get(a.topic)
    if t and t.partitions:
        break
    time.sleep(0.2)
c.assign([TopicPartition(a.topic, 0, OFFSET_BEGINNING)])
end = time.time() + a.timeout
while time.time() < end:
    m = c.poll(0.05)
    if m is None or m.error() or m.key() != key or m.value() is None:
        continue
    if reached(json.loads(m.value())):
        c.close()
        sys.exit(0)
print("kafka_checkpoint: not reached within %ss" % a.timeout, file=sys.stderr)
sys.exit(1)
