#!/usr/bin/env bash
# Fill the build context of the Kubernetes base bundle (rootfs/, manifests/cni/, imageList)
# from the upstream releases pinned below, every download checked against versions.lock.
# Run on a CONNECTED machine; copy the filled directory to the (offline) build machine.
# `./fetch.sh --help` explains everything.
set -euo pipefail

# ---- Pinned versions (change together; see README.md) -------------------------------------
# The newest set whose sums could be pinned in versions.lock (see its header); to move on, change
# these, run --record on a connected machine and review the new lines.
KUBERNETES_VERSION="1.35.1"   # dl.k8s.io/release/v1.35.1
CONTAINERD_VERSION="2.2.1"    # github.com/containerd/containerd/releases
RUNC_VERSION="1.3.4"          # github.com/opencontainers/runc/releases
CNI_PLUGINS_VERSION="1.8.0"   # github.com/containernetworking/plugins/releases
CRICTL_VERSION="1.35.0"       # github.com/kubernetes-sigs/cri-tools/releases (minor = Kubernetes minor)
FLANNEL_VERSION="0.28.8"      # github.com/flannel-io/flannel/releases

# ---- Upstream locations (override each with --base-url NAME=URL) ---------------------------
declare -A BASE_URL=(
  [k8s]="https://dl.k8s.io/release"
  [containerd]="https://github.com/containerd/containerd/releases/download"
  [runc]="https://github.com/opencontainers/runc/releases/download"
  [cni]="https://github.com/containernetworking/plugins/releases/download"
  [crictl]="https://github.com/kubernetes-sigs/cri-tools/releases/download"
  [flannel]="https://github.com/flannel-io/flannel/releases/download"
)

SELF="$(basename "$0")"
CONTEXT_DIR="$(cd "$(dirname "$0")" && pwd)"
LOCK_FILE="$CONTEXT_DIR/versions.lock"
CACHE_DIR="$CONTEXT_DIR/.cache"
ARCH="amd64"
MODE="fetch"
RECORD=0

K8S_BINARIES=(kubeadm kubelet kubectl)
CONTAINERD_BINARIES=(containerd containerd-shim-runc-v2 ctr)
# CNI plugins --check insists on (the tarball's other plugins are installed too).
CNI_REQUIRED=(bridge host-local loopback portmap)

