#!/usr/bin/env bash
# Fan-out of `delivery.run install`: time to deliver one FANOUT_PAYLOAD [500M] node payload (one
# incompressible file in rootfs/) from the master node1 to N targets, each target's link shaped
# to the same rate, on the SSH test bed (tests/testbed). Reported as T(N)/T(1) and as the fraction
# of the master's link used. A report, not a test. Needs root and the bed to be free.
#
#   FANOUT_COUNTS ["1 3 6"]  target counts N (targets are node2..node(N+1); node1 is the master)
#   FANOUT_RATE [400mbit]    tbf rate of every target's link (traffic towards the target)
#   FANOUT_MASTER_RATE [4 x FANOUT_RATE]  tbf rate of node1's own eth0 (what the master sends)
#   FANOUT_PAYLOAD [500M]    size of the payload file (`head -c` syntax; cached under FANOUT_CACHE)
#   FANOUT_CACHE [/var/tmp/delivery-fanout-cache], FANOUT_WORK [target/bench-fanout] (must be under
#   /work: the installer runs inside node1 and reads bundle, Clusterfile and keys from there),
#   FANOUT_BED_DIR [/var/tmp/delivery-fanout-bed], FANOUT_KEEP=1 keeps the hosts' files after `down`.
#   DELIVERY [target/release/delivery], DELIVERY_STUB [target/x86_64-unknown-linux-gnu/release/installer-stub, the portable stub].
#
# Per N, two fresh beds of N+1 hosts, one after the other: a baseline install of a bundle whose
# payload is 1 byte (SSH sessions, preflight, registry start, journal: everything but the bytes),
# then the install of the big bundle. The bed goes down after each, also on failure.
# Prints a markdown report (also to FANOUT_REPORT if set).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
step() { printf '\n== %s\n' "$*" >&2; }
die() { echo "fanout.sh: $*" >&2; exit 1; }

DELIVERY=${DELIVERY:-$PWD/target/release/delivery}
STUB=${DELIVERY_STUB:-$PWD/target/x86_64-unknown-linux-gnu/release/installer-stub}
counts=${FANOUT_COUNTS:-1 3 6}
rate=${FANOUT_RATE:-400mbit}
payload=${FANOUT_PAYLOAD:-500M}
cache=${FANOUT_CACHE:-/var/tmp/delivery-fanout-cache}
work=${FANOUT_WORK:-$PWD/target/bench-fanout}
bed=${FANOUT_BED_DIR:-/var/tmp/delivery-fanout-bed}
tb=$PWD/tests/testbed/testbed.sh
cluster=bench

# rate_bps RATE: tc rate (bit, kbit, mbit, gbit; bare number = bit) in bits per second.
rate_bps() {
  awk -v r="$1" 'BEGIN {
    if (match(r, /^[0-9.]+/) == 0) exit 1
    n = substr(r, 1, RLENGTH); u = tolower(substr(r, RLENGTH + 1))
    m["bit"] = 1; m[""] = 1; m["kbit"] = 1e3; m["mbit"] = 1e6; m["gbit"] = 1e9
    if (!(u in m)) exit 1
    printf "%.0f", n * m[u] }' || die "cannot read the rate $1 (use bit, kbit, mbit or gbit)"
}
rate_b=$(rate_bps "$rate")
master_rate=${FANOUT_MASTER_RATE:-$((rate_b * 4 / 1000))kbit}
case $master_rate in *000000kbit) master_rate=${master_rate%000000kbit}gbit ;; *000kbit) master_rate=${master_rate%000kbit}mbit ;; esac
master_b=$(rate_bps "$master_rate")
case $work in /work/*) ;; *) die "FANOUT_WORK must be under /work (visible inside the hosts): $work" ;; esac
[ "$(id -u)" = 0 ] || die "needs root (the test bed)"
[ -x "$DELIVERY" ] && [ -x "$STUB" ] || die "missing $DELIVERY or $STUB: build them first"

bed_up=0 sampler=
down() {
  if [ -n "$sampler" ]; then kill -TERM "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; sampler=; fi
  if [ "$bed_up" = 1 ]; then
    "$tb" down --dir "$bed" >/dev/null || echo "fanout.sh: testbed.sh down failed" >&2
    bed_up=0
    [ "${FANOUT_KEEP:-0}" = 1 ] || rm -rf "$bed"/node*/up/var/lib/delivery
  fi
}
trap down EXIT
trap 'exit 130' INT TERM

