"""Kafka clients that no one here wrote, driven by tests/tests/kafka.rs.

Each subcommand talks to a Brook broker's Kafka listener with kafka-python
or confluent-kafka (librdkafka) and prints JSON lines on stdout for the
Rust test to check. Installed by scripts/kafka-clients.sh into a venv.

    python clients.py BOOTSTRAP COMMAND [ARGS...]
"""

import json
import sys
import time


def seed_producer(bootstrap, topic, count):
    """The seed's producer code, unchanged but for bootstrap_servers."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=[bootstrap],
                             value_serializer=lambda v: json.dumps(v).encode('utf-8'), acks='all', retries=3)
    for i in range(int(count)):
        order_id = f"order-{i % 7}"
        event = {"type": "OrderPlaced", "order": order_id, "seq": i}
        producer.send(topic, key=order_id.encode(), value=event,
                      headers=[("correlation-id", f"c-{i}".encode())])
    producer.flush()
    print(json.dumps({"produced": int(count)}))


def compressed_producer(bootstrap, topic, codec, count):
    """kafka-python sends COUNT keyed events compressed with CODEC (gzip,
    snappy, lz4 or zstd), one batch per partition, and flushes."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=[bootstrap], compression_type=codec, acks='all',
                             linger_ms=50, batch_size=1 << 20)
    for i in range(int(count)):
        producer.send(topic, key=f"{codec}-{i % 3}".encode(), value=f"{codec}-event-{i}".encode(),
                      headers=[("codec", codec.encode())])
    producer.flush()
    print(json.dumps({"produced": int(count), "codec": codec}))


def kafka_python_consume(bootstrap, topic, count):
    """Reads COUNT records from the start of every partition (no group)."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=20000)
    parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic))]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    n = 0
    for m in c:
        print(json.dumps({"partition": m.partition, "offset": m.offset, "key": m.key.decode() if m.key else None,
                          "value": m.value.decode(), "headers": {k: v.decode() for k, v in m.headers}}))
        n += 1
        if n >= int(count):
            break
    c.close()


def confluent_consume(bootstrap, topic, count):
    """Reads COUNT records with librdkafka, assigned from the start (no group)."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "confluent-reader",
                  "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions])
    n, deadline = 0, time.time() + 30
    while n < int(count) and time.time() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        print(json.dumps({"partition": m.partition(), "offset": m.offset(),
                          "key": m.key().decode() if m.key() else None, "value": m.value().decode(),
                          "headers": {k: v.decode() for k, v in (m.headers() or [])}}))
        n += 1
    c.close()


def idempotent_produce(bootstrap, topic, stop_file):
    """Produces numbered values 0, 1, 2, ... with enable.idempotence and
    acks=all until STOP_FILE exists, retrying through broker restarts; then
    flushes and prints how many it produced and the delivery failures."""
    import os
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "message.timeout.ms": 120000, "retry.backoff.ms": 100,
                  "reconnect.backoff.max.ms": 500})
    failed = []

    def report(err, msg):
        if err is not None:
            failed.append(str(err))

    i = 0
    while i % 100 != 0 or not os.path.exists(stop_file):
        try:
            p.produce(topic, key=f"k{i % 10}".encode(), value=str(i).encode(), on_delivery=report)
            i += 1
        except BufferError:
            p.poll(0.1)
        p.poll(0)
    left = p.flush(120)
    print(json.dumps({"produced": i, "unflushed": left, "failed": failed}))


