#!/usr/bin/env bash
# The main job on the demo bundle: make a vendor key, build bundles/demo into one signed file,
# then check it the ways a customer would and look inside. Outputs go to target/demo/.
set -euo pipefail
source "$(dirname "$0")/setup.sh"

out=target/demo
mkdir -p "$out"
[ -f "$out/vendor.key" ] || "$DELIVERY" keygen --out "$out/vendor"

step "delivery build -f bundles/demo/Kubefile --key $out/vendor.key -o $out/delivery.run"
"$DELIVERY" build -f bundles/demo/Kubefile --key "$out/vendor.key" -o "$out/delivery.run" --stub "$DELIVERY_STUB"

step "customer checks, without running the file"
(cd "$out" && sha256sum -c delivery.run.sha256)
ssh-keygen -Y verify -f "$out/vendor.allowed_signers" -I vendor -n delivery -s "$out/delivery.run.sig" < "$out/delivery.run"
"$DELIVERY" verify "$out/delivery.run" --key "$out/vendor.pub"

step "./delivery.run verify / info / list"
"$out/delivery.run" verify --key "$out/vendor.pub"
"$out/delivery.run" info --key "$out/vendor.pub"
"$out/delivery.run" list --key "$out/vendor.pub"