# --- bundles ----------------------------------------------------------------------------------
mkdir -p "$cache" "$work"
file="$cache/payload-$payload.bin"
if [ ! -f "$file" ]; then
  step "making a $payload incompressible payload file (once, cached at $file)"
  head -c "$payload" /dev/urandom > "$file.tmp"; mv "$file.tmp" "$file"
fi
rm -rf "$work/ctx-big" "$work/ctx-tiny" "$work/logs"; mkdir -p "$work/ctx-big/rootfs" "$work/ctx-tiny/rootfs" "$work/logs"
ln "$file" "$work/ctx-big/rootfs/payload.bin" 2>/dev/null || cp "$file" "$work/ctx-big/rootfs/payload.bin"
printf 'x' > "$work/ctx-tiny/rootfs/payload.bin"
"$DELIVERY" keygen --out "$work/key" >/dev/null 2>&1 || true
[ -f "$work/key.key" ] || { rm -f "$work"/key.*; "$DELIVERY" keygen --out "$work/key" >/dev/null; }
for b in big tiny; do
  step "building the $b bundle"
  printf 'FROM scratch\nCOPY rootfs rootfs\n' > "$work/ctx-$b/Kubefile"
  t0=$(date +%s.%N)
  SOURCE_DATE_EPOCH=1700000000 "$DELIVERY" build -f "$work/ctx-$b/Kubefile" --key "$work/key.key" \
    -o "$work/$b.run" --stub "$STUB" >"$work/logs/build-$b.log" 2>&1 \
    || { cat "$work/logs/build-$b.log" >&2; die "delivery build failed"; }
  echo "  $(numfmt --to=iec "$(stat -c %s "$work/$b.run")") in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s" >&2
done
rm -rf "$work/ctx-big"

# --- one install ------------------------------------------------------------------------------
# cpu_busy: busy and total jiffies of the whole machine so far.
cpu_busy() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }

# install_once N KIND: fresh bed of N+1 hosts, shape, install KIND's bundle on node1, bed down.
# Writes "wall installer_user installer_sys installer_rss_kib machine_busy_pct" to $work/result
# (not a subshell, so that the EXIT trap still takes the bed down on failure).
install_once() {
  local n=$1 kind=$2 i pid d=$work/run-$1-$2 rc=0
  rm -rf "$d"; mkdir -p "$d"
  rc=0; "$tb" up $((n + 1)) --dir "$bed" >"$d/up.log" 2>&1 || rc=$?
  [ $rc = 3 ] && { cat "$d/up.log" >&2; die "the test bed is busy (someone else's bed is up)"; }
  bed_up=1
  [ $rc = 0 ] || { cat "$d/up.log" >&2; die "testbed.sh up $((n + 1)) failed"; }
  for i in $(seq 2 $((n + 1))); do "$tb" shape "$i" "$rate" >/dev/null; done
  ip netns exec dlv-node1 tc qdisc replace dev eth0 root tbf rate "$master_rate" burst 128kb latency 50ms
  cp "$bed/id_ed25519" "$bed/known_hosts" "$d/"
  {
    printf 'name = "%s"\n[ssh]\nuser = "root"\nprivate_key = "%s"\nhost_key_policy = "strict"\n' "$cluster" "$d/id_ed25519"
    printf 'known_hosts = "%s"\nconnect_timeout_secs = 3\n[registry]\nhost = "10.213.7.11"\nport = 5000\n' "$d/known_hosts"
    printf '[[hosts]]\naddresses = ["10.213.7.11"]\nroles = ["master", "registry"]\n'
    for i in $(seq 2 $((n + 1))); do printf '[[hosts]]\naddresses = ["10.213.7.1%s"]\nroles = ["node"]\n' "$i"; done
  } > "$d/cluster.toml"
  pid=$(for p in $(ip netns pids dlv-node1); do
          if [ "$(cat /proc/$p/comm 2>/dev/null)" = sshd ] \
             && [ "$(cat /proc/"$(awk '{print $4}' /proc/$p/stat 2>/dev/null)"/comm 2>/dev/null)" != sshd ]; then echo "$p"; fi
        done | head -1)
  [ -n "$pid" ] || die "node1 has no sshd listener"
  local c0 c1 t0 t1
  python3 "$here/fanout-sampler.py" "$bed" "$cluster" "$n" > "$d/uploads" & sampler=$!
  c0=$(cpu_busy); t0=$(date +%s.%N)
  rc=0
  DELIVERY_TRUSTED_KEY="$work/key.pub" /usr/bin/time -o "$d/time" -f '%U %S %M' \
    nsenter -t "$pid" -n -m -u -- "$work/$kind.run" install --yes --config "$d/cluster.toml" \
    </dev/null >"$d/stdout" 2>"$d/stderr" || rc=$?
  t1=$(date +%s.%N); c1=$(cpu_busy)
  kill -TERM "$sampler" 2>/dev/null || true; wait "$sampler" || true; sampler=
  cp "$bed/node1/up/var/lib/delivery/$cluster/install.log" "$d/install.log" 2>/dev/null || true
  [ -f "$bed/node2/up/var/lib/delivery/$cluster/payload/node.tar" ] \
    && stat -c %s "$bed/node2/up/var/lib/delivery/$cluster/payload/node.tar" > "$d/node.tar.size"
  down
  if [ $rc != 0 ]; then
    echo "install of the $kind bundle to N=$n failed (exit $rc); stderr:" >&2; cat "$d/stderr" >&2
    echo "install.log:" >&2; cat "$d/install.log" >&2 2>/dev/null || true
    die "install failed: see $d"
  fi
  awk -v a="$t0" -v b="$t1" -v c0="$c0" -v c1="$c1" -v tm="$(tail -1 "$d/time")" 'BEGIN {
    split(c0, x, " "); split(c1, y, " "); split(tm, u, " ")
    printf "%.2f %s %s %s %.0f\n", b - a, u[1], u[2], u[3], 100 * (y[1] - x[1]) / (y[2] - x[2]) }' > "$work/result"
}