usage() {
  cat <<EOF
Usage: $SELF [--arch amd64|arm64] [--record] [--cache DIR] [--base-url NAME=URL]...
       $SELF --check [--arch amd64|arm64]
       $SELF --help

Fills the build context of the Kubernetes base bundle (the directory holding this script,
$CONTEXT_DIR) for one CPU architecture. Run it on a machine with internet access (or access
to your artifact mirror), then copy the whole directory to the build machine.

What it fills (relative to the context directory):
  rootfs/bin/kubeadm, kubelet, kubectl   Kubernetes v$KUBERNETES_VERSION   (dl.k8s.io)
  rootfs/bin/crictl                      cri-tools v$CRICTL_VERSION        (release tarball)
  rootfs/bin/containerd, containerd-shim-runc-v2, ctr
                                         containerd $CONTAINERD_VERSION       (release tarball, bin/*)
  rootfs/bin/runc                        runc v$RUNC_VERSION            (runc.ARCH)
  rootfs/cni/bin/*                       every plugin of containernetworking/plugins v$CNI_PLUGINS_VERSION
  manifests/cni/kube-flannel.yml         Flannel v$FLANNEL_VERSION          (release asset)
  imageList                              generated: the control-plane images printed by
                                         'rootfs/bin/kubeadm config images list
                                         --kubernetes-version v$KUBERNETES_VERSION' plus every
                                         'image:' of kube-flannel.yml; sorted, deduplicated.
                                         kubeadm must be able to run here, so fetch for the
                                         architecture of this machine (or run on one of the
                                         target architecture).
The versions are pinned at the top of this script; change them there.

Options:
  --arch ARCH          amd64 (default) or arm64.
  --check              Download nothing: list the required paths that are missing (or hold
                       binaries for another --arch, or an imageList for other versions) and
                       exit 1 if any is; exit 0 when the context is complete.
  --record             Trust on first use: for each download that has no entry in
                       versions.lock, verify it against the checksum file the upstream
                       publishes (Flannel publishes none: its sum is taken as downloaded) and
                       append its sha256 to versions.lock. Review the result, commit it.
  --cache DIR          Download cache (default: $CONTEXT_DIR/.cache). A re-run downloads
                       nothing the cache already holds with the locked checksum.
  --base-url NAME=URL  Fetch from a mirror instead of upstream. Repeatable. NAME and default:
EOF
  local name
  for name in k8s containerd runc cni crictl flannel; do
    printf '                         %-11s %s\n' "$name" "${BASE_URL[$name]}"
  done
  cat <<EOF
                       The mirror must keep the upstream layout below URL, e.g.
                       k8s:        URL/v$KUBERNETES_VERSION/bin/linux/ARCH/kubeadm (+ .sha256)
                       containerd: URL/v$CONTAINERD_VERSION/containerd-$CONTAINERD_VERSION-linux-ARCH.tar.gz (+ .sha256sum)
                       runc:       URL/v$RUNC_VERSION/runc.ARCH (+ URL/v$RUNC_VERSION/runc.sha256sum)
                       cni:        URL/v$CNI_PLUGINS_VERSION/cni-plugins-linux-ARCH-v$CNI_PLUGINS_VERSION.tgz (+ .sha256)
                       crictl:     URL/v$CRICTL_VERSION/crictl-v$CRICTL_VERSION-linux-ARCH.tar.gz (+ .sha256)
                       flannel:    URL/v$FLANNEL_VERSION/kube-flannel.yml
  -h, --help           This text.

The lock file ($LOCK_FILE):
  One line per downloaded file, '<sha256>  <file-key>', e.g.
  '<64 hex>  kubeadm-linux-amd64-v$KUBERNETES_VERSION'. Every download is verified against it;
  a mismatch stops the run. A download without an entry stops the run unless --record is
  given. The repository ships the sums of every pinned file for amd64 and arm64 (taken from
  kubespray's published pins; see the file's header) except Flannel's manifest, which upstream
  publishes no checksum for: run '$SELF --record' once, check the recorded line, commit it; from
  then on runs are verified against the recorded sums. After changing a version, run
  --record again to add the new files' sums.

Needs: bash, curl (or wget), sha256sum (or shasum), tar; --check needs none of them.
EOF
}

die() { printf '%s: error: %s\n' "$SELF" "$*" >&2; exit 1; }
info() { printf '%s: %s\n' "$SELF" "$*" >&2; }

while (($#)); do
  case "$1" in
    --arch) (($# >= 2)) || die "--arch needs a value (amd64 or arm64)"; ARCH="$2"; shift 2 ;;
    --arch=*) ARCH="${1#*=}"; shift ;;
    --check) MODE="check"; shift ;;
    --record) RECORD=1; shift ;;
    --cache) (($# >= 2)) || die "--cache needs a directory"; CACHE_DIR="$2"; shift 2 ;;
    --cache=*) CACHE_DIR="${1#*=}"; shift ;;
    --base-url|--base-url=*)
      if [[ "$1" == --base-url=* ]]; then spec="${1#*=}"; shift
      else (($# >= 2)) || die "--base-url needs NAME=URL"; spec="$2"; shift 2; fi
      name="${spec%%=*}"; url="${spec#*=}"
      [[ "$spec" == *=* && -n "$url" ]] || die "--base-url wants NAME=URL, got '$spec'"
      [[ -n "${BASE_URL[$name]+set}" ]] \
        || die "--base-url: unknown upstream '$name' (one of: k8s containerd runc cni crictl flannel)"
      BASE_URL[$name]="${url%/}"
      ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

case "$ARCH" in
  amd64|arm64) ;;
  *) die "unsupported --arch '$ARCH' (amd64 or arm64)" ;;
esac

# ---- Required paths ------------------------------------------------------------------------
required_paths() {
  local b
  for b in "${K8S_BINARIES[@]}" crictl "${CONTAINERD_BINARIES[@]}" runc; do
    echo "rootfs/bin/$b"
  done
  for b in "${CNI_REQUIRED[@]}"; do echo "rootfs/cni/bin/$b"; done
  echo "manifests/cni/kube-flannel.yml"
  echo "imageList"
}

# ELF machine of FILE as amd64/arm64/other; empty when FILE is not ELF.
elf_arch() {
  local magic machine
  magic="$(od -An -tx1 -N4 "$1" 2>/dev/null | tr -d ' \n')"
  [[ "$magic" == 7f454c46 ]] || return 0
  machine="$(od -An -tu2 -j18 -N2 "$1" 2>/dev/null | tr -d ' \n')"
  case "$machine" in 62) echo amd64 ;; 183) echo arm64 ;; *) echo "other(e_machine=$machine)" ;; esac
}

check_context() {
  local missing=0 p got
  while read -r p; do
    if [[ "$p" == rootfs/* ]]; then
      if [[ ! -f "$CONTEXT_DIR/$p" ]]; then
        echo "missing: $p"; missing=$((missing + 1))
      elif [[ ! -x "$CONTEXT_DIR/$p" ]]; then
        echo "not executable: $p"; missing=$((missing + 1))
      else
        got="$(elf_arch "$CONTEXT_DIR/$p")"
        if [[ -n "$got" && "$got" != "$ARCH" ]]; then
          echo "wrong architecture: $p is $got, --arch is $ARCH"; missing=$((missing + 1))
        fi
      fi
    elif [[ ! -s "$CONTEXT_DIR/$p" ]]; then
      echo "missing: $p"; missing=$((missing + 1))
    fi
  done < <(required_paths)
  if [[ -s "$CONTEXT_DIR/imageList" ]] \
    && ! grep -q "/kube-apiserver:v$KUBERNETES_VERSION\$" "$CONTEXT_DIR/imageList"; then
    echo "stale: imageList does not name kube-apiserver:v$KUBERNETES_VERSION (re-run $SELF)"
    missing=$((missing + 1))
  fi
  if ((missing)); then
    echo "$missing required path(s) missing, stale or for another architecture in $CONTEXT_DIR; fill them with: $CONTEXT_DIR/$SELF --arch $ARCH"
    return 1
  fi
  echo "build context complete: $CONTEXT_DIR"
}

if [[ "$MODE" == check ]]; then
  check_context
  exit $?
fi

# ---- Tools ---------------------------------------------------------------------------------
if command -v curl >/dev/null 2>&1; then
  DOWNLOADER=curl
elif command -v wget >/dev/null 2>&1; then
  DOWNLOADER=wget
else
  die "curl or wget is required to download (install curl)"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256_of() { sha256sum "$1" | awk '{print $1}'; }
elif command -v shasum >/dev/null 2>&1; then
  sha256_of() { shasum -a 256 "$1" | awk '{print $1}'; }
else
  die "sha256sum (coreutils) or shasum is required"
fi
command -v tar >/dev/null 2>&1 || die "tar is required"

mkdir -p "$CACHE_DIR"
[[ -f "$LOCK_FILE" ]] || die "lock file $LOCK_FILE is missing (restore it from the repository)"
WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/fetch-kubernetes.XXXXXX")"
cleanup() {
  rm -rf "$WORK_DIR"
  # Partial downloads and half-installed files carry a '.part.' infix.
  find "$CACHE_DIR" "$CONTEXT_DIR" -maxdepth 3 -name '.*.part.*' -type f \
    -exec rm -f {} + 2>/dev/null || true
}
trap cleanup EXIT

# download URL DEST: fails naming the URL.
download() {
  local url="$1" dest="$2" err="$WORK_DIR/download.err"
  if [[ "$DOWNLOADER" == curl ]]; then
    if ! curl -fsSL --retry 3 --retry-delay 2 -o "$dest" "$url" 2>"$err"; then
      die "download failed: $url ($(tr '\n' ' ' <"$err" | sed 's/ *$//'))"
    fi
  else
    if ! wget -q -O "$dest" "$url" 2>"$err"; then
      die "download failed: $url (wget: $(tr '\n' ' ' <"$err" | sed 's/ *$//'))"
    fi
  fi
}

# Sum recorded in the lock for KEY (empty when none).
lock_sum() {
  local sums
  sums="$(awk -v k="$1" '$1 !~ /^#/ && NF >= 2 && $2 == k { print tolower($1) }' "$LOCK_FILE" | sort -u)"
  if [[ "$(printf '%s' "$sums" | grep -c .)" -gt 1 ]]; then
    die "versions.lock has conflicting entries for $1; keep the right one"
  fi
  if [[ -n "$sums" && ! "$sums" =~ ^[0-9a-f]{64}$ ]]; then
    die "versions.lock entry for $1 is not a sha256 ('$sums')"
  fi
  printf '%s' "$sums"
}

# Sum for NAME from a published checksum file (bare hex, or '<hex>  NAME' lines).
published_sum() {
  local file="$1" name="$2" sum
  sum="$(awk -v n="$name" '{ f = $2; sub(/^\*/, "", f); sub(/^\.\//, "", f)
                              if (NF >= 2 && f == n) { print tolower($1); exit } }' "$file")"
  if [[ -z "$sum" ]] && [[ "$(grep -c . "$file")" -eq 1 ]]; then
    sum="$(awk 'NF { print tolower($1); exit }' "$file")"
  fi
  [[ "$sum" =~ ^[0-9a-f]{64}$ ]] || return 1
  printf '%s' "$sum"
}

