#!/usr/bin/env bash
# Pull throughput of `delivery.run registry serve` against Debian's docker-registry serving the
# same images, side by side in one run; plus the stub's peak RSS and the disk it uses.
#
#   BENCH_IMAGES [8] images with one random BENCH_LAYER_MIB [128] MiB layer each (~1 GiB),
#   BENCH_CLIENTS [8] parallel clients each pulling every blob, BENCH_REPS [3], BENCH_DIR,
#   BENCH_CLIENT [curl]: `curl` (curl -o /dev/null, one connection per blob) or `discard`
#   (tests/bench/discard-client.py: one keep-alive connection, bodies dropped in the kernel with
#   MSG_TRUNC), which leaves as much of the CPU as possible to the servers.
# Prints a markdown report (also to BENCH_REPORT if set). A report, not a test.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/setup.sh >/dev/null

images=${BENCH_IMAGES:-8} layer_mib=${BENCH_LAYER_MIB:-128} clients=${BENCH_CLIENTS:-8} reps=${BENCH_REPS:-3}
client=${BENCH_CLIENT:-curl}
case $client in curl|discard) ;; *) echo "BENCH_CLIENT must be curl or discard, not '$client'" >&2; exit 2 ;; esac
dir=${BENCH_DIR:-/var/tmp/delivery-registry-bench}
rm -rf "$dir"; mkdir -p "$dir"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -sf "http://$1/v2/" >/dev/null && return 0; sleep 0.1; done; echo "$1 did not come up" >&2; exit 1; }

step "generating $images images x $layer_mib MiB"
python3 tests/bench/make-layout.py "$dir/layout" "$images" "$layer_mib"

# Upstream docker-registry: the baseline server, and where the bundle build fetches from.
up_port=$(port)
cat > "$dir/registry.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $dir/registry-storage}}
http: {addr: 127.0.0.1:$up_port}
YAML
docker-registry serve "$dir/registry.yml" >/dev/null 2>&1 & up_pid=$!; pids+=($up_pid)
wait_up "127.0.0.1:$up_port"
: > "$dir/ctx-imageList"
for k in $(seq 0 $((images - 1))); do
  skopeo copy --quiet --dest-tls-verify=false "oci:$dir/layout:img$k" "docker://127.0.0.1:$up_port/bench/app:img$k"
  echo "example.com/bench/app:img$k" >> "$dir/ctx-imageList"
done

step "building the bundle"
mkdir -p "$dir/ctx/manifests"; mv "$dir/ctx-imageList" "$dir/ctx/manifests/imageList"
printf 'FROM scratch\nCOPY manifests manifests\n' > "$dir/ctx/Kubefile"
"$DELIVERY" keygen --out "$dir/key" >/dev/null 2>&1
"$DELIVERY" build -f "$dir/ctx/Kubefile" --key "$dir/key.key" -o "$dir/app.run" --stub "$DELIVERY_STUB" \
  --mirror "example.com=127.0.0.1:$up_port" --insecure-registry "127.0.0.1:$up_port" --cache-dir "$dir/cache" >/dev/null 2>&1
rm -rf "$dir/cache" "$dir/layout"

stub_port=$(port)
df_before=$(df -B1 --output=used "$dir" | tail -1)
"$dir/app.run" registry serve --listen "127.0.0.1:$stub_port" --no-verify-contents 2>/dev/null & stub_pid=$!; pids+=($stub_pid)
wait_up "127.0.0.1:$stub_port"

# Every blob of every image, as (repository, digest) pairs.
blobs=$("$dir/app.run" images --json | python3 -c '
import json, sys, urllib.request
port = sys.argv[1]
for line in sys.stdin:
    d = json.loads(line)["data"]
    repo = d["name"].split("/", 1)[1].rsplit(":", 1)[0]
    digest = d["digest"]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/{repo}/manifests/{digest}?ns=example.com",
                                 headers={"Accept": d["media_type"]})
    m = json.load(urllib.request.urlopen(req))
    for b in [m["config"]] + m["layers"]:
        print(repo, b["digest"], b["size"])
' "$stub_port")
total_bytes=$(awk '{s+=$3} END {print s}' <<<"$blobs")
printf '%s\n' "$blobs" > "$dir/blobs.txt"

# cpu_all: idle and total ticks of the whole machine so far (/proc/stat, idle + iowait).
cpu_all() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $5 + $6, t }' /proc/stat; }

