"""Latency of cdcd's stdout sink: arrival time of each JSON line minus its commit time. Also
prints the mean key + value size, which the floor producer then sends.
usage: cdcd run ... | latency_stdin.py SECONDS"""
import json, sys, time
from latency_stamp import commit_ms, summary
lat, size = [], 0
started_ms = time.time() * 1000
end = time.time() + float(sys.argv[1])
for line in sys.stdin:
    now = time.time() * 1000
    r = json.loads(line)
    v = r["value"] if isinstance(r["value"], dict) else json.loads(r["value"])
    ts = commit_ms(v)
    if ts >= started_ms:  # records from before the reader started do not count
        lat.append(now - ts)
        size += len(json.dumps(r["key"], separators=(",", ":"))) + len(json.dumps(v, separators=(",", ":")))
    if time.time() > end:
        break
print(summary(lat, " bytes=%d" % (size // max(1, len(lat)))))
