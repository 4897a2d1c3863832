"""Latency of cdcd's stdout sink: arrival time of each JSON line minus its `source.ts_ms`.
usage: cdcd run ... | latency_stdin.py SECONDS"""
import json, sys, time
lat = []
started_ms = time.time() * 1000
end = time.time() + float(sys.argv[1])
for line in sys.stdin:
    now = time.time() * 1000
    r = json.loads(line)
    v = r["value"] if isinstance(r["value"], dict) else json.loads(r["value"])
    if v["source"]["ts_ms"] >= started_ms:
        lat.append(now - v["source"]["ts_ms"])
    if time.time() > end:
        break
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print("n=%d p50=%.1f p99=%.1f p999=%.1f max=%.1f" % (len(lat), q(.5), q(.99), q(.999), lat[-1]))
