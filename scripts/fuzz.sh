#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer + AddressSanitizer) over what reads
# untrusted input: the control request parser, the config parser, the
# xiaozhi text decoder, and the inbound WebSocket path (awc's codec, the
# Connection's FrameAssembler, the decoder). Targets are in fuzz/.
#
#   scripts/fuzz.sh                 every target for 30 s (what CI runs)
#   scripts/fuzz.sh 600             every target for 10 min
#   scripts/fuzz.sh 600 ws_frames   one target
#
# cargo-fuzz needs nightly-only flags; this uses the stable toolchain with
# RUSTC_BOOTSTRAP=1, and installs cargo-fuzz from crates.io when missing.
# "No unbounded allocation" is enforced by libFuzzer: any single allocation
# over 64 MiB (-malloc_limit_mb) or a process over 2 GiB (-rss_limit_mb,
# AddressSanitizer's quarantine included) is a failure, like a panic.
# Inputs are up to 64 KiB. A failing input is saved under
# fuzz/artifacts/TARGET/; replay it with `cargo fuzz run TARGET FILE`.
# The corpus grows in fuzz/corpus/TARGET/ (not in git); fuzz/seeds/ holds
# the seeds.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-30}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(control_request config server_text ws_frames)
CARGO_FUZZ_VERSION=0.13.2

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --quiet --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

echo "fuzz: building the targets (release, AddressSanitizer)"
mkdir -p fuzz/target
if ! cargo fuzz build >fuzz/target/build.log 2>&1; then
    tail -40 fuzz/target/build.log
    echo "fuzz: the targets do not build"
    exit 1
fi

failed=()
for target in "${TARGETS[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    log="fuzz/target/$target.log"
    if cargo fuzz run "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 \
        -malloc_limit_mb=64 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1; then
        runs=$(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')
        cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo '?')
        echo "fuzz: $target: $runs runs in ${SECONDS_PER_TARGET}s, coverage $cov edges, no failure"
    else
        echo "fuzz: $target FAILED; the end of its log ($log):"
        tail -40 "$log"
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failures in: ${failed[*]}"
    exit 1
fi
