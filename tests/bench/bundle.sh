#!/usr/bin/env bash
# shellcheck disable=SC2016  # the pipelines below are `bash -c '... "$1" ...'`: the inner shell expands them
# Benchmark `delivery build`, `delivery verify` and a delivery.run's `verify` / `extract` against
# the tools customers would otherwise use (makeself, tar | zstd, sha256sum), side by side in one
# run, on a generated context shaped like a real delivery. Prints a markdown report on stdout;
# progress goes to stderr, so `tests/bench/bundle.sh > report.md` keeps the report clean.
#
# Timings on these machines vary 10-40% between runs (see ../shared/notes/baselines.md), so
# every pair is measured in the same run, alternating which tool goes first, and medians are
# compared; absolute numbers from different runs are not comparable.
#
# It is a report, not a test: a missed target still exits 0. A command that fails exits non-zero.

set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too

usage() {
    cat <<'EOF'
Usage: tests/bench/bundle.sh [-h|--help]

Environment (defaults in brackets):
  BENCH_SIZE_MB   size of the generated context in MiB                    [2048]
  BENCH_REPS      repetitions of each measured command                    [3]
  BENCH_DIR       where the cached context and the outputs live           [/var/tmp/delivery-bench]
  BENCH_REPORT    also write the markdown report to this file             [unset]
  DELIVERY_BIN    the generator, relative to the repo root                [target/release/delivery]
  DELIVERY_STUB   the installer stub to embed, relative to the repo root
                                          [target/x86_64-unknown-linux-gnu/release/installer-stub]
Needs root (or the packages makeself zstd time coreutils binutils already installed) and
about 5 x BENCH_SIZE_MB of free disk in BENCH_DIR besides the context itself.
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

SIZE_MB=${BENCH_SIZE_MB:-2048}
REPS=${BENCH_REPS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp/delivery-bench}
DELIVERY_BIN=${DELIVERY_BIN:-target/release/delivery}
DELIVERY_STUB=${DELIVERY_STUB:-target/x86_64-unknown-linux-gnu/release/installer-stub}

CTX=$BENCH_DIR/context            # cached between runs
CTX_INFO=$BENCH_DIR/context.json  # the generator's summary; also the cache stamp
WORK=$BENCH_DIR/run               # everything else; removed at exit
RUNS=$WORK/runs.txt               # one line per timed run: step rep wall_s maxrss_kib cpu%
FAILED=()                         # descriptions of commands that failed
NOTES=()                          # things the reader of the report must know

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bundle.sh: %s\n' "$*" >&2; exit 1; }

# --- setup -------------------------------------------------------------------------------------

# Install what is missing, and only then touch apt: `apt-get update` is slow and needs the mirror.
ensure_tools() {
    local missing=() pair
    for pair in makeself:makeself zstd:zstd time:/usr/bin/time coreutils:sha256sum \
        binutils:objdump binutils:readelf tar:tar python3:python3; do
        command -v "${pair#*:}" >/dev/null 2>&1 || missing+=("${pair%%:*}")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

check_inputs() {
    [[ $SIZE_MB =~ ^[1-9][0-9]*$ ]] || die "BENCH_SIZE_MB must be a positive integer"
    [[ $REPS =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer"
    [ -x "$DELIVERY_BIN" ] || die "no generator at $DELIVERY_BIN (cargo build --release -p generator)"
    [ -x "$DELIVERY_STUB" ] || die "no stub at $DELIVERY_STUB (cargo zigbuild --release -p installer-stub --target x86_64-unknown-linux-gnu.2.17)"
    BIN=$(realpath "$DELIVERY_BIN")
    STUB=$(realpath "$DELIVERY_STUB")
}

# Outputs are 3 copies of the compressed context plus makeself's uncompressed temporary tar plus
# two extraction trees at most: refuse to start rather than fill the disk halfway through.
check_disk() {
    mkdir -p "$BENCH_DIR"
    local need_mb=$((SIZE_MB * 5)) avail_mb
    [ -f "$CTX_INFO" ] || need_mb=$((need_mb + SIZE_MB))
    avail_mb=$(df -Pm "$BENCH_DIR" | awk 'NR == 2 { print $4 }')
    [ "$avail_mb" -ge "$need_mb" ] ||
        die "$BENCH_DIR has $avail_mb MiB free, needs about $need_mb MiB for a $SIZE_MB MiB context"
}

cleanup() {
    # Only the outputs: the context is expensive to regenerate and cached on purpose.
    rm -rf "$WORK"
}

# --- context ---------------------------------------------------------------------------------

# Regenerate only when the requested size (or the generator itself) changed. The stamp is written
# last, so an interrupted generation is never mistaken for a finished one.
prepare_context() {
    local gen=$HERE/make-context.py stamp
    stamp="size_mb=$SIZE_MB generator=$(sha256sum "$gen" | cut -c1-16)"
    if [ -f "$CTX_INFO" ] && [ -d "$CTX" ] && [ "$(head -1 "$CTX_INFO")" = "$stamp" ]; then
        log "reusing the cached context in $CTX"
    else
        log "generating a $SIZE_MB MiB context in $CTX"
        rm -rf "$CTX" "$CTX.partial" "$CTX_INFO"
        local summary
        summary=$(python3 "$gen" "$CTX.partial" "$SIZE_MB")
        mv "$CTX.partial" "$CTX"
        printf '%s\n%s\n' "$stamp" "$summary" >"$CTX_INFO"
    fi
    # Bytes of file content, not `du`: directory blocks are not data anyone compresses.
    CTX_BYTES=$(find "$CTX" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    CTX_FILES=$(find "$CTX" -type f | wc -l)
    CTX_DIRS=$(find "$CTX" -type d | wc -l)
    log "context: $(mib "$CTX_BYTES") MiB ($CTX_BYTES bytes), $CTX_FILES files, $CTX_DIRS directories"
}

# The page cache must hold the context before any build is timed, or the first tool pays for the
# disk reads and the comparison measures the disk.
warm_cache() {
    local t0=$SECONDS
    find "$CTX" -type f -print0 | xargs -0 cat >/dev/null
    log "page cache warmed ($((SECONDS - t0)) s)"
}

# cpu_busy: percent of all CPUs busy over the next 2 seconds, from /proc/stat. Other work on the
# machine (a compile) skews both sides of every pair, but not equally: say so in the report.
cpu_busy() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    sleep 2
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; idle = y[2] - x[2]
                                     printf "%.0f\n", (busy + idle) ? 100 * busy / (busy + idle) : 0 }'
}

quiet_check() {
    local busy
    busy=$(cpu_busy)
    log "CPU busy $1: $busy%"
    if [ "$busy" -gt 10 ]; then
        NOTES+=("The machine was not quiet $1: $busy% of the CPUs busy with other work over 2 s. Timings are unreliable; run again when it is idle.")
    fi
}

# --- measuring -------------------------------------------------------------------------------

# timed STEP CMD...: run CMD once under /usr/bin/time and record wall time, peak RSS and CPU%.
# `sync` first (untimed) so the previous run's writeback does not land in this one's time.
# A failure is recorded rather than fatal, so the report still shows everything else.
timed() {
    local step=$1; shift
    local out=$WORK/logs/$step.$REP.log tf=$WORK/time.txt rc=0
    sync
    /usr/bin/time -f '%e %M %P' -o "$tf" "$@" >"$out" 2>&1 || rc=$?
    if [ $rc -eq 0 ]; then
        echo "$step $REP $(tail -1 "$tf")" >>"$RUNS"
    else
        echo "$step $REP fail fail fail" >>"$RUNS"
        FAILED+=("$step (rep $REP) exited $rc: $*")
        printf 'bundle.sh: %s failed (exit %s); last lines of its output:\n' "$step" "$rc" >&2
        tail -5 "$out" | sed 's/^/    /' >&2
    fi
}

# Run the given step functions once per repetition, forwards on odd repetitions and backwards
# on even ones, so neither tool always inherits the other's cache and thermal state.
alternate() {
    local steps=("$@") i
    for ((REP = 1; REP <= REPS; REP++)); do
        if ((REP % 2)); then
            for ((i = 0; i < ${#steps[@]}; i++)); do "${steps[i]}"; done
        else
            for ((i = ${#steps[@]} - 1; i >= 0; i--)); do "${steps[i]}"; done
        fi
    done
}

# The steps. Each removes its own previous output first (untimed), so every tool writes a new file.
build_ours() {
    rm -f "$WORK/out.run" "$WORK/out.run.sha256" "$WORK/out.run.sig"
    log "build, rep $REP/$REPS: delivery build"
    timed build_ours "$BIN" build -f "$WORK/Kubefile" --context "$CTX" --key "$WORK/bench.key" \
        -o "$WORK/out.run" --stub "$STUB" "${IGNORE_IMAGES[@]}"
}
build_makeself() {
    rm -f "$WORK/makeself.run"
    log "build, rep $REP/$REPS: makeself"
    # TMPDIR: makeself writes an uncompressed tar of the whole context there; keep it next to
    # the other outputs (same disk) and inside what cleanup() removes.
    timed build_makeself env TMPDIR="$WORK/tmp" makeself "${MAKESELF_FLAGS[@]}" \
        "$CTX" "$WORK/makeself.run" bench true
    # Only its size is needed later: free the disk now.
    [ -f "$WORK/makeself.run" ] && MAKESELF_SIZE=$(stat -c %s "$WORK/makeself.run")
    rm -f "$WORK/makeself.run"
}
build_tar() {
    rm -f "$WORK/out.tar.zst"
    log "build, rep $REP/$REPS: tar | zstd -T0 -3"
    timed build_tar bash -c 'set -o pipefail; tar -cf - -C "$1" . | zstd -q -T0 -3 -c >"$2"' \
        _ "$CTX" "$WORK/out.tar.zst"
}
verify_ours() {
    log "verify, rep $REP/$REPS: delivery verify"
    timed verify_ours "$BIN" verify "$WORK/out.run" --key "$WORK/bench.pub"
}
verify_stub() {
    log "verify, rep $REP/$REPS: ./out.run verify"
    timed verify_stub "$WORK/out.run" verify --key "$WORK/bench.pub"
}
verify_sha256sum() {
    log "verify, rep $REP/$REPS: sha256sum"
    timed verify_sha256sum sha256sum "$WORK/out.run"
}
extract_ours() {
    rm -rf "$WORK/x-ours"
    log "extract, rep $REP/$REPS: ./out.run extract"
    timed extract_ours "$WORK/out.run" extract --to "$WORK/x-ours" --key "$WORK/bench.pub"
    rm -rf "$WORK/x-ours"
}
extract_tar() {
    rm -rf "$WORK/x-tar"
    mkdir "$WORK/x-tar"
    log "extract, rep $REP/$REPS: zstd -dc | tar -x"
    timed extract_tar bash -c 'set -o pipefail; zstd -q -dc "$1" | tar -x -C "$2"' \
        _ "$WORK/out.tar.zst" "$WORK/x-tar"
    rm -rf "$WORK/x-tar"
}
# The same, flushed to disk before the clock stops. `extract` syncs what it wrote (syncfs) before it
# reports success, so this is the like-for-like baseline; the plain one above is the target's.
extract_tar_sync() {
    rm -rf "$WORK/x-tar"
    mkdir "$WORK/x-tar"
    log "extract, rep $REP/$REPS: zstd -dc | tar -x; sync"
    timed extract_tar_sync bash -c 'set -o pipefail; zstd -q -dc "$1" | tar -x -C "$2" && sync' \
        _ "$WORK/out.tar.zst" "$WORK/x-tar"
    rm -rf "$WORK/x-tar"
}

# makeself 2.4.5 has --complevel and --threads; older ones do not. Use what exists and say so.
makeself_flags() {
    local help
    help=$(makeself --help 2>&1 || true)
    MAKESELF_VERSION=$(makeself --version 2>&1 | awk '{ print $NF }')
    MAKESELF_FLAGS=(--zstd)
    if grep -q -- '--complevel' <<<"$help"; then
        MAKESELF_FLAGS+=(--complevel 3)
    else
        NOTES+=("makeself $MAKESELF_VERSION has no --complevel: it compressed at its default level.")
    fi
    if grep -q -- '--threads' <<<"$help"; then
        MAKESELF_FLAGS+=(--threads 0)
    else
        NOTES+=("makeself $MAKESELF_VERSION has no --threads: zstd ran single-threaded.")
    fi
    MAKESELF_FLAGS+=(--sha256)
}

# --- statistics and formatting ----------------------------------------------------------------

# median STEP FIELD: median over the successful repetitions (field 3 = wall s, 4 = RSS KiB).
median() {
    awk -v s="$1" -v f="$2" '$1 == s && $f != "fail" { print $f }' "$RUNS" | sort -g |
        awk '{ a[NR] = $1 }
             END { if (NR == 0) print "n/a"
                   else if (NR % 2) print a[(NR + 1) / 2]
                   else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# peak STEP FIELD: the largest value over the successful repetitions.
peak() {
    awk -v s="$1" -v f="$2" '$1 == s && $f != "fail" { if ($f > m) m = $f; n++ }
                             END { print n ? m : "n/a" }' "$RUNS"
}
# ratio A B: A / B to 2 decimals.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"
                                     else printf "%.2f\n", a / b }'
}
# at_least VALUE TARGET / at_most VALUE TARGET: pass, FAIL, or n/a.
at_least() { awk -v v="$1" -v t="$2" 'BEGIN { print (v == "n/a") ? "n/a" : (v + 0 >= t + 0 ? "pass" : "FAIL") }'; }
at_most() { awk -v v="$1" -v t="$2" 'BEGIN { print (v == "n/a") ? "n/a" : (v + 0 <= t + 0 ? "pass" : "FAIL") }'; }
mib() { awk -v b="$1" 'BEGIN { if (b == "n/a" || b == "") print "n/a"; else printf "%.1f\n", b / 1048576 }'; }
kib2mib() { awk -v k="$1" 'BEGIN { if (k == "n/a" || k == "") print "n/a"; else printf "%.1f\n", k / 1024 }'; }
# ident FILE: enough to tell which build of a binary produced a report (they are rebuilt often).
ident() { printf 'sha256 %s, built %s' "$(sha256sum "$1" | cut -c1-12)" "$(date -u -r "$1" '+%Y-%m-%d %H:%M UTC')"; }
fsize() { stat -c %s "$1" 2>/dev/null || echo n/a; }
# pct PART WHOLE: PART as a percentage of WHOLE.
pct() { awk -v p="$1" -v w="$2" 'BEGIN { if (p == "n/a" || w + 0 == 0) print "n/a"; else printf "%.1f%%\n", 100 * p / w }'; }

# speed_row LABEL OURS_STEP BASE_STEP TARGET: one row of the timing table; ratio = base / ours.
speed_row() {
    local ours base r verdict
    ours=$(median "$2" 3)
    base=$(median "$3" 3)
    r=$(ratio "$base" "$ours")
    if [ "$4" = reference ]; then verdict="-"; else verdict=$(at_least "$r" "$4"); fi
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$ours" "$base" "$r" \
        "$([ "$4" = reference ] && echo reference || echo ">= $4")" "$verdict"
}

# --- the report ------------------------------------------------------------------------------

stub_facts() {
    STUB_SIZE=$(stat -c %s "$STUB")
    if readelf -S "$STUB" 2>/dev/null | grep -q '\.symtab'; then STUB_STRIPPED=no; else STUB_STRIPPED=yes; fi
    STUB_GLIBC=$(objdump -T "$STUB" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1 || true)
    STUB_GLIBC=${STUB_GLIBC:-none}
    if [ "$STUB_GLIBC" = none ]; then
        STUB_GLIBC_OK=pass
    elif [ "$(printf '%s\n' GLIBC_2.17 "$STUB_GLIBC" | sort -V | tail -1)" = GLIBC_2.17 ]; then
        STUB_GLIBC_OK=pass
    else
        STUB_GLIBC_OK=FAIL
    fi
}

report() {
    local mem sha cpu_model shape
    mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    if grep -qw sha_ni /proc/cpuinfo; then sha="yes (sha_ni)"; else sha=no; fi
    # The generator's summary: bytes and files of each part of the context.
    shape=$(tail -1 "$CTX_INFO" | python3 -c '
import json, sys
s = json.load(sys.stdin); t = s["bytes"]
for k, label in (("blobs", "already-compressed blobs (random bytes, half with a gzip header)"),
                 ("binaries", "binaries (" + s["binaries"].get("source", "") + ", concatenated)"),
                 ("yaml", "small YAML files in nested directories")):
    n, b = s[k]["files"], s[k]["bytes"]
    print(f"- {label}: {n} files, {b / 2**20:.1f} MiB ({100 * b / t:.0f}%)")
')

    local rss_v rss_x rss_b ours_size tar_size
    rss_v=$(peak verify_stub 4)
    rss_x=$(peak extract_ours 4)
    rss_b=$(peak build_ours 4)
    ours_size=${OURS_SIZE:-n/a}
    tar_size=${TAR_SIZE:-n/a}

    cat <<EOF
# delivery.run benchmark

- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- machine: $(nproc) CPUs, ${cpu_model:-unknown}; $mem RAM; kernel $(uname -r); SHA CPU extensions: $sha
- tools: $("$BIN" --version 2>/dev/null | head -1); zstd $(zstd --version | grep -o 'v[0-9.]*' | head -1); makeself $MAKESELF_VERSION; $(tar --version | head -1); sha256sum $(sha256sum --version | head -1 | awk '{ print $NF }')
- binaries: \`$DELIVERY_BIN\` ($(ident "$BIN")), stub \`$DELIVERY_STUB\` ($(ident "$STUB"))
- method: $REPS repetition(s) of each command, alternating order, page cache warm, \`sync\` (untimed) before every run; wall time and peak RSS from \`/usr/bin/time -f '%e %M'\`; medians. Ratio = baseline time / our time, so higher is better for us.

## Context

\`$CTX\`: $(mib "$CTX_BYTES") MiB ($CTX_BYTES bytes), $CTX_FILES files, $CTX_DIRS directories
$shape

## Speed

| operation | ours (s) | baseline (s) | ratio | target | pass/fail |
|---|---|---|---|---|---|
$(speed_row "build: \`delivery build\` vs \`makeself ${MAKESELF_FLAGS[*]}\`" build_ours build_makeself 2.0)
$(speed_row "build: \`delivery build\` vs \`tar -cf - | zstd -T0 -3\`" build_ours build_tar reference)
$(speed_row "verify: \`delivery verify\` vs \`sha256sum\` of the bundle" verify_ours verify_sha256sum 1.5)
$(speed_row "verify: \`./delivery.run verify\` vs \`sha256sum\` of the bundle" verify_stub verify_sha256sum 1.5)
$(speed_row "extract: \`./delivery.run extract\` vs \`zstd -dc | tar -x\`" extract_ours extract_tar 0.9)
$(speed_row "extract: \`./delivery.run extract\` vs \`zstd -dc | tar -x; sync\`" extract_ours extract_tar_sync reference)

\`zstd -dc | tar -x\` stops the clock with its data still in the page cache; the \`; sync\` row
includes the writeback, as an extraction that flushes to disk before it reports success does.

## Memory and size

| metric | ours | baseline | ratio | target | pass/fail |
|---|---|---|---|---|---|
| stub peak RSS, \`verify\` | $(kib2mib "$rss_v") MiB | sha256sum $(kib2mib "$(peak verify_sha256sum 4)") MiB | | <= 64 MiB | $(at_most "$(kib2mib "$rss_v")" 64) |
| stub peak RSS, \`extract\` | $(kib2mib "$rss_x") MiB | zstd/tar $(kib2mib "$(peak extract_tar 4)") MiB | | <= 64 MiB | $(at_most "$(kib2mib "$rss_x")" 64) |
| \`delivery build\` peak RSS | $(kib2mib "$rss_b") MiB | makeself $(kib2mib "$(peak build_makeself 4)") MiB | | | - |
| stub size (stripped: $STUB_STRIPPED) | $(mib "$STUB_SIZE") MiB ($STUB_SIZE B) | | | <= 8 MiB | $(at_most "$STUB_SIZE" 8388608) |
| stub's highest glibc symbol | $STUB_GLIBC | | | <= GLIBC_2.17 | $STUB_GLIBC_OK |
| bundle size vs makeself output | $(mib "$ours_size") MiB ($(pct "$ours_size" "$CTX_BYTES") of context) | $(mib "${MAKESELF_SIZE:-n/a}") MiB ($(pct "${MAKESELF_SIZE:-n/a}" "$CTX_BYTES")) | $(ratio "${MAKESELF_SIZE:-n/a}" "$ours_size") | | - |
| bundle size vs tar.zst | $(mib "$ours_size") MiB | $(mib "$tar_size") MiB ($(pct "$tar_size" "$CTX_BYTES")) | $(ratio "$tar_size" "$ours_size") | | - |

## All runs

| step | rep | wall (s) | peak RSS (MiB) | CPU |
|---|---|---|---|---|
$(sort -k1,1 -k2,2n "$RUNS" | awk '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, ($4 == "fail") ? "fail" : sprintf("%.1f", $4 / 1024), $5 }')
EOF
    if [ ${#NOTES[@]} -gt 0 ] || [ ${#FAILED[@]} -gt 0 ]; then
        printf '\n## Notes\n\n'
        local n
        for n in "${NOTES[@]}"; do printf -- '- %s\n' "$n"; done
        for n in "${FAILED[@]}"; do printf -- '- FAILED: %s\n' "$n"; done
    fi
}

# --- main --------------------------------------------------------------------------------------

main() {
    ensure_tools
    check_inputs
    check_disk
    makeself_flags
    stub_facts

    trap cleanup EXIT
    trap 'exit 130' INT TERM
    rm -rf "$WORK"
    mkdir -p "$WORK/logs" "$WORK/tmp"
    : >"$RUNS"

    prepare_context

    # Outside the context, so the Kubefile is not itself copied into the bundle.
    printf 'FROM scratch\nCOPY . .\n' >"$WORK/Kubefile"
    "$BIN" keygen --out "$WORK/bench" >"$WORK/logs/keygen.log" 2>&1 ||
        die "delivery keygen failed: $(cat "$WORK/logs/keygen.log")"

    # The generated manifests name images by random digests that no registry has: a build must
    # still find them (discovery stays inside the timed build) and then leave them out
    # explicitly, or it fails fetching. Images are benchmarked by registry.sh and fanout.sh.
    IGNORE_IMAGES=()
    "$BIN" images -f "$WORK/Kubefile" --context "$CTX" --json >"$WORK/images.jsonl" 2>"$WORK/logs/images.log" ||
        die "delivery images failed: $(cat "$WORK/logs/images.log")"
    local ref refs=0
    while read -r ref; do
        IGNORE_IMAGES+=(--ignore-image "$ref")
        refs=$((refs + 1))
    done < <(python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("type") == "image":
        print(m["data"]["reference"])' <"$WORK/images.jsonl" | sort -u)
    log "the context's manifests name $refs images: the builds leave them out with --ignore-image"
    NOTES+=("The context's manifests name $refs images by made-up digests; \`delivery build\` finds them (discovery is inside its timing) and leaves them out with \`--ignore-image\`. Image fetching and serving are measured by registry.sh and fanout.sh.")

    warm_cache
    quiet_check "before the measurements"
    alternate build_ours build_makeself build_tar
    OURS_SIZE=$(fsize "$WORK/out.run")
    TAR_SIZE=$(fsize "$WORK/out.tar.zst")

    alternate verify_ours verify_stub verify_sha256sum
    alternate extract_ours extract_tar extract_tar_sync
    rm -f "$WORK/out.run" "$WORK/out.tar.zst"
    sync  # our own writeback is not "other work"
    quiet_check "after the measurements"

    # SHA-256 speed decides the verify ratios, and CPUs with SHA extensions change it several-fold.
    if grep -qw sha_ni /proc/cpuinfo; then
        NOTES+=("This CPU has SHA extensions (sha_ni); the figures in ../shared/notes/baselines.md were measured on machines without them, where every SHA-256 (ours and sha256sum's) is several times slower: compare verify ratios only with runs on the same kind of CPU.")
    fi

    local out
    out=$(report)
    printf '%s\n' "$out"
    if [ -n "${BENCH_REPORT:-}" ]; then printf '%s\n' "$out" >"$BENCH_REPORT"; fi

    [ ${#FAILED[@]} -eq 0 ] || exit 1
}

main