# copy_span LOG UPLOADS: from the install log (1 s timestamps), the copy step of the targets (not
# node1): "span (first start to last end), min and max per-host seconds, node1's own copy step,
# the master-side preparation (start of the install to the first copy)"; then from the sampler
# (0.05 s) the uploads alone: "span (first byte to last byte), min and max per-host seconds".
copy_span() {
  python3 - "$1" "$2" <<'PY'
import re, sys, datetime
start, end, first = {}, {}, None
for line in open(sys.argv[1]):
    m = re.match(r"(\d{4}-\S+) (\S*) ?(\S+): (.*)", line)
    if not m:
        continue
    t = datetime.datetime.fromisoformat(m[1].replace("Z", "+00:00")).timestamp()
    first = first if first is not None else t
    if m[3] == "copy":
        (start if m[4] == "started" else end)[m[2]] = t
targets = [h for h in start if h != "10.213.7.11" and h in end]
dur = [end[h] - start[h] for h in targets]
own = end["10.213.7.11"] - start["10.213.7.11"] if "10.213.7.11" in end else -1
span = max(end[h] for h in targets) - min(start[h] for h in targets)
prep = min(start.values()) - first
up = [tuple(map(float, l.split()[1:3])) for l in open(sys.argv[2]) if len(l.split()) == 3]
uspan = max(b for a, b in up) - min(a for a, b in up) if up else -1
udur = [b - a for a, b in up] or [-1]
print(f"{span:.0f} {min(dur):.0f} {max(dur):.0f} {own:.0f} {prep:.0f} {uspan:.2f} {min(udur):.2f} {max(udur):.2f} {len(up)}")
PY
}

declare -A wall base busy cpu rss span hmin hmax own prep uspan umin umax nup
for n in $counts; do
  step "N=$n: baseline (1-byte payload)"
  install_once "$n" tiny; read -r base[$n] _ _ _ _ < "$work/result"
  echo "  ${base[$n]} s" >&2
  step "N=$n: $payload payload to $n target(s) at $rate each, master at $master_rate"
  install_once "$n" big; read -r wall[$n] u s rss[$n] busy[$n] < "$work/result"
  cpu[$n]=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.1f", u + s }')
  read -r span[$n] hmin[$n] hmax[$n] own[$n] prep[$n] uspan[$n] umin[$n] umax[$n] nup[$n] \
    < <(copy_span "$work/run-$n-big/install.log" "$work/run-$n-big/uploads")
  [ "${nup[$n]}" = "$n" ] || echo "  the sampler saw ${nup[$n]} of $n uploads" >&2
  echo "  ${wall[$n]} s (copy phase of the targets ${span[$n]} s)" >&2
done
first=${counts%% *}
bytes=$(cat "$work/run-$first-big/node.tar.size")
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

