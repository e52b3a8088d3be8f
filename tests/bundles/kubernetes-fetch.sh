#!/usr/bin/env bash
# Test bundles/kubernetes/fetch.sh offline against a fake upstream served on loopback.
# Run from the repository root: tests/bundles/kubernetes-fetch.sh   (exit 0 only if all pass)
# Never writes into the repository: fetch.sh is copied into a temporary context directory.
set -euo pipefail

REPO_ROOT="$(pwd)"
SRC="$REPO_ROOT/bundles/kubernetes"
[[ -f "$SRC/fetch.sh" && -f "$SRC/versions.lock" ]] || { echo "run from the repository root" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 2; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/kubernetes-fetch-test.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"

# Pinned versions, read from the script under test.
ver() { sed -n -E "s/^$1=\"([^\"]+)\".*/\1/p" "$SRC/fetch.sh"; }
K8S="$(ver KUBERNETES_VERSION)"; CTRD="$(ver CONTAINERD_VERSION)"; RUNC="$(ver RUNC_VERSION)"
CNI="$(ver CNI_PLUGINS_VERSION)"; CRICTL="$(ver CRICTL_VERSION)"; FLANNEL="$(ver FLANNEL_VERSION)"
for v in K8S CTRD RUNC CNI CRICTL FLANNEL; do [[ -n "${!v}" ]] || { echo "cannot read $v from fetch.sh" >&2; exit 2; }; done
ARCH=amd64

PASS=0; FAIL=0
pass() { echo "PASS: $*"; PASS=$((PASS + 1)); }
fail() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }

# ---- Fake upstream with the real URL layouts -------------------------------------------------
UP="$TMP/upstream"
fakebin() { # fakebin PATH NAME
  mkdir -p "$(dirname "$1")"
  printf '#!/bin/sh\necho "fake %s $*"\n' "$2" >"$1"; chmod 0755 "$1"
}
sha() { sha256sum "$1" | awk '{print $1}'; }

d="$UP/k8s/v$K8S/bin/linux/$ARCH"; mkdir -p "$d"
cat >"$d/kubeadm" <<'EOF'
#!/bin/sh
if [ "$1 $2 $3" = "config images list" ] && [ "$4" = "--kubernetes-version" ]; then
  v="$5"
  for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do echo "registry.k8s.io/$c:$v"; done
  echo "registry.k8s.io/coredns/coredns:v1.13.1"
  echo "registry.k8s.io/pause:3.10.1"
  echo "registry.k8s.io/etcd:3.6.5-0"
  exit 0
fi
echo "fake kubeadm: unsupported: $*" >&2; exit 1
EOF
chmod 0755 "$d/kubeadm"
fakebin "$d/kubelet" kubelet; fakebin "$d/kubectl" kubectl
for b in kubeadm kubelet kubectl; do sha "$d/$b" >"$d/$b.sha256"; done

d="$UP/containerd/v$CTRD"; mkdir -p "$d" "$TMP/build/ctrd/bin"
for b in containerd containerd-shim-runc-v2 ctr containerd-stress; do fakebin "$TMP/build/ctrd/bin/$b" "$b"; done
f="containerd-$CTRD-linux-$ARCH.tar.gz"
tar -czf "$d/$f" -C "$TMP/build/ctrd" bin
(cd "$d" && sha256sum "$f" >"$f.sha256sum")

d="$UP/runc/v$RUNC"; mkdir -p "$d"
fakebin "$d/runc.$ARCH" runc; fakebin "$d/runc.arm64" runc-arm64
(cd "$d" && sha256sum "runc.arm64" "runc.$ARCH" >runc.sha256sum)

d="$UP/cni/v$CNI"; mkdir -p "$d" "$TMP/build/cni"
CNI_PLUGINS=(bandwidth bridge dhcp dummy firewall host-device host-local ipvlan loopback macvlan portmap ptp sbr static tap tuning vlan vrf)
for b in "${CNI_PLUGINS[@]}"; do fakebin "$TMP/build/cni/$b" "$b"; done
echo "license" >"$TMP/build/cni/LICENSE"; echo "readme" >"$TMP/build/cni/README.md"
f="cni-plugins-linux-$ARCH-v$CNI.tgz"
tar -czf "$d/$f" -C "$TMP/build/cni" .
(cd "$d" && sha256sum "$f" >"$f.sha256")