# Artifacts: key|url|published-checksum-url|name-in-checksum-file
ARTIFACTS=()
add_artifact() { ARTIFACTS+=("$1|$2|$3|$4"); }
for b in "${K8S_BINARIES[@]}"; do
  u="${BASE_URL[k8s]}/v$KUBERNETES_VERSION/bin/linux/$ARCH/$b"
  add_artifact "$b-linux-$ARCH-v$KUBERNETES_VERSION" "$u" "$u.sha256" "$b"
done
f="containerd-$CONTAINERD_VERSION-linux-$ARCH.tar.gz"
u="${BASE_URL[containerd]}/v$CONTAINERD_VERSION/$f"
add_artifact "$f" "$u" "$u.sha256sum" "$f"
add_artifact "runc-linux-$ARCH-v$RUNC_VERSION" "${BASE_URL[runc]}/v$RUNC_VERSION/runc.$ARCH" \
  "${BASE_URL[runc]}/v$RUNC_VERSION/runc.sha256sum" "runc.$ARCH"
f="cni-plugins-linux-$ARCH-v$CNI_PLUGINS_VERSION.tgz"
u="${BASE_URL[cni]}/v$CNI_PLUGINS_VERSION/$f"
add_artifact "$f" "$u" "$u.sha256" "$f"
f="crictl-v$CRICTL_VERSION-linux-$ARCH.tar.gz"
u="${BASE_URL[crictl]}/v$CRICTL_VERSION/$f"
add_artifact "$f" "$u" "$u.sha256" "$f"
add_artifact "kube-flannel-v$FLANNEL_VERSION.yml" \
  "${BASE_URL[flannel]}/v$FLANNEL_VERSION/kube-flannel.yml" "" "kube-flannel.yml"

