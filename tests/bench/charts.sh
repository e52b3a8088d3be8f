#!/usr/bin/env bash
# shellcheck disable=SC2016  # the pipelines below are `bash -c '... "$1" ...'`: the inner shell expands them
# Benchmark image discovery on a large chart context: `delivery images --json` (which renders
# every Helm chart in process, like `helm template`) on a build context of BENCH_CHARTS real
# charts, against plain reads of the same tree (the I/O floor), side by side in one run. Prints a
# markdown report on stdout; progress goes to stderr, so `tests/bench/charts.sh > report.md`
# keeps the report clean.
#
# The charts are copies of the real ones in ../shared/corpus (its README: read it in place, never
# copy it into the project), made at run time under BENCH_DIR: each source chart in turn, every
# copy renamed (directory and Chart.yaml `name:`), half of them packed as `<name>-<version>.tgz`
# with the single top-level `<name>/` directory, as `helm package` writes them.
#
# Timings on these machines vary 10-40% between runs (see ../shared/notes/baselines.md), so
# ours and the baselines are measured in the same run, alternating which goes first, and medians
# are compared; absolute numbers from different runs are not comparable.
#
# It is a report, not a test: a missed target still exits 0. A command that fails exits non-zero.

set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too

usage() {
    cat <<'EOF'
Usage: tests/bench/charts.sh [-h|--help]

Environment (defaults in brackets):
  BENCH_CHARTS    charts in the generated context's charts/                [300]
  BENCH_REPS      repetitions of each measured command                    [3]
  BENCH_DIR       where the generated context and the logs live           [/var/tmp/delivery-charts-bench]
  BENCH_KEEP      1 keeps BENCH_DIR/run (context, logs) after the run      [unset]
  BENCH_REPORT    also write the markdown report to this file             [unset]
  BENCH_CORPUS    the corpus the charts are copied from, relative to the repo root
                                                                          [../shared/corpus]
  DELIVERY_BIN    the generator, relative to the repo root                [target/release/delivery]
Needs the packages time tar gzip coreutils findutils (installed with apt-get when missing, which
needs root) and a few hundred MiB of free disk in BENCH_DIR.
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

CHARTS=${BENCH_CHARTS:-300}
REPS=${BENCH_REPS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp/delivery-charts-bench}
CORPUS=${BENCH_CORPUS:-../shared/corpus}
DELIVERY_BIN=${DELIVERY_BIN:-target/release/delivery}

# The targets, for 300 charts.
TARGET_CHARTS=300
TARGET_WALL_S=30
TARGET_RSS_MIB=512

WORK=$BENCH_DIR/run               # everything this script writes; removed at exit
CTX=$WORK/context                 # the build context: Kubefile and charts/
RUNS=$WORK/runs.txt               # one line per timed run: step rep wall_s maxrss_kib cpu%
SOURCES=()                        # the real charts the copies are made from
FAILED=()                         # descriptions of commands that failed
NOTES=()                          # things the reader of the report must know

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'charts.sh: %s\n' "$*" >&2; exit 1; }

# --- setup -------------------------------------------------------------------------------------

