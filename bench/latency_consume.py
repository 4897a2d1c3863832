"""Latency of records arriving in a Kafka topic: receive time minus the commit time the record
carries (see latency_stamp), from the end of every partition, polling every 5 ms. Prints n,
p50, p99, p99.9 and max in milliseconds. usage: latency_consume.py BOOTSTRAP TOPIC SECONDS"""
import json, os, sys, time, uuid
from confluent_kafka import Consumer, TopicPartition, OFFSET_END
from latency_stamp import commit_ms, summary
boot, topic, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
c = Consumer({"bootstrap.servers": boot, "group.id": uuid.uuid4().hex, "enable.auto.commit": False,
              "fetch.wait.max.ms": 5, "topic.metadata.refresh.interval.ms": 500})
while True:
    md = c.list_topics(timeout=2)
    t = md.topics.get(topic)
    if t and t.partitions:
        break
    time.sleep(0.2)
c.assign([TopicPartition(topic, p, OFFSET_END) for p in t.partitions])
lat = []
# LATENCY_DUMP=DIR: each record's receive time, latency, partition and offset, one file per topic.
dump = open("%s/%s.lat" % (os.environ["LATENCY_DUMP"], topic), "w") if os.environ.get("LATENCY_DUMP") else None
started_ms = time.time() * 1000
end = time.time() + secs
while time.time() < end:
    m = c.poll(0.005)
    if m is None or m.error() or m.value() is None:
        continue
    now = time.time() * 1000
    ts = commit_ms(json.loads(m.value()))
    if ts >= started_ms:  # records from before the reader started do not count
        lat.append(now - ts)
        if dump:
            dump.write("%.3f %.3f %d %d\n" % (now, now - ts, m.partition(), m.offset()))
print(summary(lat))
