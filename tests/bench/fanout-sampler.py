#!/usr/bin/env python3
"""Helper of fanout.sh: watches each target's node.tar.partial from the machine (through the test
bed's overlay upper directories) every 0.05 s and prints, per target, "HOST FIRST LAST": when the
first byte was seen and when the file last grew (epoch seconds), i.e. the upload alone, without
the remote sha256sum, sync and untar that follow it. Stops when every target has its node.tar,
on SIGTERM, or after 20 minutes.

usage: fanout-sampler.py BED_DIR CLUSTER N   (targets are node2..node(N+1))
"""
import os, signal, sys, time

bed, cluster, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
hosts = range(2, n + 2)
base = {i: f"{bed}/node{i}/up/var/lib/delivery/{cluster}/payload/node.tar" for i in hosts}
first, last, size = {}, {}, {}
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
deadline = time.time() + 1200
while not stop and time.time() < deadline:
    now = time.time()
    done = 0
    for i in hosts:
        try:
            s = os.stat(base[i] + ".partial").st_size
        except FileNotFoundError:
            done += os.path.exists(base[i])
            continue
        if s > 0 and i not in first:
            first[i] = now
        if s > size.get(i, 0):
            size[i], last[i] = s, now
    if done == n:
        break
    time.sleep(0.05)
for i in hosts:
    if i in first:
        print(f"10.213.7.1{i} {first[i]:.3f} {last[i]:.3f}")
