#!/usr/bin/env bash
# The main job on the demo bundle: make a vendor key, build bundles/demo into one signed file,
# then check it the ways a customer would and look inside. Outputs go to target/demo/.
set -euo pipefail
source "$(dirname "$0")/setup.sh"

out=target/demo
mkdir -p "$out"
[ -f "$out/vendor.key" ] || "$DELIVERY" keygen --out "$out/vendor"

# The demo's one image, docker.io/library/busybox:1.36, comes from a local OCI layout (as a
# vendor's `docker save` or `skopeo copy` output would): no registry is needed.
tests/fixtures/make-images.sh "$out/images" >/dev/null

step "delivery build -f bundles/demo/Kubefile --key $out/vendor.key -o $out/delivery.run --image-source busybox=$out/images/busybox"
"$DELIVERY" build -f bundles/demo/Kubefile --key "$out/vendor.key" -o "$out/delivery.run" --stub "$DELIVERY_STUB" \
  --image-source "busybox=$out/images/busybox" --cache-dir "$out/cache"

step "customer checks, without running the file"
(cd "$out" && sha256sum -c delivery.run.sha256)
ssh-keygen -Y verify -f "$out/vendor.allowed_signers" -I vendor -n delivery -s "$out/delivery.run.sig" < "$out/delivery.run"
"$DELIVERY" verify "$out/delivery.run" --key "$out/vendor.pub"

step "./delivery.run verify / info / list / images"
"$out/delivery.run" verify --key "$out/vendor.pub"
"$out/delivery.run" info --key "$out/vendor.pub"
"$out/delivery.run" list --key "$out/vendor.pub"
"$out/delivery.run" images --key "$out/vendor.pub"
