"""The latency floor: a plain librdkafka producer (confluent-kafka) sending RATE JSON records per
second of SIZE bytes (cdcd's record size) with cdcd's producer settings, each carrying its send
time as `source.ts_ms`. usage: latency_floor.py BOOTSTRAP TOPIC RATE SECONDS SIZE [key=value ...]"""
import json, sys, time
from confluent_kafka import Producer
boot, topic, rate, secs, size = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
extra = dict(kv.split("=", 1) for kv in sys.argv[6:])
p = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
              "compression.type": "lz4", "partitioner": "murmur2_random", **extra})


def record(ts_ms, n):
    # Padding of a few distinct characters, so lz4 compresses it about as well as an envelope.
    body = '{"source":{"ts_ms":%.3f},"pad":"' % ts_ms
    pad = max(0, size - len(body) - 2)
    return (body + ("row %d, " % n * (pad // 6 + 1))[:pad] + '"}').encode()


# Connect, fetch metadata and obtain the idempotent producer id before timing anything.
p.produce(topic, key=b"warm-up", value=record(0, 0))
p.flush(30)
n, start = 0, time.time()
while time.time() - start < secs:
    due = start + n / rate
    d = due - time.time()
    if d > 0:
        time.sleep(d)
    p.produce(topic, key=b'{"id":%d}' % n, value=record(time.time() * 1000, n))
    p.poll(0)
    n += 1
p.flush(10)
