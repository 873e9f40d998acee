#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz corpus (fuzz/corpus/<target>/seed-*).

Every seed is built here from the formats in docs/format.md and the parsers'
own sources, with the standard library only (zlib.crc32 is the same CRC-32
as crc32fast), so that a format change is one edit here and a rerun:

    python3 fuzz/make_seeds.py

Inputs that libFuzzer found (files named by their SHA-1) are left alone.
"""

import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# ---------------------------------------------------------------- batches ---


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def varint(v):
    """Zig-zag, as put_varint."""
    return uvarint(((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF)


def nullable(b):
    return varint(-1) if b is None else varint(len(b)) + b


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli), as the crc32c crate and Kafka compute it."""
    c = 0xFFFFFFFF
    for b in data:
        c = CRC32C_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def record_v1(index, ts_delta, key, value, headers):
    body = (
        b"\x00"
        + varint(ts_delta)
        + uvarint(index)
        + nullable(key)
        + nullable(value)
        + uvarint(len(headers))
        + b"".join(uvarint(len(k)) + k + uvarint(len(v)) + v for k, v in headers)
    )
    return uvarint(len(body)) + body


def record(index, ts_delta, key, value, headers):
    """Kafka's RecordBatch v2 record: every length and count zig-zag."""
    body = (
        b"\x00"
        + varint(ts_delta)
        + varint(index)
        + nullable(key)
        + nullable(value)
        + varint(len(headers))
        + b"".join(varint(len(k)) + k + varint(len(v)) + v for k, v in headers)
    )
    return varint(len(body)) + body


def _after_crc(records, record_fn, producer, log_append_time):
    """The bytes a batch's CRC covers: the header from the attributes on, then the records."""
    first_ts = records[0][0]
    max_ts = max(r[0] for r in records)
    body = b"".join(
        record_fn(i, ts - first_ts, k, v, hs) for i, (ts, k, v, hs) in enumerate(records)
    )
    pid, epoch, seq = producer
    return (
        struct.pack(
            ">HIqqqhiI",
            0b1000 if log_append_time else 0,
            len(records) - 1,
            first_ts,
            max_ts,
            pid,
            epoch,
            seq,
            len(records),
        )
        + body
    )


def batch(base, records, producer=(-1, -1, -1), log_append_time=False):
    """A v2 batch (the format written). records: [(timestamp, key, value, [(header key, header value)])]."""
    after_crc = _after_crc(records, record, producer, log_append_time)
    crc = crc32c(after_crc)
    return struct.pack(">QIiBI", base, 4 + 1 + 4 + len(after_crc), -1, 2, crc) + after_crc


def batch_v1(base, records, producer=(-1, -1, -1), log_append_time=False):
    """A batch of Brook's first format (magic 1), which brokers still read."""
    after_crc = _after_crc(records, record_v1, producer, log_append_time)
    crc = zlib.crc32(after_crc) & 0xFFFFFFFF
    return struct.pack(">QIBI", base, 1 + 4 + len(after_crc), 1, crc) + after_crc


def flip(buf, at):
    b = bytearray(buf)
    b[at] ^= 0x10
    return bytes(b)


T = 1_700_000_000_000
ORDER = (T, b"order-42", b'{"type":"OrderPlaced"}', [(b"correlation-id", b"c-1")])


def log_at(base):
    """Three batches back to back from offset `base` (2, 1 and 2 records):
    the bytes, and the byte position where the middle batch starts."""
    a = batch(base, [(T, b"k", b"v1", []), (T + 1, None, b"v2", [(b"h", b"x")])])
    b = batch(base + 2, [ORDER])
    c = batch(base + 3, [(T + 5, b"k2", None, []), (T + 4, b"k3", b"", [])])
    return a + b + c, len(a)


# --------------------------------------------------------------- protobuf ---


def key(field, wire):
    return uvarint((field << 3) | wire)


def pb_varint(field, v):
    return key(field, 0) + uvarint(v & 0xFFFFFFFFFFFFFFFF)


def pb_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return key(field, 2) + uvarint(len(b)) + b


# ---------------------------------------------------------- partition dir ---

SEPARATOR = b"\n=brook-fuzz=\n"  # brook_fuzz::SEPARATOR
FILES = [
    "log0", "index0", "timeindex0", "log1", "index1", "timeindex1",
    "recovery-point", "log-start-offset", ".clean-shutdown", "producer-state",
    "leader-epoch-checkpoint",
]
FIX_CRCS, RENUMBER, APPEND, REOPEN, MMAP, SMALL_INDEX, DRY_RUN = 1, 2, 4, 8, 16, 32, 64


