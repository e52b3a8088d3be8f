#!/usr/bin/env python3
"""Generate a deterministic build context shaped like a real delivery, for tests/bench/bundle.sh.

Shape (by bytes):
  ~60%  blobs/sha256/<hex>.tar.gz: random bytes, 20-200 MiB each, like OCI image layers. Half of
        them start with a gzip header and half do not, so that both ways `delivery build` spots
        already-compressed data (magic bytes, and a zstd sample that does not shrink) are used.
  ~40%  binaries and YAML:
        - bin/, lib/: 4-64 MiB files made by concatenating real ELF executables from /usr/bin.
          Real machine code compresses like real product binaries (zstd -3 ratio ~2.8 here),
          which synthetic data does not, and zstd's speed depends on what it is compressing.
        - charts/, manifests/, config/: a few thousand small YAML files in nested directories,
          since per-file overhead matters as much as bytes for extraction.

Everything is derived from a fixed seed, the sorted list of ELF files in /usr/bin and the size,
so the same machine image produces the same context. Data is written in 1 MiB chunks and never
held in memory as a whole.

Usage: make-context.py DIR SIZE_MB
Writes DIR (must not exist) and prints a one-line JSON summary on stdout.
"""

import json
import os
import random
import sys

MIB = 1 << 20
CHUNK = MIB
SEED = 20260601
BLOB_SHARE = 0.60
ELF_POOL_DIR = "/usr/bin"


def write_file(path, size, chunks):
    """Write `size` bytes taken from the iterator `chunks` (each at most CHUNK bytes)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    left = size
    with open(path, "wb") as f:
        while left > 0:
            b = next(chunks)
            if len(b) > left:
                b = b[:left]
            f.write(b)
            left -= len(b)


def random_chunks(rng, prefix=b""):
    """Incompressible bytes: what a gzip'd layer or any compressed archive looks like to zstd."""
    if prefix:
        yield prefix + rng.randbytes(CHUNK - len(prefix))
    while True:
        yield rng.randbytes(CHUNK)


def elf_pool():
    """Sorted real ELF files from /usr/bin, with their sizes: the raw material of 'binaries'."""
    pool = []
    for name in sorted(os.listdir(ELF_POOL_DIR)):
        p = os.path.join(ELF_POOL_DIR, name)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        try:
            with open(p, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
        except OSError:
            continue
        pool.append(p)
    if sum(os.path.getsize(p) for p in pool) < 16 * MIB:
        sys.exit(f"make-context: fewer than 16 MiB of ELF files in {ELF_POOL_DIR}")
    return pool


def elf_chunks(pool, start):
    """Endless concatenation of the ELF pool from file index `start`, in chunks of <= 1 MiB.

    Each binary starts at a file boundary, so it begins with an ELF header like a real one; the
    pool (~240 MiB) is far longer than zstd's window, so reuse across files does not make the
    data look more compressible than it is."""
    i = start
    while True:
        with open(pool[i % len(pool)], "rb") as f:
            while True:
                b = f.read(CHUNK)
                if not b:
                    break
                yield b
        i += 1


def split_sizes(rng, total, lo, hi):
    """Cut `total` bytes into sizes drawn from [lo, hi]; no piece smaller than lo (unless total is)."""
    sizes = []
    while total > 0:
        s = min(rng.randint(lo, hi), total)
        if total - s < lo:
            s = total
        sizes.append(s)
        total -= s
    return sizes


# --- YAML ------------------------------------------------------------------------------------

WORDS = ("api gateway auth billing cache catalog checkout config controller dns etcd events "
         "frontend gateway ingress inventory kafka logging metrics monitor notify orders "
         "payments postgres proxy queue redis registry scheduler search storage worker").split()
KINDS = ["Deployment", "Service", "ConfigMap", "StatefulSet", "Ingress", "Role", "RoleBinding",
         "ServiceAccount", "CronJob", "NetworkPolicy", "PersistentVolumeClaim", "Secret"]


def yaml_doc(rng, target):
    """A Kubernetes-looking manifest of about `target` bytes: names, labels, env, some noise."""
    name = "-".join(rng.sample(WORDS, 2))
    kind = rng.choice(KINDS)
    lines = [
        "apiVersion: apps/v1" if kind in ("Deployment", "StatefulSet") else "apiVersion: v1",
        f"kind: {kind}",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {rng.choice(WORDS)}",
        "  labels:",
        f"    app.kubernetes.io/name: {name}",
        f"    app.kubernetes.io/version: \"{rng.randint(1, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 200)}\"",
        "spec:",
        f"  replicas: {rng.randint(1, 5)}",
        "  template:",
        "    spec:",
        "      containers:",
        f"        - name: {name}",
        f"          image: registry.local/{rng.choice(WORDS)}/{name}@sha256:{rng.getrandbits(256):064x}",
        "          env:",
    ]
    size = sum(len(l) + 1 for l in lines)
    while size < target:
        w = rng.choice(WORDS).upper()
        if rng.random() < 0.15:
            line = f"            - {{name: {w}_TOKEN, value: \"{rng.randbytes(24).hex()}\"}}"
        else:
            line = f"            - {{name: {w}_{rng.choice(WORDS).upper()}, value: \"{rng.choice(WORDS)}-{rng.randint(0, 9999)}\"}}"
        lines.append(line)
        size += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def yaml_dirs(rng, count):
    """About one directory per dozen files, 2-4 levels deep, like charts/<chart>/templates: a
    directory per file would make extraction measure mkdir instead of writing data."""
    dirs = set()
    while len(dirs) < count:
        top = rng.choice(["charts", "manifests", "config"])
        dirs.add(os.path.join(top, *(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))))
    return sorted(dirs)


