#!/usr/bin/env python3
"""Write bandwidth into page cache that is new vs already cached, and after
reading the (preallocated) range in first. On the VMs Brook was measured on,
new page cache is 5-10x slower: that is what bounds W1 with one batch in
flight (docs/benchmarks.md). Waits between runs so freed memory goes back
to the host, as it does between benchmark rounds.
    scripts/page-cache-touch.py [DIR]   (default: the current directory)"""
import os, sys, time

SIZE = 512 << 20
BUF = b'x' * (1 << 20)

def run(path, mode):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.posix_fallocate(fd, 0, SIZE)
    t0 = time.perf_counter()
    if mode == 'read-first':
        while os.read(fd, 1 << 20):
            pass
    t1 = time.perf_counter()
    for off in range(0, SIZE, len(BUF)):
        os.pwrite(fd, BUF, off)
    t2 = time.perf_counter()
    again = time.perf_counter()
    for off in range(0, SIZE, len(BUF)):
        os.pwrite(fd, BUF, off)
    t3 = time.perf_counter()
    os.close(fd)
    os.unlink(path)
    mb = SIZE / 1e6
    print(f"{mode:10s} read-in {t1 - t0:5.2f} s  first write {mb / (t2 - t1):5.0f} MB/s  overwrite {mb / (t3 - again):5.0f} MB/s")

d = sys.argv[1] if len(sys.argv) > 1 else '.'
for mode in ['new', 'read-first'] * 2:
    time.sleep(8)
    run(os.path.join(d, 'brook-page-cache-touch.bin'), mode)