def partition(options, files, base0=0, delta=0):
    """brook_fuzz::lay_out_partition's input: header, then sections."""
    mask = 0
    for name in files:
        mask |= 1 << FILES.index(name)
    last = max((FILES.index(n) for n in files), default=-1)
    sections = [files.get(FILES[i], b"") for i in range(last + 1)]
    return struct.pack(">BHII", options, mask, base0, delta) + SEPARATOR.join(sections)


def producer_state(version, valid_to, producers):
    """producers: [(pid, epoch, next_seq, last_seen_ms, [(base_seq, last_seq, base_off, last_off)])]."""
    text = f"brook-producers {version} {valid_to}\n"
    for pid, epoch, next_seq, seen, batches in producers:
        text += f"p {pid} {epoch} {next_seq}" + (f" {seen}" if version >= 3 else "") + "\n"
        for b in batches:
            text += "b {} {} {} {}\n".format(*b)
    if version >= 2:
        text += f"crc {zlib.crc32(text.encode()) & 0xFFFFFFFF}\n"
    return text.encode()


def seeds():
    s = {}
    log, middle = log_at(0)

    # batch: the codec
    s["batch"] = {
        "one-record": batch(0, [ORDER]),
        "first-format": batch_v1(0, [ORDER, (T + 1, None, b"v", [(b"h", b"x")])]),
        "idempotent-two-records": batch(
            0, [(1000, b"k", b"v", []), (990, None, None, [(b"h", b"x")])], producer=(7, 3, 11)
        ),
        "log-append-time": batch(42, [(T, None, b"tombstone-next", [])], log_append_time=True),
        "tombstone": batch(7, [(T, b"user-1", None, [])]),
        "three-batches": log,
        "bad-crc": flip(batch(0, [ORDER]), 40),
    }

    # scan: header (options, expected, span, from) + segment bytes
    def scan(options, expected, span, data, frm=0):
        return struct.pack(">BIIH", options, expected, span, frm) + data

    log10, middle10 = log_at(10)
    s["scan"] = {
        "intact": scan(0, 10, 0, log10),
        "damaged-middle": scan(0, 10, 0, flip(log10, middle10 + 30)),
        "zeros-after": scan(0, 10, 0, log10 + bytes(200)),
        "wrong-base-renumbered": scan(FIX_CRCS | RENUMBER, 10, 100, log),
        "limit": scan(0, 10, 3, log10),
    }

    # recovery and verify: a partition directory
    timeindex_final = struct.pack(">qI", T + 5, 5)  # (max timestamp, next relative offset)
    idem = batch(0, [(T, b"k", b"a", []), (T, b"k", b"b", [])], producer=(7, 0, 0)) + batch(
        2, [(T + 1, b"k", b"c", [])], producer=(7, 0, 2)
    )
    seg1, _ = log_at(5)
    s["recovery"] = {
        "new-partition": partition(APPEND | REOPEN, {}),
        "one-segment-unclean": partition(APPEND | REOPEN, {"log0": log}),
        "clean-shutdown": partition(
            APPEND | REOPEN,
            {"log0": log, "index0": b"", "timeindex0": timeindex_final, ".clean-shutdown": b"5\n"},
        ),
        "two-segments": partition(
            REOPEN | SMALL_INDEX,
            {"log0": log, "log1": seg1, "recovery-point": b"5\n", "log-start-offset": b"0\n"},
            delta=5,
        ),
        "producers-and-epochs": partition(
            APPEND | REOPEN | MMAP,
            {
                "log0": idem,
                "producer-state": producer_state(3, 2, [(7, 0, 2, T, [(0, 1, 0, 1)])]),
                "leader-epoch-checkpoint": b"0\n2\n0 0\n3 2\n",
            },
        ),
        "damaged-middle": partition(
            REOPEN, {"log0": flip(log, middle + 30), "recovery-point": b"5\n"}
        ),
        "torn-tail": partition(APPEND | REOPEN, {"log0": log[:-7]}),
        "fix-crcs": partition(FIX_CRCS | RENUMBER | APPEND, {"log0": flip(log, 45)}, base0=100),
    }
    s["verify"] = dict(s["recovery"])
    s["verify"]["two-segments-dry-run"] = partition(
        DRY_RUN, {"log0": log, "log1": flip(seg1, 50), "recovery-point": b"5\n"}, delta=5
    )

    # storage's small files
    s["topic_meta"] = {
        "as-written": (
            b"version=1\npartitions=3\nsegment_bytes=134217728\nsegment_ms=604800000\n"
            b"index_interval_bytes=4096\nretention_ms=604800000\nretention_bytes=none\n"
            b"max_batch_bytes=4194304\nflush=interval:1000\nappend_mode=write\n"
        ),
        "minimal": b"version=1\npartitions=1\n",
        "always-mmap": b"version=1\npartitions=12\nflush=always\nappend_mode=mmap\nretention_ms=none\nretention_bytes=1073741824\nfuture_key=1\n",
    }
    s["offset_file"] = {"zero": b"0\n", "offset": b"12345\n", "max": b"18446744073709551615\n"}
    s["producer_state"] = {
        "v3": producer_state(3, 16, [(3, 2, 5, T, [(0, 3, 10, 13), (4, 4, 14, 14)]), (9, 0, 1, T + 9, [(0, 0, 15, 15)])]),
        "v2": producer_state(2, 15, [(3, 2, 5, None, [(0, 3, 10, 13), (4, 4, 14, 14)])]),
        "v1": producer_state(1, 15, [(3, 2, 5, None, [(0, 3, 10, 13)])]),
        "empty-v3": producer_state(3, 0, []),
    }
    s["leader_epochs"] = {"two": b"0\n2\n1 0\n3 10\n", "none": b"0\n0\n"}

    # the broker's files
    # First byte even: the rest is ~groups/offsets.log; odd: a file of the first format.
    def offsets_frame(group, offsets, delete=False):
        payload = pb_bytes(1, group)
        for topic, part, off, meta, ts in offsets:
            payload += pb_bytes(2, pb_bytes(1, topic) + pb_varint(2, part) + pb_varint(3, off)
                                + pb_bytes(4, meta) + pb_varint(5, ts))
        if delete:
            payload += pb_varint(3, 1)
        return struct.pack("<II", len(payload), zlib.crc32(payload) & 0xFFFFFFFF) + payload

    offsets_log = b"brook-offsets-log 1\n"
    s["group_offsets"] = {
        "log-two-groups": b"\x00" + offsets_log
        + offsets_frame("billing", [("orders", 0, 42, "hi", 1700000000000), ("orders", 1, 7, "", 1700000000001)])
        + offsets_frame("gone", [("orders", 0, 1, "", 1)])
        + offsets_frame("gone", [], delete=True)
        + offsets_frame("billing", [("orders", 0, 43, "", 1700000000002)]),
        "log-torn-tail": b"\x00" + offsets_log
        + offsets_frame("g", [("t", 0, 5, "", 1)])
        + offsets_frame("g", [("t", 0, 6, "", 2)])[:9],
        "log-header-only": b"\x00" + offsets_log,
        "two-partitions": b"\x01brook-offsets 1\norders 0 42 1700000000000 6869\norders 1 7 1700000000001 \n",
        "header-only": b"\x01brook-offsets 1\n",
    }

    # The queue groups' log: Entry { group = 1; oneof op { config = 2,
    # delete = 3, deliver = 4, settle = 5, extend = 6, skip = 7, snapshot =
    # 8, redriven = 9 } } (broker/src/queues/store.rs). The first byte, even,
    # makes the target put the log's first line before the frames.
    def queue_frame(group, field, body):
        op = pb_varint(field, body) if isinstance(body, int) else pb_bytes(field, body)
        payload = pb_bytes(1, group) + op
        return struct.pack("<II", len(payload), zlib.crc32(payload) & 0xFFFFFFFF) + payload

    def span(first, last):
        return pb_bytes(4, pb_varint(1, first) + pb_varint(2, last))

    config = (pb_bytes(1, "orders") + pb_varint(2, 30000) + pb_varint(3, 5) + pb_varint(4, 1000)
              + pb_varint(5, 60000) + key(6, 1) + struct.pack("<d", 2.0) + pb_bytes(8, "orders.g.dlq")
              + pb_varint(9, 1) + pb_varint(10, 10000) + pb_varint(11, 1700000000000))
    deliver = pb_varint(1, 0) + pb_bytes(2, "consumer-1") + pb_varint(3, 1700000030000) + span(0, 9)
    settle_ack = pb_varint(1, 0) + pb_bytes(2, pb_varint(1, 0) + pb_varint(2, 4)) + pb_varint(3, 0)
    settle_nack = (pb_varint(1, 0) + pb_bytes(2, pb_varint(1, 5) + pb_varint(2, 6)) + pb_varint(3, 1)
                   + pb_varint(4, 1700000001000) + pb_bytes(5, "bad payload") + pb_varint(6, 1700000000500))
    skip = pb_varint(1, 1) + pb_varint(2, 42)
    redriven = pb_varint(1, 0) + pb_bytes(2, pb_varint(1, 0) + pb_varint(2, 2))
    s["queues_log"] = {
        "one-group": b"\x00" + queue_frame("g", 2, config) + queue_frame("g", 4, deliver)
        + queue_frame("g", 5, settle_ack) + queue_frame("g", 5, settle_nack)
        + queue_frame("g", 7, skip) + queue_frame("g", 9, redriven),
        "deleted-group": b"\x00" + queue_frame("gone", 2, config) + queue_frame("gone", 3, 1),
        "header-only": b"\x00",
        "not-a-log": b"\x01brook-offsets-log 1\n",
    }
    s["producer_ids"] = {"zero": b"0\n", "block": b"1000\n"}
    s["serve_config"] = {
        "full": (
            b'data_dir = "/var/lib/brook"\nlisten = "0.0.0.0:9292"\nmax_request_bytes = 16777216\n'
            b'retention_ms = -1\nretention_bytes = 1073741824\nsegment_bytes = 67108864\n'
            b'flush = "interval:500"\ngroup_min_session_timeout_ms = 1000\n'
            b'group_max_session_timeout_ms = 60000\non_open_error = "fail"\n'
        ),
        "auth": b'auth = "off"\nsuper_users = ["admin"]\nflush = "always"\n',
        "empty": b"",
    }

    # gRPC requests
    produce = pb_bytes(1, "orders") + pb_varint(2, 3) + pb_bytes(3, batch(0, [ORDER])) + pb_varint(4, 1)
    s["requests"] = {
        "produce": produce,
        "fetch": pb_bytes(1, "orders") + pb_varint(3, 42) + pb_varint(4, 1 << 20) + pb_varint(7, 1),
        "subscribe": pb_bytes(1, "orders") + pb_bytes(2, b"\x00\x01\x02")
        + pb_bytes(3, pb_varint(3, 5)) + pb_varint(5, 1),
        "create-topic": pb_bytes(1, "orders")
        + pb_bytes(2, pb_varint(1, 3) + pb_varint(2, -1) + pb_varint(7, 2) + pb_varint(8, 1000)),
        "commit": pb_bytes(1, "billing") + pb_bytes(2, "member-1") + pb_varint(3, 7)
        + pb_bytes(4, pb_bytes(1, "orders") + pb_varint(2, 0) + pb_varint(3, 42) + pb_bytes(4, "m")),
        "join": pb_bytes(1, pb_bytes(1, "billing") + pb_bytes(2, "orders") + pb_bytes(3, "client-7")
                         + pb_varint(4, 10000) + pb_varint(5, 3)),
        "create-acls": pb_bytes(1, pb_bytes(1, "alice") + pb_varint(2, 1) + pb_varint(3, 2)
                                + pb_varint(4, 1) + pb_varint(5, 1) + pb_bytes(6, "orders")),
    }

    # auth files
    s["tokens"] = {
        "one": b'[[tokens]]\nprincipal = "alice"\nsha256 = "' + b"3a" * 32 + b'"\n',
        "two": (
            b'# made by brook token create\n[[tokens]]\nprincipal = "alice"\nsha256 = "'
            + b"0123456789abcdef" * 4
            + b'"\n\n[[tokens]]\nprincipal = "CN=billing,O=Acme"\nsha256 = "'
            + b"FEDCBA9876543210" * 4
            + b'"\n'
        ),
        "empty": b"",
    }
    s["acls"] = {
        "one": b'{"version":1,"acls":[{"principal":"alice","permission":"allow","operation":"read",'
        b'"resource_type":"topic","pattern_type":"literal","resource_name":"orders"}]}',
        "mixed": b'{"version":1,"acls":[{"principal":"*","permission":"deny","operation":"delete",'
        b'"resource_type":"group","pattern_type":"literal","resource_name":"*"},'
        b'{"principal":"bob","permission":"allow","operation":"all","resource_type":"cluster",'
        b'"pattern_type":"literal","resource_name":"brook"},'
        b'{"principal":"carol","permission":"allow","operation":"write","resource_type":"topic",'
        b'"pattern_type":"prefixed","resource_name":"ord"}]}\n',
        "empty": b'{"version":1,"acls":[]}',
    }
    return s


def main():
    for target, files in seeds().items():
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            assert len(data) < 4096, (target, name, len(data))
            with open(os.path.join(d, f"seed-{name}"), "wb") as f:
                f.write(data)
    print("seeds written under", CORPUS)


if __name__ == "__main__":
    main()