d="$UP/crictl/v$CRICTL"; mkdir -p "$d" "$TMP/build/crictl"
fakebin "$TMP/build/crictl/crictl" crictl
f="crictl-v$CRICTL-linux-$ARCH.tar.gz"
tar -czf "$d/$f" -C "$TMP/build/crictl" crictl
sha "$d/$f" >"$d/$f.sha256"

d="$UP/flannel/v$FLANNEL"; mkdir -p "$d"
cat >"$d/kube-flannel.yml" <<EOF
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
spec:
  template:
    spec:
      initContainers:
      - name: install-cni-plugin
        image: ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1
      - name: install-cni
        image: "ghcr.io/flannel-io/flannel:v$FLANNEL"
      containers:
      - name: kube-flannel
        image: ghcr.io/flannel-io/flannel:v$FLANNEL   # same image again
EOF

# ---- Serve it ---------------------------------------------------------------------------------
LOG="$TMP/http.log"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$UP" >"$LOG" 2>&1 &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 100); do
  PORT="$(sed -n -E 's/.*port ([0-9]+).*/\1/p' "$LOG" | head -n1)"
  [[ -n "$PORT" ]] && break
  sleep 0.1
done
[[ -n "$PORT" ]] || { echo "http.server did not start: $(cat "$LOG")" >&2; exit 2; }
BASE="http://127.0.0.1:$PORT"
MIRROR=(--base-url "k8s=$BASE/k8s" --base-url "containerd=$BASE/containerd" --base-url "runc=$BASE/runc"
        --base-url "cni=$BASE/cni" --base-url "crictl=$BASE/crictl" --base-url "flannel=$BASE/flannel")
gets() { grep -c '"GET ' "$LOG" || true; }

# new_context NAME: a fresh copy of the context under $TMP: the script, and the committed lock
# without its sums (the fake upstream's files are not the real ones; (10) tests the real sums).
new_context() {
  local c="$TMP/ctx-$1"
  mkdir -p "$c"
  cp "$SRC/fetch.sh" "$c/"
  grep '^#' "$SRC/versions.lock" >"$c/versions.lock"
  printf '%s' "$c"
}
run() { # run CTX ARGS... ; sets OUT and RC
  local c="$1"; shift
  set +e; OUT="$("$c/fetch.sh" "$@" 2>&1)"; RC=$?; set -e; [[ -z "${SHOW:-}" ]] || printf "%s\n--- rc=%s\n" "$OUT" "$RC"
}

# (1) --check on an empty context lists the missing paths and fails
C="$(new_context main)"
run "$C" --check
if ((RC != 0)) && grep -q 'missing: rootfs/bin/kubeadm' <<<"$OUT" && grep -q 'missing: imageList' <<<"$OUT" \
   && grep -q 'missing: manifests/cni/kube-flannel.yml' <<<"$OUT" && grep -q 'missing: rootfs/cni/bin/bridge' <<<"$OUT"; then
  pass "1 --check on an empty context lists missing paths, exit $RC"
else fail "1 --check: rc=$RC out: $OUT"; fi

# (6) no lock entry and no --record fails with the hint (and downloads nothing)
before="$(gets)"
run "$C" "${MIRROR[@]}"
if ((RC != 0)) && grep -q -- '--record' <<<"$OUT" && grep -q "kubeadm-linux-$ARCH-v$K8S" <<<"$OUT" \
   && [[ "$(gets)" == "$before" ]] && [[ ! -e "$C/rootfs" ]]; then
  pass "6 missing lock entries without --record fail with the --record hint, nothing downloaded"
else fail "6 no-record: rc=$RC out: $OUT"; fi

# (2) --record fills every path, writes the lock
run "$C" "${MIRROR[@]}" --record
ok=1
((RC == 0)) || { ok=0; echo "  rc=$RC: $OUT"; }
for p in kubeadm kubelet kubectl crictl containerd containerd-shim-runc-v2 ctr runc; do
  [[ -x "$C/rootfs/bin/$p" && "$(stat -c %a "$C/rootfs/bin/$p")" == 755 ]] || { ok=0; echo "  rootfs/bin/$p missing or not 0755"; }
