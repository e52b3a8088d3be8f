#!/usr/bin/env bash
# Pull throughput of `delivery.run registry serve` against Debian's docker-registry serving the
# same images, side by side in one run; plus the stub's peak RSS and the disk it uses.
#
#   BENCH_IMAGES [8] images with one random BENCH_LAYER_MIB [128] MiB layer each (~1 GiB),
#   BENCH_CLIENTS [8] parallel clients each pulling every blob, BENCH_REPS [3], BENCH_DIR,
#   BENCH_CLIENT ["discard curl"]: which clients, each measured against both servers:
#   `discard` (tests/bench/discard-client.c, built here with gcc: one keep-alive connection,
#   bodies dropped in the kernel with MSG_TRUNC), which leaves as much of the CPU as possible to
#   the servers, and
#   `curl` (one curl per client, every blob over one keep-alive connection to /dev/null), a
#   real client, which copies every byte to user space and so takes much of the CPU itself.
# Prints a markdown report (also to BENCH_REPORT if set). A report, not a test.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/setup.sh >/dev/null

images=${BENCH_IMAGES:-8} layer_mib=${BENCH_LAYER_MIB:-128} clients=${BENCH_CLIENTS:-8} reps=${BENCH_REPS:-3}
kinds=${BENCH_CLIENT:-discard curl}
for k in $kinds; do
  case $k in curl|discard) ;; *) echo "BENCH_CLIENT holds curl and/or discard, not '$k'" >&2; exit 2 ;; esac
done
dir=${BENCH_DIR:-/var/tmp/delivery-registry-bench}
rm -rf "$dir"; mkdir -p "$dir"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -sf "http://$1/v2/" >/dev/null && return 0; sleep 0.1; done; echo "$1 did not come up" >&2; exit 1; }

gcc -O2 -Wall -Werror -o "$dir/discard-client" tests/bench/discard-client.c

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

# pull KIND BASE_URL QUERY LABEL: $clients clients of KIND at once, each fetching every blob;
# prints seconds and appends the share of the machine's CPU time left idle meanwhile to
# $dir/idle.LABEL.
pull() {
  local client=$1 base=$2 query=$3 label=$4 start end client_pids=() failed=0 idle0 total0 idle1 total1
  local curl_args=() repo digest
  while read -r repo digest _; do curl_args+=(-o /dev/null "$base/v2/$repo/blobs/$digest$query"); done <<<"$blobs"
  read -r idle0 total0 < <(cpu_all)
  start=$(date +%s.%N)
  for _ in $(seq "$clients"); do
    if [ "$client" = discard ]; then
      local hostport=${base#http://}
      "$dir/discard-client" "${hostport%:*}" "${hostport##*:}" "$query" "$dir/blobs.txt" >/dev/null &
      client_pids+=($!)
      continue
    fi
    # One curl for all the blobs: one keep-alive connection, as a real puller holds.
    (curl -sf --fail-early --http1.1 "${curl_args[@]}" || { echo "pull failed: $base" >&2; exit 1; }) &
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
hz=$(getconf CLK_TCK)
secs() { awk -v a="$1" -v b="$2" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
moved=$((total_bytes * clients))
mbps() { awk -v m="$moved" -v s="$1" 'BEGIN { printf "%.0f", m / s / 1048576 }'; }
rows="" cpu_rows="" idle_rows="" runs=""
for k in $kinds; do
  stub_cpu0=$(cpu_ticks "$stub_pid"); up_cpu0=$(cpu_ticks "$up_pid")
  ours=() theirs=()
  for r in $(seq "$reps"); do
    step "$k clients: rep $r/$reps"
    if [ $((r % 2)) = 1 ]; then
      ours+=("$(pull "$k" "http://127.0.0.1:$stub_port" "?ns=example.com" "ours.$k")"); theirs+=("$(pull "$k" "http://127.0.0.1:$up_port" "" "theirs.$k")")
    else
      theirs+=("$(pull "$k" "http://127.0.0.1:$up_port" "" "theirs.$k")"); ours+=("$(pull "$k" "http://127.0.0.1:$stub_port" "?ns=example.com" "ours.$k")")
    fi
  done
  stub_cpu=$(secs "$stub_cpu0" "$(cpu_ticks "$stub_pid")"); up_cpu=$(secs "$up_cpu0" "$(cpu_ticks "$up_pid")")
  o=$(median "${ours[@]}"); t=$(median "${theirs[@]}")
  ratio=$(awk -v t="$t" -v o="$o" 'BEGIN { printf "%.2f", t / o }')
  verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 1.5 ? "pass" : "fail") }')
  rows+="| $k | $o s, $(mbps "$o") MiB/s | $t s, $(mbps "$t") MiB/s | $ratio | >= 1.5 | $verdict |"$'\n'
  cpu_rows+="| server CPU (user+system), all $k reps: ours / docker-registry | $stub_cpu s / $up_cpu s | |"$'\n'
  idle_rows+="| machine CPU left idle during each $k rep: ours / docker-registry | $(paste -sd' ' "$dir/idle.ours.$k") % / $(paste -sd' ' "$dir/idle.theirs.$k") % | |"$'\n'
  runs+="all $k runs, ours: ${ours[*]}; docker-registry: ${theirs[*]}"$'\n\n'
done
df_after=$(df -B1 --output=used "$dir" | tail -1)
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$stub_pid/status")
report=$(cat <<MD
## Issue 3: registry pull throughput

- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); kernel $(uname -r)
- $images images, $(numfmt --to=iec "$total_bytes") of blobs; $clients parallel clients, each pulling every blob; $reps reps, median; loopback
- clients: \`discard\` = tests/bench/discard-client.c (one keep-alive connection, each body dropped in the kernel with MSG_TRUNC, never copied); \`curl\` = one curl per client, every blob over one keep-alive connection, -o /dev/null
- both servers on this machine at once: \`delivery.run registry serve\` (straight from the bundle file) and Debian's docker-registry (filesystem storage)

| clients | delivery.run registry serve | docker-registry 2.8 | ratio | target | pass/fail |
|---|---|---|---|---|---|
${rows%$'\n'}

| metric | value | target |
|---|---|---|
${cpu_rows}${idle_rows}| stub peak RSS (VmHWM) during all the pulls | $((rss_kib / 1024)) MiB | <= 64 MiB |
| disk used on the serving host beyond the bundle while serving | $(( (df_after - df_before) / 1048576 )) MiB (df delta of $dir) | none |

${runs%$'\n\n'}

On $(nproc) cores the clients share the CPU with the server: when the idle row is near 0 the
machine, not the server, is the limit, and the cheaper the client the more of the CPU is left to
the server under test. On loopback, receive processing runs in softirq context and is charged to
whichever process is on the CPU, so the per-server CPU rows are only indicative.
MD
)
echo "$report"
[ -z "${BENCH_REPORT:-}" ] || echo "$report" > "$BENCH_REPORT"
