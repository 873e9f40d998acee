"""confluent-kafka's Schema Registry client and serializers against Brook,
driven by tests/tests/schemas.rs: the registry's REST API on the broker's
HTTP port, and the Kafka listener carrying the serialized records.

Prints one JSON line per step for the Rust test to check.

    python schema_registry.py REGISTRY_URL BOOTSTRAP
"""

import json
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

ORDER_V1 = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "OrderPlaced",
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "total": {"type": "number", "minimum": 0},
        "items": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["order_id", "total"],
}
# Backward compatible: one more optional property.
ORDER_V2 = dict(ORDER_V1, properties=dict(ORDER_V1["properties"], note={"type": "string"}))
# Not backward compatible: a new required property.
ORDER_BAD = dict(ORDER_V1, properties=dict(ORDER_V1["properties"], currency={"type": "string"}),
                 required=["order_id", "total", "currency"])

PAYMENT = {
    "type": "record", "name": "PaymentReceived", "namespace": "shop",
    "fields": [{"name": "order_id", "type": "string"}, {"name": "amount_cents", "type": "long"}],
}


def emit(step, **fields):
    print(json.dumps(dict(step=step, **fields)), flush=True)


def error_of(call):
    """The registry's answer to a call expected to be refused."""
    try:
        call()
    except SchemaRegistryError as e:
        return {"http": e.http_status_code, "code": e.error_code, "message": e.error_message}
    return None


def produce(bootstrap, topic, serializer, values):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for v in values:
        ctx = SerializationContext(topic, MessageField.VALUE)
        p.produce(topic, key=v["order_id"].encode(), value=serializer(v, ctx))
    left = p.flush(30)
    assert left == 0, f"{left} records not delivered"


def consume(bootstrap, topic, deserializer, count):
    """Reads COUNT records from the start, decoding each value."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{topic}", "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions])
    out, deadline = [], time.time() + 30
    while len(out) < count and time.time() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        ctx = SerializationContext(topic, MessageField.VALUE)
        out.append({"partition": m.partition(), "offset": m.offset(), "value": deserializer(m.value(), ctx)})
    c.close()
    return out


def main(url, bootstrap):
    conf = {"subject.name.strategy": topic_subject_name_strategy}
    client = SchemaRegistryClient({"url": url})
    emit("types", types=client.get_schema_types())
    emit("global_level", level=client.get_compatibility())

    # JSON Schema: the serializer registers the schema on first use.
    ser = JSONSerializer(json.dumps(ORDER_V1), client)
    orders = [{"order_id": f"o-{i}", "total": 10.5 * i, "items": ["book"] * (i % 3)} for i in range(6)]
    produce(bootstrap, "orders", ser, orders)
    # A separate client: the deserializer must fetch the schema by id.
    reader = SchemaRegistryClient({"url": url})
    got = consume(bootstrap, "orders", JSONDeserializer(json.dumps(ORDER_V1), schema_registry_client=reader),
                  len(orders))
    emit("json_roundtrip", sent=orders, got=sorted((g["value"] for g in got), key=lambda v: v["order_id"]))
    # The serializer refuses an event its schema does not allow, before sending.
    try:
        ser({"order_id": 7}, SerializationContext("orders", MessageField.VALUE))
        emit("json_invalid_refused", refused=False)
    except Exception as e:  # SerializationError
        emit("json_invalid_refused", refused=True, error=str(e))

    latest = client.get_latest_version("orders-value")
    emit("latest", id=latest.schema_id, version=latest.version, schema_type=latest.schema.schema_type)
    v2 = client.register_schema("orders-value", Schema(json.dumps(ORDER_V2), "JSON"))
    emit("registered_v2", id=v2)
    again = SchemaRegistryClient({"url": url}).register_schema("orders-value", Schema(json.dumps(ORDER_V2), "JSON"))
    emit("registered_v2_again", id=again)
    emit("compatible", v2=client.test_compatibility("orders-value", Schema(json.dumps(ORDER_V2), "JSON")),
         bad=client.test_compatibility("orders-value", Schema(json.dumps(ORDER_BAD), "JSON")))
    emit("incompatible", error=error_of(
        lambda: client.register_schema("orders-value", Schema(json.dumps(ORDER_BAD), "JSON"))))
    emit("invalid", error=error_of(
        lambda: client.register_schema("orders-value", Schema('{"type": 12}', "JSON"))))
    found = client.lookup_schema("orders-value", Schema(json.dumps(ORDER_V1), "JSON"))
    emit("lookup", id=found.schema_id, version=found.version)
    emit("versions", versions=client.get_versions("orders-value"))
    emit("missing_subject", error=error_of(lambda: client.get_versions("no-such-subject")))
    emit("missing_id", error=error_of(lambda: SchemaRegistryClient({"url": url}).get_schema(99999)))

    # Avro: the same through fastavro's encoding.
    aser = AvroSerializer(client, json.dumps(PAYMENT), conf=conf)
    payments = [{"order_id": f"o-{i}", "amount_cents": 1050 * i} for i in range(4)]
    produce(bootstrap, "payments", aser, payments)
    areader = AvroDeserializer(SchemaRegistryClient({"url": url}), json.dumps(PAYMENT))
    got = consume(bootstrap, "payments", areader, len(payments))
    emit("avro_roundtrip", sent=payments, got=sorted((g["value"] for g in got), key=lambda v: v["order_id"]))

    # Levels, per subject and global.
    client.set_compatibility("payments-value", "FULL")
    emit("subject_level", level=client.get_compatibility("payments-value"))
    emit("bad_level", error=error_of(lambda: client.set_compatibility("payments-value", "SIDEWAYS")))

    # Deletes, soft then permanent.
    emit("delete_version", deleted=client.delete_version("orders-value", 2))
    emit("versions_after_delete", versions=client.get_versions("orders-value"))
    emit("permanent_first", error=error_of(lambda: client.delete_subject("payments-value", permanent=True)))
    emit("delete_subject", soft=client.delete_subject("payments-value"),
         permanent=client.delete_subject("payments-value", permanent=True))
    emit("subjects", subjects=client.get_subjects())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
