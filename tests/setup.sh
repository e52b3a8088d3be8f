# Sourced by tests/run.sh and tests/demo.sh: installs what a fresh Debian 12 machine lacks and
# builds the two binaries. Idempotent; quiet when everything is already there.
#
# After it: $DELIVERY (the generator) and $DELIVERY_STUB (the portable installer stub, linked
# against glibc 2.17 so bundles start on CentOS 7-era hosts) are set and exported.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*" >&2; }

# Debian packages: ssh-keygen and sha256sum are what customers verify with; zstd and tar open the
# payload without our tools; objdump checks the stub's glibc needs. The image tests use real
# registry parts: docker-registry (the vendor's upstream), skopeo, containerd + runc, curl,
# busybox-static (fixture images), iproute2 (network namespaces), apache2-utils (htpasswd),
# openssl (TLS and token fixtures); openssh-server and sudo run the SSH test bed's hosts;
# perl, make and gcc build the OpenSSL that ssh2 links statically into the stub (gcc also builds
# tests/bench's registry client); python3-yaml parses the kubeadm configs the Kubernetes hooks
# render.
apt_packages=(openssh-client coreutils zstd tar binutils
  docker-registry skopeo containerd runc curl busybox-static iproute2 apache2-utils
  openssh-server sudo openssl perl make gcc python3-yaml)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# cargo-zigbuild links the stub against glibc 2.17 using zig as the C toolchain (both on PyPI).
if ! command -v cargo-zigbuild >/dev/null 2>&1 || ! python3 -m ziglang version >/dev/null 2>&1; then
  step "installing ziglang and cargo-zigbuild"
  python3 -m pip install --quiet --disable-pip-version-check ziglang==0.17.1 cargo-zigbuild==0.24.0
  hash -r
fi

STUB_TARGET=x86_64-unknown-linux-gnu
step "building delivery (generator) and installer-stub (portable, glibc 2.17)"
cargo build --release --locked -p generator
cargo zigbuild --release --locked -p installer-stub --target "$STUB_TARGET.2.17"

export DELIVERY="$PWD/target/release/delivery"
export DELIVERY_BIN_DIR="$PWD/target/release"
export DELIVERY_STUB="$PWD/target/$STUB_TARGET/release/installer-stub"
