#!/usr/bin/env bash
# Fuzzes the readers of untrusted input with libFuzzer and AddressSanitizer: the safetensors
# loaders (flow model, classifier, training state, LoRA adapters), the YAML config decoder and --set, and the
# HDF5 triplet reader and resume path (Sources/reflow-fuzz). CI runs it after the tests.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#   bash scripts/fuzz.sh ci                                    (what CI runs, see below)
#
# `ci` bounds the run by work, not by the clock: libFuzzer's seed is fixed and each target stops
# after a fixed number of inputs (about a minute each on a 2-core CI machine; 3 minutes at most).
# The walk starts alike each time but is not bit-for-bit repeatable (two runs here differed in the
# new inputs they kept).
# Seeds: Tests/Fuzz/seeds/<target> (made by `reflow-fuzz seeds DIR`) and experiments/*.yaml.
# The growing corpus stays in .build-fuzz/corpus; a crash, leak, timeout or out-of-memory input
# is saved as fuzz-crashes/<target>-* and the script fails. Replay one without sanitizers:
#   swift build -c release --product reflow-fuzz && .build/release/reflow-fuzz <target> FILE
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
ci=0
if [ "$secs" = ci ]; then ci=1; secs=180; fi
declare -A ci_runs=([safetensors]=8000 [config]=60000 [triplets]=15000)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors config triplets)

# lld: gold crashes on this link (internal error in format_file_lineno).
swift build -c release --scratch-path .build-fuzz --product reflow-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -use-ld=lld 2>&1 \
    | grep -v "Cannot export local symbol" | tail -3
bin=.build-fuzz/release/reflow-fuzz
mkdir -p fuzz-crashes
for t in "${targets[@]}"; do
    seeds=(Tests/Fuzz/seeds/$t)
    [ "$t" = config ] && seeds+=(experiments)
    mkdir -p .build-fuzz/corpus/$t
    extra=()
    if [ $ci = 1 ]; then
        rm -rf .build-fuzz/corpus/$t && mkdir -p .build-fuzz/corpus/$t
        extra=(-seed=1 -runs=${ci_runs[$t]})
        echo "fuzzing $t: ${ci_runs[$t]} inputs from libFuzzer seed 1 (at most ${secs}s; seeds: ${seeds[*]})"
    else
        echo "fuzzing $t for ${secs}s (seeds: ${seeds[*]})"
    fi
    # -timeout: an input that takes 10 s is a hang; -rss_limit_mb: a header that makes us
    # hold gigabytes is a bug even when the memory is there. allocator_may_return_null: a
    # malloc that cannot succeed (libhdf5 asks for 2^60 bytes on a damaged cache entry) returns
    # NULL as glibc's does, and libhdf5 turns that into an error, instead of ASan aborting.
    # detect_leaks=0: Foundation's Data(contentsOf:) leaks 4 KB reading an empty file (not ours;
    # a real leak per input would still end in the RSS limit). Tests/Fuzz/asan.supp: libhdf5's
    # own over-reads on damaged object headers (see the file).
    ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:suppressions=$PWD/Tests/Fuzz/asan.supp REFLOW_FUZZ_TARGET=$t "$bin" .build-fuzz/corpus/$t "${seeds[@]}" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=3072 -detect_leaks=0 \
        -artifact_prefix="fuzz-crashes/$t-" -print_final_stats=1 "${extra[@]}" 2> ".build-fuzz/$t.log" \
        || { tail -60 ".build-fuzz/$t.log"; echo "fuzz target $t FAILED; input saved under fuzz-crashes/"; exit 1; }
    grep -E "^stat::number_of_executed_units|^stat::new_units_added|Done [0-9]+ runs" ".build-fuzz/$t.log" | tr '\n' ' '
    echo
done
echo "fuzzing done: ${#targets[@]} target(s), no crash, hang or runaway allocation"