# ---- Refuse early when the lock lacks entries and --record was not given --------------------
unlocked=()
for a in "${ARTIFACTS[@]}"; do
  IFS='|' read -r key _ _ _ <<<"$a"
  locked="$(lock_sum "$key")"
  [[ -n "$locked" ]] || unlocked+=("$key")
done
if ((${#unlocked[@]})) && ((!RECORD)); then
  {
    echo "$SELF: error: versions.lock has no sha256 for:"
    printf '  %s\n' "${unlocked[@]}"
    echo "Nothing was downloaded. These files cannot be verified against a recorded sum."
    echo "Review the pinned versions and sources (see --help), then run once with --record:"
    echo "  $CONTEXT_DIR/$SELF --arch $ARCH --record"
    echo "It verifies each file against the upstream-published checksum where one exists"
    echo "(trust on first use for Flannel, which publishes none), appends the sums to"
    echo "versions.lock; review and commit that file."
  } >&2
  exit 1
fi

# ---- Phase 1: fetch and verify everything into the cache -------------------------------------
fetched=0
for a in "${ARTIFACTS[@]}"; do
  IFS='|' read -r key url sum_url sum_name <<<"$a"
  cached="$CACHE_DIR/$key"
  expected="$(lock_sum "$key")"
  if [[ -n "$expected" && -f "$cached" ]]; then
    if [[ "$(sha256_of "$cached")" == "$expected" ]]; then
      info "cached: $key (sha256 ok)"
      continue
    fi
    info "cached $key does not match versions.lock; downloading it again"
    rm -f "$cached"
  fi
  tmp="$(mktemp "$CACHE_DIR/.$key.part.XXXXXX")"
  info "downloading $url"
  download "$url" "$tmp"
  fetched=$((fetched + 1))
  actual="$(sha256_of "$tmp")"
  if [[ -n "$expected" ]]; then
    if [[ "$actual" != "$expected" ]]; then
      rm -f "$tmp"
      die "checksum mismatch for $key
  downloaded from: $url
  expected (versions.lock): $expected
  actual:                   $actual
The file was discarded; nothing was installed. If the upstream (or mirror) file was
legitimately replaced, verify the new sum independently, fix the line in $LOCK_FILE and
re-run; otherwise treat the source as compromised."
    fi
    mv -f "$tmp" "$cached"
    info "verified: $key"
    continue
  fi
  # No lock entry: --record is set (checked above).
  if [[ -n "$sum_url" ]]; then
    sumfile="$WORK_DIR/$key.published-sum"
    download "$sum_url" "$sumfile"
    published="$(published_sum "$sumfile" "$sum_name")" \
      || { rm -f "$tmp"; die "no sha256 for $sum_name in $sum_url"; }
    if [[ "$actual" != "$published" ]]; then
      rm -f "$tmp"
      die "checksum mismatch for $key
  downloaded from: $url
  expected (published at $sum_url): $published
  actual:                   $actual
The file was discarded; nothing was recorded or installed. Re-run later or check the source."
    fi
    how="matches the upstream-published $sum_url"
  else
    how="upstream publishes no checksum: recorded as downloaded, verify it independently"
  fi
  mv -f "$tmp" "$cached"
  printf '%s  %s\n' "$actual" "$key" >>"$LOCK_FILE"
  info "RECORDED (trust on first use) $key sha256 $actual ($how)"
done

# ---- Phase 2: install into the context -------------------------------------------------------
# install_file SRC DEST MODE: temp name in the destination directory, then rename.
install_file() {
  local src="$1" dest="$2" mode="$3" dir tmp
  dir="$(dirname "$dest")"
  mkdir -p "$dir"
  tmp="$(mktemp "$dir/.$(basename "$dest").part.XXXXXX")"
  cp "$src" "$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$dest"
}

extract() { # extract ARCHIVE DIR
  mkdir -p "$2"
  tar -xzf "$1" -C "$2" || die "cannot unpack $1 (delete it from the cache and re-run)"
}

for b in "${K8S_BINARIES[@]}"; do
  install_file "$CACHE_DIR/$b-linux-$ARCH-v$KUBERNETES_VERSION" "$CONTEXT_DIR/rootfs/bin/$b" 0755
done
install_file "$CACHE_DIR/runc-linux-$ARCH-v$RUNC_VERSION" "$CONTEXT_DIR/rootfs/bin/runc" 0755

extract "$CACHE_DIR/containerd-$CONTAINERD_VERSION-linux-$ARCH.tar.gz" "$WORK_DIR/containerd"
for b in "${CONTAINERD_BINARIES[@]}"; do
  [[ -f "$WORK_DIR/containerd/bin/$b" ]] \
    || die "containerd-$CONTAINERD_VERSION-linux-$ARCH.tar.gz has no bin/$b"
  install_file "$WORK_DIR/containerd/bin/$b" "$CONTEXT_DIR/rootfs/bin/$b" 0755
done

extract "$CACHE_DIR/crictl-v$CRICTL_VERSION-linux-$ARCH.tar.gz" "$WORK_DIR/crictl"
[[ -f "$WORK_DIR/crictl/crictl" ]] || die "crictl-v$CRICTL_VERSION-linux-$ARCH.tar.gz has no crictl"
install_file "$WORK_DIR/crictl/crictl" "$CONTEXT_DIR/rootfs/bin/crictl" 0755

extract "$CACHE_DIR/cni-plugins-linux-$ARCH-v$CNI_PLUGINS_VERSION.tgz" "$WORK_DIR/cni"
plugins=0
while IFS= read -r -d '' p; do
  name="$(basename "$p")"
  case "$name" in LICENSE|*.md|*.txt) continue ;; esac
  install_file "$p" "$CONTEXT_DIR/rootfs/cni/bin/$name" 0755
  plugins=$((plugins + 1))
done < <(find "$WORK_DIR/cni" -type f -print0)
for b in "${CNI_REQUIRED[@]}"; do
  [[ -f "$CONTEXT_DIR/rootfs/cni/bin/$b" ]] \
    || die "cni-plugins-linux-$ARCH-v$CNI_PLUGINS_VERSION.tgz has no $b plugin"
done

install_file "$CACHE_DIR/kube-flannel-v$FLANNEL_VERSION.yml" \
  "$CONTEXT_DIR/manifests/cni/kube-flannel.yml" 0644

# ---- imageList ---------------------------------------------------------------------------------
case "$(uname -m)" in
  x86_64|amd64) host_arch=amd64 ;;
  aarch64|arm64) host_arch=arm64 ;;
  *) host_arch="$(uname -m)" ;;