# Install what is missing, and only then touch apt: `apt-get update` is slow and needs the mirror.
ensure_tools() {
    local missing=() pair
    for pair in time:/usr/bin/time tar:tar gzip:gzip gzip:zcat coreutils:sha256sum \
        findutils:find gawk:awk; do
        command -v "${pair#*:}" >/dev/null 2>&1 || missing+=("${pair%%:*}")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

check_inputs() {
    [[ $CHARTS =~ ^[1-9][0-9]*$ ]] || die "BENCH_CHARTS must be a positive integer"
    [[ $REPS =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer"
    [ -x "$DELIVERY_BIN" ] || die "no generator at $DELIVERY_BIN (cargo build --release -p generator)"
    BIN=$(realpath "$DELIVERY_BIN")

    # Every chart of the corpus's chart cases, plus the Bitnami chart with a subchart (common)
    # from a real sealos context. Sorted, so the same corpus gives the same context.
    local d
    for d in "$CORPUS"/charts/*/context/charts/* \
        "$CORPUS"/kubefiles/K14-sealos-bitnami-postgresql/context/charts/postgresql; do
        [ -f "$d/Chart.yaml" ] && SOURCES+=("$(realpath "$d")")
    done
    [ ${#SOURCES[@]} -gt 0 ] || die "no charts found under $CORPUS (set BENCH_CORPUS to the corpus directory)"
}

cleanup() {
    if [ "${BENCH_KEEP:-}" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}

# --- context ---------------------------------------------------------------------------------

# chart_field CHART_YAML KEY: a top-level scalar of a Chart.yaml (`name`, `version`), unquoted.
chart_field() {
    awk -v k="$2" '$0 ~ "^" k ":" { sub("^" k ":[ \t]*", ""); gsub(/["\047]/, ""); sub(/[ \t]+$/, ""); print; exit }' "$1"
}

# Copy the sources in turn into charts/ until there are $CHARTS. Copy i of source s is named
# `<source name>-<i>`; it is packed when (round + s) is odd, so every source appears in both forms
# and exactly every other chart of a round is a .tgz when there is an even number of sources.
# Only the top-level `name:` of Chart.yaml changes: a subchart keeps its own name, since the
# parent's `dependencies:` refer to it.
make_context() {
    local n=${#SOURCES[@]} i s src base name version stage=$WORK/stage
    rm -rf "$CTX" "$stage"
    mkdir -p "$CTX/charts" "$stage"
    printf 'FROM scratch\nCOPY charts charts\n' >"$CTX/Kubefile"
    TGZ_CHARTS=0
    UNPACKED_FILES=0
    UNPACKED_BYTES=0
    for ((i = 0; i < CHARTS; i++)); do
        s=$((i % n))
        src=${SOURCES[s]}
        base=$(chart_field "$src/Chart.yaml" name)
        name=$(printf '%s-%04d' "$base" "$i")
        cp -R "$src" "$stage/$name"
        sed -i "s/^name:.*/name: $name/" "$stage/$name/Chart.yaml"
        [ "$(chart_field "$stage/$name/Chart.yaml" name)" = "$name" ] || die "could not rename $src to $name"
        UNPACKED_FILES=$((UNPACKED_FILES + $(find "$stage/$name" -type f | wc -l)))
        UNPACKED_BYTES=$((UNPACKED_BYTES + $(find "$stage/$name" -type f -printf '%s\n' | awk '{ t += $1 } END { print t + 0 }')))
        if (((i / n + s) % 2)); then
            version=$(chart_field "$stage/$name/Chart.yaml" version)
            tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
                -czf "$CTX/charts/$name-$version.tgz" "$name"
            rm -rf "${stage:?}/$name"
            TGZ_CHARTS=$((TGZ_CHARTS + 1))
        else
            mv "$stage/$name" "$CTX/charts/$name"
        fi
    done
    rmdir "$stage"
    # Bytes of file content, not `du`: directory blocks are not data anyone reads.
    CTX_FILES=$(find "$CTX/charts" -type f | wc -l)
    CTX_DIRS=$(find "$CTX/charts" -type d | wc -l)
    CTX_BYTES=$(find "$CTX/charts" -type f -printf '%s\n' | awk '{ t += $1 } END { print t + 0 }')
    log "context: $CHARTS charts ($TGZ_CHARTS as .tgz), $CTX_FILES files, $(mib "$CTX_BYTES") MiB in charts/"
}

# The page cache must hold the context before anything is timed, or the first command pays for
# the disk reads and the comparison measures the disk.
warm_cache() {
    find "$CTX" -type f -print0 | xargs -0 cat >/dev/null
    log "page cache warmed"
}

# cpu_busy: percent of all CPUs busy over the next 2 seconds, from /proc/stat. Other work on the
# machine (a compile) skews every command, but not equally: say so in the report.
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

# timed STEP CMD...: run CMD once under /usr/bin/time, from the context directory, and record
# wall time, peak RSS and CPU%. Its stdout goes to logs/STEP.REP.out, its stderr to .err.
# Nothing here writes to disk, so there is no `sync` between runs.
# A failure is recorded rather than fatal, so the report still shows everything else.
timed() {
    local step=$1; shift
    local out=$WORK/logs/$step.$REP tf=$WORK/time.txt rc=0
    (cd "$CTX" && /usr/bin/time -f '%e %M %P' -o "$tf" "$@" >"$out.out" 2>"$out.err") || rc=$?
    if [ $rc -eq 0 ]; then
        echo "$step $REP $(tail -1 "$tf")" >>"$RUNS"
    else
        echo "$step $REP fail fail fail" >>"$RUNS"
        FAILED+=("$step (rep $REP) exited $rc: $*")
        printf 'charts.sh: %s failed (exit %s); last lines of its output:\n' "$step" "$rc" >&2
        tail -5 "$out.err" | sed 's/^/    /' >&2
    fi
}

# Run the given step functions once per repetition, forwards on odd repetitions and backwards
# on even ones, so no command always inherits another's cache and CPU state.
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

# The steps. Every baseline pipes into `wc -c`: GNU tar skips reading file contents when its
# archive is /dev/null, so `tar -cf - charts >/dev/null` would measure a directory walk.
images_ours() {
    log "rep $REP/$REPS: delivery images --json"
    timed images_ours "$BIN" images --json -f Kubefile
}
read_tar() {
    log "rep $REP/$REPS: tar -cf - charts | wc -c"
    timed read_tar bash -c 'set -o pipefail; tar -cf - charts | wc -c'
}
read_cat() {
    log "rep $REP/$REPS: cat of every file, zcat of every .tgz | wc -c"
    timed read_cat bash -c 'set -o pipefail
        { find charts -type f ! -name "*.tgz" -exec cat -- {} + &&
          find charts -type f -name "*.tgz" -exec zcat -- {} +; } | wc -c'
}
read_targz() {
    log "rep $REP/$REPS: tar -czf - charts | wc -c"
    timed read_targz bash -c 'set -o pipefail; tar -czf - charts | wc -c'
}

# What each source chart gives on its own (one copy, directory form, one run): their union is
# what the whole context must give, since every copy has the same values and templates. Its time
# and RSS go to solo.txt (source wall_s maxrss_kib): they show which chart the time goes to.
expected_images() {
    local src name one=$WORK/one tf=$WORK/time.txt
    : >"$WORK/solo.txt"
    for src in "${SOURCES[@]}"; do
        name=$(chart_field "$src/Chart.yaml" name)-solo
        rm -rf "$one"
        mkdir -p "$one/charts"
        cp -R "$src" "$one/charts/$name"
        sed -i "s/^name:.*/name: $name/" "$one/charts/$name/Chart.yaml"
        printf 'FROM scratch\nCOPY charts charts\n' >"$one/Kubefile"
        /usr/bin/time -f '%e %M' -o "$tf" "$BIN" images --json -f "$one/Kubefile" \
            2>"$WORK/logs/solo.err" >"$WORK/logs/solo.out" ||
            die "delivery images failed on $src alone: $(tail -3 "$WORK/logs/solo.err")"
        references <"$WORK/logs/solo.out"
        echo "$src $(tail -1 "$tf")" >>"$WORK/solo.txt"
    done | sort -u >"$WORK/expected.txt"
    rm -rf "$one"
}

# references: the image references of `delivery images --json` on stdin, one a line.
references() { grep -o '"reference":"[^"]*"' | cut -d'"' -f4 || true; }

# --- statistics and formatting ----------------------------------------------------------------

# stat_of STEP FIELD FN: median, min or max (FN) over the successful repetitions (field 3 = wall
# s, 4 = RSS KiB).
stat_of() {
    awk -v s="$1" -v f="$2" '$1 == s && $f != "fail" { print $f }' "$RUNS" | sort -g |
        awk -v fn="$3" '{ a[NR] = $1 }
             END { if (NR == 0) print "n/a"
                   else if (fn == "min") print a[1]
                   else if (fn == "max") print a[NR]
                   else if (NR % 2) print a[(NR + 1) / 2]
                   else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
median() { stat_of "$1" "$2" median; }
# ratio A B: A / B to 2 decimals.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"
                                     else printf "%.2f\n", a / b }'
}
at_most() { awk -v v="$1" -v t="$2" 'BEGIN { print (v == "n/a") ? "n/a" : (v + 0 <= t + 0 ? "pass" : "FAIL") }'; }
mib() { awk -v b="$1" 'BEGIN { if (b == "n/a" || b == "") print "n/a"; else printf "%.1f\n", b / 1048576 }'; }
kib2mib() { awk -v k="$1" 'BEGIN { if (k == "n/a" || k == "") print "n/a"; else printf "%.1f\n", k / 1024 }'; }
# per_chart SECONDS: milliseconds per chart.
per_chart() { awk -v s="$1" -v n="$CHARTS" 'BEGIN { if (s == "n/a") print "n/a"; else printf "%.1f\n", 1000 * s / n }'; }
# ident FILE: enough to tell which build of a binary produced a report (they are rebuilt often).
ident() { printf 'sha256 %s, built %s' "$(sha256sum "$1" | cut -c1-12)" "$(date -u -r "$1" '+%Y-%m-%d %H:%M UTC')"; }

# spread STEP FIELD CONV: "median (min-max)" of a field, converted by the function CONV.
spread() { printf '%s (%s-%s)' "$("$3" "$(median "$1" "$2")")" "$("$3" "$(stat_of "$1" "$2" min)")" "$("$3" "$(stat_of "$1" "$2" max)")"; }
same() { printf '%s' "$1"; }

# baseline_row LABEL STEP: one row of the comparison table; ratio = ours / baseline.
baseline_row() {
    local ours base
    ours=$(median images_ours 3)
    base=$(median "$2" 3)
    printf '| %s | %s | %s | %s | %s |\n' "$1" "$(spread "$2" 3 same)" "$(spread "$2" 4 kib2mib)" \
        "$(ratio "$ours" "$base")" "$(per_chart "$base")"
}

# --- the report ------------------------------------------------------------------------------

# Images found, from every successful run of ours: the line counts (one JSON line per image) and
# the distinct references, which must not differ between repetitions.
image_facts() {
    local counts rep
    IMAGE_LINES=n/a
    IMAGE_REFS=n/a
    MISSING=n/a
    EXTRA=n/a
    WARNINGS=n/a
    counts=$(for ((rep = 1; rep <= REPS; rep++)); do
        if grep -q "^images_ours $rep [0-9]" "$RUNS"; then wc -l <"$WORK/logs/images_ours.$rep.out"; fi
    done | sort -u)
    [ -n "$counts" ] || return 0
    if [ "$(wc -l <<<"$counts")" -gt 1 ]; then
        NOTES+=("The number of JSON lines differed between repetitions: $(paste -sd' ' <<<"$counts").")
    fi
    IMAGE_LINES=$(head -1 <<<"$counts")
    for ((rep = 1; rep <= REPS; rep++)); do
        if grep -q "^images_ours $rep [0-9]" "$RUNS"; then
            references <"$WORK/logs/images_ours.$rep.out" | sort -u >"$WORK/found.txt"
            break
        fi
    done
    IMAGE_REFS=$(wc -l <"$WORK/found.txt")
    MISSING=$(comm -23 "$WORK/expected.txt" "$WORK/found.txt" | wc -l)
    EXTRA=$(comm -13 "$WORK/expected.txt" "$WORK/found.txt" | wc -l)
    if [ "$MISSING" -gt 0 ]; then
        NOTES+=("Found alone but not in the whole context: $(comm -23 "$WORK/expected.txt" "$WORK/found.txt" | paste -sd' ').")
    fi
    if [ "$EXTRA" -gt 0 ]; then
        NOTES+=("Found in the whole context but by no source chart alone: $(comm -13 "$WORK/expected.txt" "$WORK/found.txt" | paste -sd' ').")
    fi
    # Warnings (a template that does not render, say) are part of the result: count them.
    WARNINGS=$(grep -c -i 'warn' "$WORK/logs/images_ours.$rep.err" || true)
    if [ "$WARNINGS" -gt 0 ]; then
        NOTES+=("\`delivery images\` wrote $WARNINGS warning line(s) on stderr (rep $rep); the first: $(grep -i -m1 'warn' "$WORK/logs/images_ours.$rep.err" | cut -c1-400)")
    fi
}

# discovery_mode: whether this build renders charts; rebuilt binaries from before in-process
# rendering only scan values, and their numbers are not comparable with those that render.
discovery_mode() {
    if "$BIN" images --help 2>/dev/null | grep -q -- '--chart-images'; then
        printf 'rendered in process (this build has `--chart-images`; default used)'
    else
        printf 'values scan only (this build has no `--chart-images`: it predates in-process rendering)'
    fi
}

# sources_table: one row per source chart: copies, size, and one copy's time and RSS alone.
sources_table() {
    local src n=${#SOURCES[@]} s copies files wall rss
    for ((s = 0; s < n; s++)); do
        src=${SOURCES[s]}
        copies=$(((CHARTS - s + n - 1) / n))
        files=$(find "$src" -type f | wc -l)
        read -r wall rss < <(awk -v p="$src" '$1 == p { print $2, $3 }' "$WORK/solo.txt")
        printf '| `%s` | %s %s | %s | %s | %s | %s | %s |\n' \
            "${src#"$(realpath "$CORPUS")"/}" "$(chart_field "$src/Chart.yaml" name)" \
            "$(chart_field "$src/Chart.yaml" version)" "$copies" "$files" \
            "$(find "$src" -type f -printf '%s\n' | awk '{ t += $1 } END { printf "%.0f", t / 1024 }')" \
            "$(awk -v w="$wall" 'BEGIN { printf "%.0f", 1000 * w }')" "$(kib2mib "$rss")"
    done
}

report() {
    local mem cpu_model wall rss_peak wall_verdict rss_verdict target_note=""
    mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    wall=$(median images_ours 3)
    rss_peak=$(stat_of images_ours 4 max)
    if [ "$CHARTS" -eq "$TARGET_CHARTS" ]; then
        wall_verdict=$(at_most "$wall" "$TARGET_WALL_S")
        rss_verdict=$(at_most "$(kib2mib "$rss_peak")" "$TARGET_RSS_MIB")
    else
        wall_verdict=n/a
        rss_verdict=n/a
        target_note=" (the targets are for $TARGET_CHARTS charts; this run had $CHARTS, so they are not judged)"
    fi

    cat <<EOF
# Image discovery benchmark: \`delivery images\` on $CHARTS charts

- date: $(date -u '+%Y-%m-%d %H:%M UTC')
- machine: $(nproc) CPUs, ${cpu_model:-unknown}; $mem RAM; kernel $(uname -r)
- tools: $("$BIN" --version 2>/dev/null | head -1); $(tar --version | head -1); gzip $(gzip --version | head -1 | awk '{ print $NF }')
- binary: \`$DELIVERY_BIN\` ($(ident "$BIN")); chart discovery: $(discovery_mode)
- method: $REPS repetition(s) of each command, alternating order, page cache warm; wall time and peak RSS from \`/usr/bin/time -f '%e %M'\`; median (min-max). Ratio = our time / baseline time, so lower is better for us.

## Context

\`FROM scratch\` + \`COPY charts charts\`; \`charts/\` holds $CHARTS charts, $((CHARTS - TGZ_CHARTS)) as directories and $TGZ_CHARTS as \`<name>-<version>.tgz\` (\`tar czf\` of the single \`<name>/\` directory, as \`helm package\` writes them): $CTX_FILES files, $CTX_DIRS directories, $(mib "$CTX_BYTES") MiB ($CTX_BYTES bytes) on disk; unpacked, $UNPACKED_FILES files and $(mib "$UNPACKED_BYTES") MiB. Copies of these real charts, in turn, each renamed (directory and Chart.yaml \`name:\`) to \`<name>-<index>\`. The last two columns are one copy
alone (directory form, one run, process start included): where the time goes.

| source chart | name, version | copies | files | KiB | alone: wall (ms) | alone: peak RSS (MiB) |
|---|---|---|---|---|---|---|
$(sources_table)

## Result

| metric | value |
|---|---|
| charts | $CHARTS |
| files in charts/ (on disk / unpacked) | $CTX_FILES / $UNPACKED_FILES |
| total size (on disk / unpacked) | $(mib "$CTX_BYTES") MiB / $(mib "$UNPACKED_BYTES") MiB |
| images found (JSON lines) | $IMAGE_LINES |
| warning lines on stderr | $WARNINGS |
| distinct references | $IMAGE_REFS (the source charts alone give $(wc -l <"$WORK/expected.txt"); missing $MISSING, extra $EXTRA) |
| wall time, median (min-max) | $(spread images_ours 3 same) s |
| peak RSS, median (min-max) | $(spread images_ours 4 kib2mib) MiB |
| time per chart (median) | $(per_chart "$wall") ms |
| CPU (median) | $(median images_ours 5 | tr -d %)% |

## Against reading the same tree

| command | wall (s) | peak RSS (MiB) | ratio ours/baseline | ms per chart |
|---|---|---|---|---|
| \`delivery images --json -f Kubefile\` (ours) | $(spread images_ours 3 same) | $(spread images_ours 4 kib2mib) | 1.00 | $(per_chart "$wall") |
$(baseline_row "\`tar -cf - charts \\| wc -c\` (read every byte: the I/O floor)" read_tar)
$(baseline_row "\`cat\` of every file and \`zcat\` of every .tgz \\| \`wc -c\` (every chart byte, unpacked)" read_cat)
$(baseline_row "\`tar -czf - charts \\| wc -c\` (read and gzip every byte: a CPU reference)" read_targz)

The floor rows show what only reading the charts costs; the rest of our time is discovery
itself (parsing Chart.yaml and values, rendering the templates). Peak RSS of the pipelines is
that of their largest process.

## Targets

$CHARTS charts in under $TARGET_WALL_S s and under $TARGET_RSS_MIB MiB peak RSS$target_note:

| target | measured | pass/fail |
|---|---|---|
| wall time (median) < $TARGET_WALL_S s | $wall s | $wall_verdict |
| peak RSS (max over reps) < $TARGET_RSS_MIB MiB | $(kib2mib "$rss_peak") MiB | $rss_verdict |

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

    trap cleanup EXIT
    trap 'exit 130' INT TERM
    rm -rf "$WORK"
    mkdir -p "$WORK/logs"
    : >"$RUNS"

    log "copying $CHARTS charts from ${#SOURCES[@]} sources in $CORPUS to $CTX"
    make_context
    expected_images

    warm_cache
    quiet_check "before the measurements"
    alternate images_ours read_tar read_cat read_targz
    quiet_check "after the measurements"
    image_facts

    local out
    out=$(report)
    printf '%s\n' "$out"
    if [ -n "${BENCH_REPORT:-}" ]; then printf '%s\n' "$out" >"$BENCH_REPORT"; fi

    [ ${#FAILED[@]} -eq 0 ] || exit 1
}

main
