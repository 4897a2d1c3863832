#!/usr/bin/env python3
"""Independent Prometheus text parser for cdcd's tests (PyPI prometheus-client): fetches URL and
prints one JSON line per sample: {"name", "labels", "value"}. Exits 2 if the text does not parse."""
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families

text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
try:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            print(json.dumps({"name": s.name, "labels": s.labels, "value": s.value}))
except Exception as e:
    print("unparseable metrics: %s\n%s" % (e, text), file=sys.stderr)
    sys.exit(2)
