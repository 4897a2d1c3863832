"""The latency floor: a plain librdkafka producer (confluent-kafka) sending N small JSON records
per second with cdcd's producer settings, each carrying its send time as `source.ts_ms`.
usage: latency_floor.py BOOTSTRAP TOPIC RATE SECONDS [key=value ...]"""
import json, sys, time
from confluent_kafka import Producer
boot, topic, rate, secs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
extra = dict(kv.split("=", 1) for kv in sys.argv[5:])
p = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
              "compression.type": "lz4", "partitioner": "murmur2_random", **extra})
# Connect, fetch metadata and obtain the idempotent producer id before timing anything.
p.produce(topic, key=b"warm-up", value=json.dumps({"source": {"ts_ms": 0}}).encode())
p.flush(30)
n, start = 0, time.time()
while time.time() - start < secs:
    due = start + n / rate
    d = due - time.time()
    if d > 0:
        time.sleep(d)
    p.produce(topic, key=str(n).encode(), value=json.dumps({"source": {"ts_ms": time.time() * 1000}}).encode())
    p.poll(0)
    n += 1
p.flush(10)
