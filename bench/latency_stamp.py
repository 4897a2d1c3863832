"""The commit time of a change in cdcd's JSON envelope, in ms since the epoch: the row's own
microsecond clock `t` when it has one (MariaDB's binlog stamps whole seconds), else
`source.ts_ms`. Shared by the latency readers."""


def commit_ms(value):
    after = value.get("after") or {}
    if after.get("t") is not None:
        return after["t"] / 1000.0
    return value["source"]["ts_ms"]


def summary(lat, extra=""):
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
    return "n=%d p50=%.1f p99=%.1f p999=%.1f max=%.1f%s" % (
        len(lat), q(.5), q(.99), q(.999), lat[-1] if lat else float("nan"), extra)