def group_member(bootstrap, topic, group, name, stop_file):
    """A confluent-kafka group member: prints each record it processes,
    commits synchronously after each one, until STOP_FILE exists."""
    import os
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 500, "partition.assignment.strategy": "cooperative-sticky"
                  if name.endswith("-sticky") else "range,roundrobin"})

    # What the member holds: eager assignors hand out all of it at each
    # rebalance; cooperative-sticky hands out and takes back only what moves.
    held = set()

    def report():
        print(json.dumps({"member": name, "assigned": sorted(held)}), flush=True)

    def assigned(consumer, partitions):
        held.update(p.partition for p in partitions)
        report()

    def revoked(consumer, partitions):
        held.difference_update(p.partition for p in partitions)
        report()

    c.subscribe([topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
    while not os.path.exists(stop_file):
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        print(json.dumps({"member": name, "partition": m.partition(), "offset": m.offset(),
                          "value": m.value().decode()}), flush=True)
        try:
            c.commit(message=m, asynchronous=False)
        except Exception as e:  # a rebalance took the partition: it is redelivered
            print(json.dumps({"member": name, "commit_failed": [m.partition(), m.offset()],
                              "error": str(e)}), flush=True)
    c.close()
    print(json.dumps({"member": name, "closed": True}), flush=True)


def consume_commit(bootstrap, topic, group, count):
    """A confluent-kafka member of GROUP that reads COUNT records of TOPIC
    from the group's committed offsets (the earliest where it has none),
    commits the offset after each one synchronously (auto-commit off), and
    then leaves the group (close), committing nothing more. Prints each
    record, then how many it read and the offsets it committed; gives up
    reading after 60 s, so that a short count shows as such."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.subscribe([topic])
    committed, n, deadline = {}, 0, time.time() + 60
    while n < int(count) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        print(json.dumps({"partition": m.partition(), "offset": m.offset(), "value": m.value().decode()}),
              flush=True)
        for tp in c.commit(offsets=[TopicPartition(topic, m.partition(), m.offset() + 1)], asynchronous=False):
            if tp.error is not None:
                raise KafkaException(tp.error)
        committed[m.partition()] = m.offset() + 1
        n += 1
    c.close()
    print(json.dumps({"consumed": n, "committed": {str(p): o for p, o in sorted(committed.items())}}), flush=True)


def idle_member(bootstrap, topic, group, stop_file):
    """A confluent-kafka member of GROUP subscribed to TOPIC that reads
    nothing and commits nothing, until STOP_FILE exists: a consumer the
    broker must report although it has no offsets. Prints its assignment."""
    import os
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "latest", "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 500})

    def assigned(consumer, partitions):
        # Paused: the member holds its partitions without reading them.
        consumer.pause(partitions)
        print(json.dumps({"assigned": sorted(p.partition for p in partitions)}), flush=True)

    c.subscribe([topic], on_assign=assigned)
    while not os.path.exists(stop_file):
        c.poll(0.2)
    c.close()
    print(json.dumps({"closed": True}), flush=True)


def admin_tour(bootstrap, topic):
    """The admin and lookup APIs that the other commands do not use, through
    confluent-kafka's AdminClient and kafka-python's clients: topics created,
    grown, described and deleted; produce with acks 0 and 1; offsets by time
    and at the end; groups listed, described and deleted. Prints one JSON
    line per step with what the client saw."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

    def step(name, **seen):
        print(json.dumps({"step": name, **seen}), flush=True)

    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1,
                                       config={"retention.ms": "3600000"})]).values():
        f.result()
    try:
        a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result()
        step("create-again", error=None)
    except Exception as e:
        step("create-again", error=e.args[0].name())
    a.create_partitions([NewPartitions(topic, 3)])[topic].result()
    md = a.list_topics(topic, timeout=10)
    step("partitions", count=len(md.topics[topic].partitions))
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = a.describe_configs([res])[res].result()
    step("describe-configs", retention_ms=configs["retention.ms"].value)

    # kafka-python: acks 0 and 1, then offsets by time and at the end.
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    base = int(time.time() * 1000) - 60_000
    for acks in (0, 1):
        p = KafkaProducer(bootstrap_servers=[bootstrap], acks=acks)
        for i in range(10):
            p.send(topic, value=f"acks{acks}-{i}".encode(), partition=0, timestamp_ms=base + acks * 10 + i)
        p.flush()
        p.close()
    c = KafkaConsumer(bootstrap_servers=[bootstrap])
    tp = KTP(topic, 0)
    end = c.end_offsets([tp])[tp]
    begin = c.beginning_offsets([tp])[tp]
    at = c.offsets_for_times({tp: base + 12})[tp]
    step("offsets", begin=begin, end=end, at_time=at.offset if at else None,
         at_time_ts=at.timestamp if at else None)
    c.close()

    # A group with a committed offset, listed, described, deleted.
    group = f"{topic}-admin-group"
    g = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    g.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
    g.close()
    listed = a.list_consumer_groups().result()
    step("list-groups", found=any(x.group_id == group for x in listed.valid))
    described = a.describe_consumer_groups([group])[group].result()
    step("describe-group", state=str(described.state), members=len(described.members))
    committed = a.list_consumer_group_offsets(
        [__import__("confluent_kafka").ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]
    )[group].result()
    step("group-offsets", offset=committed.topic_partitions[0].offset)
    a.delete_consumer_groups([group])[group].result()
    listed = a.list_consumer_groups().result()
    step("deleted-group", found=any(x.group_id == group for x in listed.valid))

    for f in a.delete_topics([topic]).values():
        f.result()
    deadline = time.time() + 10
    while time.time() < deadline and topic in a.list_topics(timeout=10).topics:
        time.sleep(0.1)
    step("deleted-topic", found=topic in a.list_topics(timeout=10).topics)


