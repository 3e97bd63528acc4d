"""The independent consumer of the Kafka export test (kafka-python, from
PyPI): reads every message of the topics given, from the start, and
writes each as one JSON line: topic, partition, offset, key, and the value
as text (JSON records) or hex (protobuf records)."""

import json
import sys

from kafka import KafkaConsumer

brokers, *topics = sys.argv[1:]
consumer = KafkaConsumer(
    *topics,
    bootstrap_servers=brokers,
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    consumer_timeout_ms=5000,
)
for m in consumer:
    print(
        json.dumps(
            {
                "topic": m.topic,
                "partition": m.partition,
                "offset": m.offset,
                "key": m.key.decode(),
                "hex": m.value.hex(),
            }
        )
    )