# pull BASE_URL QUERY LABEL: $clients clients at once, each fetching every blob; prints seconds
# and appends the share of the machine's CPU time left idle meanwhile to $dir/idle.LABEL.
pull() {
  local base=$1 query=$2 label=$3 start end client_pids=() failed=0 idle0 total0 idle1 total1
  read -r idle0 total0 < <(cpu_all)
  start=$(date +%s.%N)
  for _ in $(seq "$clients"); do
    if [ "$client" = discard ]; then
      python3 tests/bench/discard-client.py "${base#http://}" "$query" "$dir/blobs.txt" >/dev/null &
      client_pids+=($!)
      continue
    fi
    (while read -r repo digest _; do
       curl -sf --http1.1 -o /dev/null "$base/v2/$repo/blobs/$digest$query" || { echo "pull failed: $base $repo $digest" >&2; exit 1; }
     done <<<"$blobs") &
    client_pids+=($!)
  done
  for p in "${client_pids[@]}"; do wait "$p" || failed=1; done
  end=$(date +%s.%N)
  read -r idle1 total1 < <(cpu_all)
  [ $failed = 0 ] || exit 1
  awk -v i=$((idle1 - idle0)) -v t=$((total1 - total0)) 'BEGIN { printf "%.1f\n", 100 * i / t }' >>"$dir/idle.$label"
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}

# cpu_ticks PID: user + system CPU time of a process so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
stub_cpu0=$(cpu_ticks "$stub_pid"); up_cpu0=$(cpu_ticks "$up_pid")
declare -a ours theirs
for r in $(seq "$reps"); do
  step "rep $r/$reps"
  if [ $((r % 2)) = 1 ]; then
    ours+=("$(pull "http://127.0.0.1:$stub_port" "?ns=example.com" ours)"); theirs+=("$(pull "http://127.0.0.1:$up_port" "" theirs)")
  else
    theirs+=("$(pull "http://127.0.0.1:$up_port" "" theirs)"); ours+=("$(pull "http://127.0.0.1:$stub_port" "?ns=example.com" ours)")
  fi
done
df_after=$(df -B1 --output=used "$dir" | tail -1)
hz=$(getconf CLK_TCK)
stub_cpu=$(awk -v a="$stub_cpu0" -v b="$(cpu_ticks "$stub_pid")" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
up_cpu=$(awk -v a="$up_cpu0" -v b="$(cpu_ticks "$up_pid")" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
cpu_ratio=$(awk -v t="$up_cpu" -v o="$stub_cpu" 'BEGIN { printf "%.2f", t / o }')
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$stub_pid/status")
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
o=$(median "${ours[@]}"); t=$(median "${theirs[@]}")
moved=$((total_bytes * clients))
mbps() { awk -v m="$moved" -v s="$1" 'BEGIN { printf "%.0f", m / s / 1048576 }'; }
ratio=$(awk -v t="$t" -v o="$o" 'BEGIN { printf "%.2f", t / o }')
report=$(cat <<MD
## Issue 3: registry pull throughput

- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); kernel $(uname -r)
- $images images, $(numfmt --to=iec "$total_bytes") of blobs; $clients parallel clients ($([ "$client" = curl ] && echo "curl -o /dev/null, HTTP/1.1" || echo "discard-client.py: keep-alive, bodies dropped in the kernel")), each pulling every blob; $reps reps, median; loopback
- both servers on this machine at once: \`delivery.run registry serve\` (straight from the bundle file, sendfile) and Debian's docker-registry (filesystem storage)

| server | median (s) | throughput | ratio | target |
|---|---|---|---|---|
| delivery.run registry serve | $o | $(mbps "$o") MiB/s | $ratio | >= 1.5 |
| docker-registry 2.8 | $t | $(mbps "$t") MiB/s | 1.00 | |

| metric | value | target |
|---|---|---|
| server CPU (user+system) for all reps: ours / docker-registry | $stub_cpu s / $up_cpu s ($cpu_ratio x less) | |
| machine CPU left idle during the pulls (each rep): ours / docker-registry | $(paste -sd' ' "$dir/idle.ours") % / $(paste -sd' ' "$dir/idle.theirs") % | |
| stub peak RSS (VmHWM) during the pulls | $((rss_kib / 1024)) MiB | <= 64 MiB |
| disk used on the serving host beyond the bundle while serving | $(( (df_after - df_before) / 1048576 )) MiB (df delta of $dir) | none |

all runs, ours: ${ours[*]}; docker-registry: ${theirs[*]}

On $(nproc) cores the clients share the CPU with the server: when the idle row is near 0 the
machine, not the server, is the limit. On loopback, receive processing runs in softirq context
and is charged to whichever process is on the CPU, so the per-server CPU row is only indicative.
MD
)
echo "$report"
[ -z "${BENCH_REPORT:-}" ] || echo "$report" > "$BENCH_REPORT"