done
for p in "${CNI_PLUGINS[@]}"; do [[ -x "$C/rootfs/cni/bin/$p" ]] || { ok=0; echo "  rootfs/cni/bin/$p missing"; }; done
[[ -e "$C/rootfs/cni/bin/LICENSE" ]] && { ok=0; echo "  LICENSE installed as a plugin"; }
cmp -s "$C/manifests/cni/kube-flannel.yml" "$UP/flannel/v$FLANNEL/kube-flannel.yml" || { ok=0; echo "  kube-flannel.yml not placed"; }
for img in "registry.k8s.io/kube-apiserver:v$K8S" "registry.k8s.io/kube-proxy:v$K8S" "registry.k8s.io/etcd:3.6.5-0" \
           "registry.k8s.io/pause:3.10.1" "ghcr.io/flannel-io/flannel:v$FLANNEL" "ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1"; do
  grep -qxF "$img" "$C/imageList" || { ok=0; echo "  imageList lacks $img"; }
done
body="$(grep -v '^#' "$C/imageList")"
[[ "$body" == "$(LC_ALL=C sort -u <<<"$body")" ]] || { ok=0; echo "  imageList not sorted/deduplicated"; }
[[ "$(grep -c '^#' "$C/imageList")" -ge 1 ]] || { ok=0; echo "  imageList has no comment header"; }
[[ "$(grep -cv '^#' "$C/versions.lock")" == 8 ]] || { ok=0; echo "  lock should hold 8 entries:"; cat "$C/versions.lock"; }
grep -q "$(sha "$UP/k8s/v$K8S/bin/linux/$ARCH/kubeadm")  kubeadm-linux-$ARCH-v$K8S" "$C/versions.lock" || { ok=0; echo "  kubeadm sum not recorded"; }
grep -qi 'trust on first use' <<<"$OUT" || { ok=0; echo "  no trust-on-first-use notice"; }
[[ -z "$(find "$C" -name '.*.part.*')" ]] || { ok=0; echo "  temp files left behind"; }
run "$C" --check; ((RC == 0)) || { ok=0; echo "  --check after fill: $OUT"; }
if ((ok)); then
  pass "2 --record fills every path (bins 0755, ${#CNI_PLUGINS[@]} CNI plugins, manifest, imageList), writes 8 lock entries, --check then passes"
else fail "2 --record run"; fi

# (3) a re-run without --record succeeds and downloads nothing
before="$(gets)"
cp "$C/versions.lock" "$TMP/lock.after-record"
run "$C" "${MIRROR[@]}"
if ((RC == 0)) && [[ "$(gets)" == "$before" ]] && cmp -s "$C/versions.lock" "$TMP/lock.after-record"; then
  pass "3 re-run without --record: exit 0, 0 HTTP requests, lock unchanged"
else fail "3 re-run: rc=$RC requests $(( $(gets) - before )) out: $OUT"; fi

# (4) tampered upstream file with a lock entry: fails naming the file and both sums, no partial file
C4="$(new_context tamper)"; cp "$C/versions.lock" "$C4/versions.lock"
RUNC_FILE="$UP/runc/v$RUNC/runc.$ARCH"
cp "$RUNC_FILE" "$TMP/runc.orig"
good="$(sha "$RUNC_FILE")"
python3 - "$RUNC_FILE" <<'EOF'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[-2] ^= 0x01; open(p, 'wb').write(bytes(b))
EOF
bad="$(sha "$RUNC_FILE")"
run "$C4" "${MIRROR[@]}"
if ((RC != 0)) && grep -q "runc-linux-$ARCH-v$RUNC" <<<"$OUT" && grep -q "$good" <<<"$OUT" && grep -q "$bad" <<<"$OUT" \
   && [[ ! -e "$C4/rootfs/bin/runc" ]] && [[ -z "$(find "$C4" -name '.*.part.*')" ]] \
   && [[ ! -e "$C4/.cache/runc-linux-$ARCH-v$RUNC" ]]; then
  pass "4 tampered runc.$ARCH: fails naming the file, expected and actual sums; no partial file in rootfs/ or cache"
else fail "4 tamper: rc=$RC out: $OUT"; find "$C4" -path '*rootfs*' | head; fi
cp "$TMP/runc.orig" "$RUNC_FILE"

# (5) a 404 fails naming the URL
C5="$(new_context notfound)"
mv "$UP/crictl/v$CRICTL/crictl-v$CRICTL-linux-$ARCH.tar.gz" "$TMP/crictl.hidden"
run "$C5" "${MIRROR[@]}" --record
URL404="$BASE/crictl/v$CRICTL/crictl-v$CRICTL-linux-$ARCH.tar.gz"
if ((RC != 0)) && grep -qF "$URL404" <<<"$OUT" && grep -q 404 <<<"$OUT" && [[ ! -e "$C5/rootfs" ]]; then
  pass "5 HTTP 404 fails naming $URL404"