report=$(
cat <<MD
## Fan-out: one $payload node payload from node1 to N hosts (delivery.run install)

- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); kernel $(uname -r)
- bundle: \`FROM scratch\` + \`COPY rootfs rootfs\`, rootfs = one $payload file from /dev/urandom, no hooks, no images; node.tar = $(mb "$bytes") MB ($bytes B); stub \`$STUB\`
- test bed: node1 = master + registry (runs the installer, via nsenter into its namespaces), targets node2..node(N+1) with role node, all sshd in network namespaces on one bridge, one disk
- shaped (tc tbf, burst 128kb, latency 50ms): every target's root-side veth \`dlv-vethI\` at **$rate** ($(mb $((rate_b / 8))) MB/s, the traffic towards the target), and node1's own \`eth0\` at **$master_rate** ($(mb $((master_b / 8))) MB/s, all the master sends). node1's own master.tar is written in place by the installer; its copy step only checks the digest over SSH (via \`lo\`, not shaped) and unpacks
- T(N): wall time of \`install --yes\`; B(N): the same install of a 1-byte-payload bundle on a fresh bed (SSH sessions, preflight, registry start, everything but the bytes); copy: the targets' \`copy\` steps in install.log (first start to last end; 1 s timestamps), which include upload, remote sha256sum, sync and untar
- aggregate = N x node.tar / copy; fraction of the master's link = aggregate / $master_rate; per host = node.tar / that host's copy step

| N | T(N) s | B(N) s | T(N)-B(N) s | T(N)/T(1) | copy s | copy(N)/copy(1) | aggregate MB/s | fraction of master link | per host MB/s (min..max) vs $rate = $(mb $((rate_b / 8))) MB/s |
|---|---|---|---|---|---|---|---|---|---|
$(for n in $counts; do
  awk -v n="$n" -v w="${wall[$n]}" -v b="${base[$n]}" -v w1="${wall[$first]}" -v c="${span[$n]}" -v c1="${span[$first]}" \
      -v lo="${hmax[$n]}" -v hi="${hmin[$n]}" -v by="$bytes" -v m="$master_b" -v r="$rate_b" 'BEGIN {
    agg = n * by / c / 1e6
    printf "| %d | %.1f | %.1f | %.1f | %.2f | %.0f | %.2f | %.1f | %.2f | %.1f..%.1f (%.0f%%..%.0f%%) |\n",
      n, w, b, w - b, w / w1, c, c / c1, agg, agg * 8e6 / m,
      by / lo / 1e6, by / hi / 1e6, 100 * by / lo / (r / 8), 100 * by / hi / (r / 8) }'
done)

Where the time goes. prep: master-side work before the first copy (verify the bundle, unpack it,
build master.tar and node.tar, place the bundle for the registry, start it), from install.log.
upload: the bytes alone, first to last byte of each target's \`node.tar.partial\` as seen from the
machine (sampled every 0.05 s); after upload: the rest of the copy step (remote sha256sum, sync,
rename, untar, sync).

| N | prep s | upload s (span; per host min..max) | upload aggregate MB/s | fraction of master link | per host upload MB/s (min..max) | after upload s (copy - upload) | node1's own copy step s |
|---|---|---|---|---|---|---|---|
$(for n in $counts; do
  awk -v n="$n" -v p="${prep[$n]}" -v us="${uspan[$n]}" -v lo="${umin[$n]}" -v hi="${umax[$n]}" -v c="${span[$n]}" \
      -v o="${own[$n]}" -v by="$bytes" -v m="$master_b" 'BEGIN {
    agg = n * by / us / 1e6
    printf "| %d | %.0f | %.1f; %.1f..%.1f | %.1f | %.2f | %.1f..%.1f | %.0f | %.0f |\n",
      n, p, us, lo, hi, agg, agg * 8e6 / m, by / hi / 1e6, by / lo / 1e6, c - us, o }'
done)

| N | installer CPU (user+sys) s | installer peak RSS | machine CPU busy during T(N) ($(nproc) cores = 100%) |
|---|---|---|---|
$(for n in $counts; do
  echo "| $n | ${cpu[$n]} | $((rss[$n] / 1024)) MiB | ${busy[$n]}% |"
done)

Ideal with these links: copy(N) = node.tar / min($rate, $master_rate / N), i.e.
$(for n in $counts; do awk -v n="$n" -v by="$bytes" -v r="$rate_b" -v m="$master_b" 'BEGIN {
  e = r / 8; if (m / 8 / n < e) e = m / 8 / n; printf "N=%d: %.1f s; ", n, by / e }'; done)
everything (installer, sshd and the remote sha256sum/tar of every host) shares these $(nproc) cores and one disk.
MD
)
echo "$report"
[ -z "${FANOUT_REPORT:-}" ] || echo "$report" > "$FANOUT_REPORT"
