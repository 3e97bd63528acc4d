"""A processor for rotel, the OpenTelemetry collector of the OTLP export
test: every log record and metric data point rotel decoded is written as
one JSON line to the file $FLOWLENS_OTLP_DUMP, for the test to compare
with what flowlens stored."""

import json
import os

OUT = os.environ["FLOWLENS_OTLP_DUMP"]


def plain(v):
    """An attribute's value as JSON: scalars as they are, arrays as lists."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    # A variant of a union (NumberDataPointValue_AsInt, ...) holds its
    # value as _0.
    tagged = getattr(v, "_0", None)
    if tagged is not None:
        return plain(tagged)
    inner = getattr(v, "value", None)
    if inner is not None and inner is not v:
        return plain(inner)
    values = getattr(v, "values", None)
    if values is not None:
        return [plain(x) for x in values]
    return repr(v)


def attributes(kvs):
    return {kv.key: plain(kv.value) for kv in kvs}


def write(lines):
    with open(OUT, "a") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")


def process_logs(resource_logs):
    write(
        {"log": attributes(r.attributes), "time_unix_nano": r.time_unix_nano}
        for sl in resource_logs.scope_logs
        for r in sl.log_records
    )


def process_metrics(resource_metrics):
    lines = []
    for sm in resource_metrics.scope_metrics:
        for m in sm.metrics:
            data = getattr(m.data, "_0", None)
            if data is None:
                continue
            kind = type(m.data).__name__.rsplit("_", 1)[-1]
            for p in data.data_points:
                point = {"metric": m.name, "kind": kind, "labels": attributes(p.attributes)}
                if kind == "Sum":
                    point["value"] = plain(p.value)
                elif kind == "Histogram":
                    point["count"] = p.count
                    point["sum"] = p.sum
                    point["buckets"] = list(p.bucket_counts)
                lines.append(point)
    write(lines)