def yaml_path(rng, dirs, i):
    return os.path.join(rng.choice(dirs), f"{rng.choice(WORDS)}-{i:05d}.yaml")


# --- main ------------------------------------------------------------------------------------

def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root, size_mb = sys.argv[1], int(sys.argv[2])
    if os.path.exists(root):
        sys.exit(f"make-context: {root} already exists")
    rng = random.Random(SEED)
    total = size_mb * MIB

    # Small files first: their count scales with the size (4000 at 2 GiB), never below 1000.
    yaml_count = max(1000, round(4000 * size_mb / 2048))
    yaml_bytes = 0
    dirs = yaml_dirs(rng, max(20, yaml_count // 12))
    for i in range(yaml_count):
        # Mostly a few KiB, some up to 48 KiB, like rendered charts and configs.
        target = int(min(48 * 1024, rng.lognormvariate(8.2, 0.9)))
        data = yaml_doc(rng, target)
        p = os.path.join(root, yaml_path(rng, dirs, i))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        yaml_bytes += len(data)

    blob_total = int(total * BLOB_SHARE)
    bin_total = max(0, total - blob_total - yaml_bytes)

    blob_sizes = split_sizes(rng, blob_total, 20 * MIB, 200 * MIB)
    for i, s in enumerate(blob_sizes):
        name = f"{rng.getrandbits(256):064x}.tar.gz"
        # gzip header (magic, deflate, no flags, mtime 0, OS unix) on every other blob.
        prefix = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" if i % 2 == 0 else b""
        write_file(os.path.join(root, "blobs", "sha256", name), s, random_chunks(rng, prefix))

    pool = elf_pool()
    bin_sizes = split_sizes(rng, bin_total, 4 * MIB, 64 * MIB) if bin_total >= MIB else []
    for i, s in enumerate(bin_sizes):
        sub = "bin" if i % 3 else "lib"
        name = f"{rng.choice(WORDS)}-{i:03d}" + (".so" if sub == "lib" else "")
        write_file(os.path.join(root, sub, name), s, elf_chunks(pool, rng.randrange(len(pool))))

    print(json.dumps({
        "size_mb": size_mb,
        "bytes": blob_total + bin_total + yaml_bytes,
        "files": len(blob_sizes) + len(bin_sizes) + yaml_count,
        "blobs": {"files": len(blob_sizes), "bytes": blob_total},
        "binaries": {"files": len(bin_sizes), "bytes": bin_total, "source": f"ELF files of {ELF_POOL_DIR}"},
        "yaml": {"files": yaml_count, "bytes": yaml_bytes},
    }))


if __name__ == "__main__":
    main()