esac
if [[ "$(uname -s)" != Linux || "$host_arch" != "$ARCH" ]]; then
  die "binaries installed, but imageList was NOT written: it is produced by running the
downloaded kubeadm (linux/$ARCH), which cannot run on this $(uname -s)/$(uname -m) machine.
Run '$SELF --arch $ARCH' on a linux/$ARCH machine (the download cache and versions.lock make
that cheap), or copy imageList from a run for another architecture of the same versions
(the image references are multi-arch)."
fi
kubeadm_images="$WORK_DIR/kubeadm-images"
"$CONTEXT_DIR/rootfs/bin/kubeadm" config images list --kubernetes-version "v$KUBERNETES_VERSION" \
  >"$kubeadm_images" 2>"$WORK_DIR/kubeadm.err" \
  || die "'rootfs/bin/kubeadm config images list --kubernetes-version v$KUBERNETES_VERSION' failed: $(cat "$WORK_DIR/kubeadm.err")"
grep -q "kube-apiserver:v$KUBERNETES_VERSION" "$kubeadm_images" \
  || die "kubeadm printed no kube-apiserver:v$KUBERNETES_VERSION image; output: $(cat "$kubeadm_images")"
flannel_images="$WORK_DIR/flannel-images"
sed -n -E 's/^[[:space:]]*(-[[:space:]]+)?image:[[:space:]]*//p' \
  "$CONTEXT_DIR/manifests/cni/kube-flannel.yml" \
  | sed -E 's/[[:space:]]+#.*$//; s/^["'\'']//; s/["'\''][[:space:]]*$//; s/[[:space:]]+$//' \
  | grep -v '^$' >"$flannel_images" || true
[[ -s "$flannel_images" ]] || die "found no 'image:' in manifests/cni/kube-flannel.yml"

image_tmp="$(mktemp "$CONTEXT_DIR/.imageList.part.XXXXXX")"
{
  echo "# Generated by bundles/kubernetes/$SELF (do not edit; re-run it instead). Sources:"
  echo "#   rootfs/bin/kubeadm config images list --kubernetes-version v$KUBERNETES_VERSION"
  echo "#   image: lines of manifests/cni/kube-flannel.yml (Flannel v$FLANNEL_VERSION)"
  sed 's/[[:space:]]*$//' "$kubeadm_images" "$flannel_images" | grep -v '^$' | LC_ALL=C sort -u
} >"$image_tmp"
chmod 0644 "$image_tmp"
mv -f "$image_tmp" "$CONTEXT_DIR/imageList"

info "done: $fetched file(s) downloaded, $plugins CNI plugins, $(grep -vc '^#' "$CONTEXT_DIR/imageList") images in imageList"
info "context: $CONTEXT_DIR (check it with: $SELF --check)"