else fail "5 404: rc=$RC out: $OUT"; fi
mv "$TMP/crictl.hidden" "$UP/crictl/v$CRICTL/crictl-v$CRICTL-linux-$ARCH.tar.gz"

# (7) --check notices binaries of another architecture (ELF e_machine), offline
cp "$C/rootfs/bin/runc" "$TMP/runc.placed"
# minimal ELF64 little-endian header, e_machine = 183 (aarch64)
python3 -c 'import struct,sys; open(sys.argv[1],"wb").write(b"\x7fELF\x02\x01\x01" + b"\x00"*9 + struct.pack("<HH", 2, 183) + b"\x00"*44)' "$C/rootfs/bin/runc"
run "$C" --check
if ((RC != 0)) && grep -q "wrong architecture: rootfs/bin/runc is arm64, --arch is $ARCH" <<<"$OUT"; then
  pass "7 --check reports an arm64 binary in an $ARCH context"
else fail "7 --check arch: rc=$RC out: $OUT"; fi
cp "$TMP/runc.placed" "$C/rootfs/bin/runc"

# (8) unknown mirror name
run "$C" --base-url "bogus=http://x"
if ((RC != 0)) && grep -q "unknown upstream 'bogus'" <<<"$OUT"; then pass "8 unknown --base-url name is rejected"
else fail "8 bogus base-url: $OUT"; fi

# (10) the committed lock: a sha256 for every pinned file of both architectures (all but
# Flannel's manifest, which has no published sum), nothing for other versions, and it is
# enforced: the fake upstream's kubeadm is not the real one, so it is refused with both sums.
ok=1
want=()
for a in amd64 arm64; do
  want+=("kubeadm-linux-$a-v$K8S" "kubelet-linux-$a-v$K8S" "kubectl-linux-$a-v$K8S"
         "containerd-$CTRD-linux-$a.tar.gz" "runc-linux-$a-v$RUNC" "cni-plugins-linux-$a-v$CNI.tgz"
         "crictl-v$CRICTL-linux-$a.tar.gz")
done
for k in "${want[@]}"; do
  n="$(awk -v k="$k" '$1 !~ /^#/ && $2 == k && length($1) == 64 && $1 ~ /^[0-9a-f]+$/' "$SRC/versions.lock" | wc -l)"
  [[ "$n" == 1 ]] || { ok=0; echo "  versions.lock: $n well-formed line(s) for $k"; }
done
while read -r _ k; do
  printf '%s\n' "${want[@]}" | grep -qxF "$k" || { ok=0; echo "  versions.lock: stale or unknown entry $k"; }
done < <(grep -v '^#' "$SRC/versions.lock" | grep .)
grep -qx "version = \"v$K8S\"" "$SRC/kubernetes.toml" || { ok=0; echo "  kubernetes.toml is not at v$K8S"; }
C10="$(new_context committed)"; cp "$SRC/versions.lock" "$C10/versions.lock"
run "$C10" "${MIRROR[@]}" --record
real="$(awk -v k="kubeadm-linux-$ARCH-v$K8S" '$2 == k {print $1}' "$SRC/versions.lock")"
if ((RC == 0)) || ! grep -q "checksum mismatch for kubeadm-linux-$ARCH-v$K8S" <<<"$OUT" \
   || ! grep -q "$real" <<<"$OUT" || [[ -e "$C10/rootfs" ]] || ! cmp -s "$C10/versions.lock" "$SRC/versions.lock"; then
  ok=0; echo "  committed lock not enforced: rc=$RC out: $OUT"
fi
if ((ok)); then pass "10 versions.lock pins all ${#want[@]} binaries of v$K8S (amd64, arm64), kubernetes.toml agrees, a different kubeadm is refused"
else fail "10 committed lock"; fi

if command -v shellcheck >/dev/null; then
  if shellcheck "$SRC/fetch.sh"; then pass "9 shellcheck fetch.sh"; else fail "9 shellcheck fetch.sh"; fi
fi

echo "passed: $PASS, failed: $FAIL"
((FAIL == 0))
