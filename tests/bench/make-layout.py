#!/usr/bin/env python3
"""Write an OCI image layout of N single-layer images with random (incompressible) layers.

Usage: make-layout.py DIR IMAGES LAYER_MIB
Each image `bench:imgK` has its own config and a LAYER_MIB layer of random bytes labelled as
tar+gzip (registries and clients move blobs without looking inside). Deterministic: seeded.
"""
import hashlib
import json
import os
import random
import sys


def write_blob(blobs, data=None, gen=None, size=0):
    """Store bytes (or a generator of chunks) under their sha256; return (digest, size)."""
    h = hashlib.sha256()
    tmp = os.path.join(blobs, ".tmp")
    n = 0
    with open(tmp, "wb") as f:
        for chunk in ([data] if data is not None else gen):
            h.update(chunk)
            f.write(chunk)
            n += len(chunk)
    digest = h.hexdigest()
    os.replace(tmp, os.path.join(blobs, digest))
    return digest, n


def main():
    out, images, layer_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    rng = random.Random(2026)
    refs = []
    for k in range(images):
        def chunks():
            for _ in range(layer_mib):
                yield rng.randbytes(1 << 20)
        layer, lsize = write_blob(blobs, gen=chunks())
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer]}}).encode()
        cdig, csize = write_blob(blobs, data=config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cdig, "size": csize},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + layer, "size": lsize}],
        }).encode()
        mdig, msize = write_blob(blobs, data=manifest)
        refs.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + mdig,
                     "size": msize, "annotations": {"org.opencontainers.image.ref.name": f"img{k}"}})
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": refs}, f)


if __name__ == "__main__":
    main()
