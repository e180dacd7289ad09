#!/bin/sh
# Builds hafen's cargo-afl fuzz targets and runs each for a while (seconds, default 60), one
# after the other; then prints per target the execs, the corpus ("paths") found, crashes and
# hangs. Exits 1 if any target found a crash. Not part of tests/run (see README.md).
#
#   sh tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-afl (`cargo install cargo-afl`, then `cargo afl config --build` once).
# CARGO_TARGET_DIR is honoured (default: tests/fuzz/target). Findings go to tests/fuzz/out/<target>/
# (AFL's output directory, started afresh on every run; crashes under default/crashes/).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-stack_file daemon_config api_request repo_files}
target_dir=${CARGO_TARGET_DIR:-$here/target}
export CARGO_TARGET_DIR="$target_dir"

# Headless, on a shared machine: no UI, no CPU binding, no complaints about the CPU governor or
# about a core_pattern that pipes crashes to a handler (crashes are still caught by AFL).
export AFL_SKIP_CPUFREQ=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1
export AFL_NO_AFFINITY=1

echo "== building (cargo afl build --release) =="
cargo afl build --release --locked

for t in $targets; do
    echo "== fuzzing $t for ${secs}s =="
    rm -rf "out/$t"
    mkdir -p "out/$t"
    if ! cargo afl fuzz -V "$secs" -i "seeds/$t" -o "out/$t" "$target_dir/release/$t" >"out/$t.log" 2>&1; then
        echo "afl-fuzz for $t stopped with an error; the end of out/$t.log:"
        tail -n 20 "out/$t.log"
    fi
done

stat() { # stat FILE KEY: a value from AFL's fuzzer_stats, or "?"
    v=$(sed -n "s/^$2 *: *//p" "$1" 2>/dev/null | head -n 1)
    echo "${v:-?}"
}
count() { # files AFL saved in a directory (without its README.txt)
    if [ -d "$1" ]; then find "$1" -type f ! -name README.txt | wc -l | tr -d ' '; else echo 0; fi
}

echo
printf '%-14s %12s %10s %8s %8s %6s\n' target execs execs/s paths crashes hangs
crashed=0
for t in $targets; do
    s="out/$t/default/fuzzer_stats"
    c=$(count "out/$t/default/crashes")
    h=$(count "out/$t/default/hangs")
    printf '%-14s %12s %10s %8s %8s %6s\n' "$t" "$(stat "$s" execs_done)" "$(stat "$s" execs_per_sec)" \
        "$(stat "$s" corpus_count)" "$c" "$h"
    if [ "$c" -gt 0 ]; then
        crashed=1
        echo "  crashes of $t: $here/out/$t/default/crashes/ (reproduce: $target_dir/release/$t < FILE)"
    fi
done
exit "$crashed"
