"""Avro records decoded by confluent-kafka's AvroDeserializer (fastavro) turned back into the
values Kafka Connect's JsonConverter writes for the same Connect schema: a decimal as the
base64 of its unscaled two's-complement bytes, dates as days, times and timestamps as epoch
numbers, bytes as base64, floats that JSON cannot hold as "NaN"/"Infinity". With that, an event
cdcd wrote as Avro can be compared field by field with the one it (or Debezium) writes as JSON."""
import base64, datetime, decimal, math, uuid

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _unscaled_bytes(d):
    sign, digits, _ = d.as_tuple()
    n = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    bits = n.bit_length() if n >= 0 else (~n).bit_length()
    return n.to_bytes(bits // 8 + 1, "big", signed=True)  # as Java's BigInteger.toByteArray


def _micros(delta):
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def named_types(schema, namespace="", names=None):
    """Full name -> definition of every record, enum and fixed in `schema`, for references."""
    names = {} if names is None else names
    if isinstance(schema, list):
        for s in schema:
            named_types(s, namespace, names)
    elif isinstance(schema, dict):
        t = schema.get("type")
        if t in ("record", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            full = schema["name"] if "." in schema["name"] or not ns else ns + "." + schema["name"]
            names[full] = schema
            namespace = full.rsplit(".", 1)[0] if "." in full else ""
            for f in schema.get("fields", []):
                named_types(f["type"], namespace, names)
        else:
            for k in ("type", "items", "values"):
                if isinstance(schema.get(k), (dict, list)):
                    named_types(schema[k], namespace, names)
    return names


def to_connect(v, schema, names=None):
    """`v` decoded against the Avro `schema` (parsed JSON), as JsonConverter's payload."""
    names = named_types(schema) if names is None else names
    if isinstance(schema, list):  # a union: ["null", T] or [T, "null"]
        if v is None:
            return None
        branches = [s for s in schema if s != "null"]
        return to_connect(v, branches[0], names)
    if isinstance(schema, str):
        schema = names.get(schema, {"type": schema})
    t, logical = schema.get("type"), schema.get("logicalType")
    if isinstance(t, (dict, list)) or t in names:
        return to_connect(v, t, names)
    if v is None:
        return None
    if t == "record":
        return {f["name"]: to_connect(v.get(f["name"]), f["type"], names) for f in schema["fields"]}
    if t == "array":
        return [to_connect(x, schema["items"], names) for x in v]
    if t == "map":
        return {k: to_connect(x, schema["values"], names) for k, x in v.items()}
    if logical == "decimal":
        return base64.b64encode(_unscaled_bytes(v)).decode()
    if logical == "date":
        return (v - EPOCH.date()).days
    if logical in ("timestamp-micros", "timestamp-millis"):
        us = _micros(v - EPOCH)
        return us if logical == "timestamp-micros" else us // 1000
    if logical in ("time-micros", "time-millis"):
        us = ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
        return us if logical == "time-micros" else us // 1000
    if logical == "uuid":
        return str(v) if isinstance(v, uuid.UUID) else v
    if t in ("bytes", "fixed"):
        return base64.b64encode(v).decode()
    if t in ("float", "double") and (math.isnan(v) or math.isinf(v)):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, decimal.Decimal):
        return str(v)
    return v
