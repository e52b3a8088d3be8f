#!/usr/bin/env bash
# Every test, on a fresh Debian 12 machine as on a developer's: installs what is missing, builds,
# checks the stub's portability and size, runs unit and end-to-end tests, then the demo.
# CI (.ci/run) calls exactly this.
set -euo pipefail
source "$(dirname "$0")/setup.sh"

step "checking the stub: highest glibc symbol <= 2.17, size <= 10 MiB"
glibc=$(objdump -T "$DELIVERY_STUB" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
size=$(stat -c %s "$DELIVERY_STUB")
echo "installer-stub: $size bytes, needs GLIBC_$glibc"
if [ "$(printf '%s\n2.17\n' "$glibc" | sort -V | tail -n1)" != "2.17" ]; then
  echo "FAIL: the stub needs GLIBC_$glibc, newer than 2.17: it would not start on CentOS 7" >&2
  exit 1
fi
if [ "$size" -gt $((10 << 20)) ]; then
  echo "FAIL: the stub is $size bytes, over the 10 MiB budget" >&2
  exit 1
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --release --locked --workspace --all-targets -- -D warnings

step "unit and end-to-end tests"
cargo test --release --locked --workspace

step "the Kubernetes bundle's fetch.sh against a fake upstream on loopback"
tests/bundles/kubernetes-fetch.sh >/dev/null
echo "kubernetes-fetch: ok"

step "the demo, as a newcomer runs it"
tests/demo.sh >/dev/null
echo "demo: ok"
