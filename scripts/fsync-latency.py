#!/usr/bin/env python3
"""Latency of a 1 KiB append + fdatasync on this disk (what W3 durable waits
for), for a preallocated file, a zero-written file and a plain one.
    scripts/fsync-latency.py [DIR]   (default: the current directory)"""
import os, sys, time

def run(path, mode, n=3000):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    size = 64 << 20
    if mode == 'fallocate':
        os.posix_fallocate(fd, 0, size)
    elif mode == 'zeroed':
        buf = b'\0' * (1 << 20)
        for _ in range(size >> 20):
            os.write(fd, buf)
    os.fsync(fd)
    data, off, lat = b'x' * 1100, 0, []
    for _ in range(n):
        t = time.perf_counter()
        os.pwrite(fd, data, off)
        off += len(data)
        os.fdatasync(fd)
        lat.append((time.perf_counter() - t) * 1e6)
    os.close(fd)
    os.unlink(path)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))]
    print(f"{mode:10s} p50 {q(.5):5.0f} us  p99 {q(.99):5.0f} us  p999 {q(.999):5.0f} us")

d = sys.argv[1] if len(sys.argv) > 1 else '.'
for mode in ['fallocate', 'zeroed', 'plain'] * 2:
    run(os.path.join(d, 'brook-fsync-latency.bin'), mode)