def compaction_produce(bootstrap, topic):
    """A compacted topic made through confluent-kafka's AdminClient
    (cleanup.policy=compact in CreateTopics), its configs described, ten
    keys written twenty times each and two tombstones with kafka-python,
    and a keyless record sent with librdkafka. One JSON line per step."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
    from kafka import KafkaProducer

    def step(name, **seen):
        print(json.dumps({"step": name, **seen}), flush=True)

    a = AdminClient({"bootstrap.servers": bootstrap})
    config = {"cleanup.policy": "compact", "segment.bytes": "2048",
              "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "3600000"}
    for f in a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                       config=config)]).values():
        f.result()
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = a.describe_configs([res])[res].result()
    step("describe-configs", cleanup_policy=configs["cleanup.policy"].value,
         dirty_ratio=configs["min.cleanable.dirty.ratio"].value,
         delete_retention_ms=configs["delete.retention.ms"].value)

    p = KafkaProducer(bootstrap_servers=[bootstrap], acks="all")
    for version in range(20):
        for k in range(10):
            p.send(topic, key=f"k{k}".encode(), value=f"k{k}-v{version}".encode())
        p.flush()
    for k in (0, 1):
        p.send(topic, key=f"k{k}".encode(), value=None)
    p.flush()
    # More writes, so that the tombstones' segment is sealed and cleanable.
    for i in range(30):
        p.send(topic, key=b"filler", value=f"filler-{i}".encode())
        p.flush()
    p.close()
    step("produced", count=20 * 10 + 2 + 30)

    errors = []
    cp = Producer({"bootstrap.servers": bootstrap, "message.send.max.retries": 0})
    cp.produce(topic, value=b"no key", on_delivery=lambda err, msg: errors.append(err.name() if err else None))
    cp.flush(30)
    step("keyless", error=errors[0] if errors else "no report")


def compaction_consume(bootstrap, topic, count):
    """Reads COUNT records of a compacted topic from the start with
    kafka-python, then with librdkafka (tombstones have a null value)."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    def show(client, offset, key, value):
        print(json.dumps({"client": client, "offset": offset, "key": key.decode() if key else None,
                          "value": value.decode() if value is not None else None}), flush=True)

    c = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=20000)
    c.assign([KTP(topic, 0)])
    c.seek_to_beginning()
    n = 0
    for m in c:
        show("kafka-python", m.offset, m.key, m.value)
        n += 1
        if n >= int(count):
            break
    c.close()

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-reader",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    n, deadline = 0, time.time() + 30
    while n < int(count) and time.time() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        show("confluent-kafka", m.offset(), m.key(), m.value())
        n += 1
    c.close()


COMMANDS = {
    "compaction-produce": compaction_produce,
    "compaction-consume": compaction_consume,
    "admin-tour": admin_tour,
    "seed-producer": seed_producer,
    "compressed-producer": compressed_producer,
    "kafka-python-consume": kafka_python_consume,
    "confluent-consume": confluent_consume,
    "idempotent-produce": idempotent_produce,
    "group-member": group_member,
    "consume-commit": consume_commit,
    "idle-member": idle_member,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[2]](sys.argv[1], *sys.argv[3:])
