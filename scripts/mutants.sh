#!/usr/bin/env bash
# Mutation testing of wsvisor's core decisions (docs/mutants.md): every
# mutant cargo-mutants makes of the files listed below must be caught by
# the unit tests (how they run and the accepted equivalent mutants are in
# .cargo/mutants.toml). Exits 0 when each one is, 1 otherwise
# (the survivors are listed, and kept in target/mutants/mutants.out/).
#
#   scripts/mutants.sh                                 # the whole scoped set
#   scripts/mutants.sh --core                          # the core decisions only (CI)
#   scripts/mutants.sh --file actors/src/json.rs       # one file
#   scripts/mutants.sh --list                          # what would be tested
#
# Extra arguments go to `cargo mutants`. The mutants are made in this tree
# (--in-place, so target/ is reused and each mutant costs an incremental
# build, about 2 s): do not edit or build in it while this runs. Each
# mutated file is restored after its mutant; an interrupted run leaves at
# most one, marked `/* ~ changed by cargo-mutants ~ */` (git diff shows it).
set -euo pipefail
cd "$(dirname "$0")/.."

# The core decisions (issue 16's list): what CI runs.
core=(
    actors/src/policy/mod.rs
    actors/src/policy/backoff.rs
    actors/src/heartbeat.rs
    actors/src/connection/frames.rs
    actors/src/supervisor/queue.rs
    actors/src/loss.rs
    src/control_server/access.rs
    src/protocol/parse.rs
    src/demo/verdict.rs
)
# The whole set adds the byte budgets, the escaping of peer strings and
# the session states: about twice as many mutants.
whole=(
    "${core[@]}"
    actors/src/connection/codec.rs
    actors/src/connection/outbox.rs
    actors/src/supervisor/run.rs
    actors/src/ratelimit.rs
    actors/src/logsafe.rs
    actors/src/json.rs
    actors/src/subscription.rs
)
files=("${whole[@]}")
args=()
for arg in "$@"; do
    case "$arg" in
        --core) files=("${core[@]}") ;;
        # Files named by the caller replace the set.
        --file | --file=*) files=() ; args+=("$arg") ;;
        *) args+=("$arg") ;;
    esac
done
for file in "${files[@]}"; do
    args+=(--file "$file")
done

version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -qx "cargo-mutants $version"; then
    echo "installing cargo-mutants $version"
    cargo install cargo-mutants --locked --version "$version"
fi

out=target/mutants
if [[ " ${args[*]} " == *" --list "* ]]; then
    exec cargo mutants --workspace "${args[@]}"
fi
rc=0
# The unmutated unit tests first, built exactly as cargo-mutants builds
# them (one package at a time: features unify per package), so its first
# mutant does not pay for the build; hence --baseline skip.
for package in wsvisor-actors wsvisor; do
    cargo test --package "$package" --all-features --lib --quiet
done
cargo mutants --workspace --in-place --baseline skip --timeout 30 --build-timeout 300 \
    --output "$out" "${args[@]}" || rc=$?

# 0: every mutant caught; 2: some were missed; 3: some timed out (a
# timeout is a catch: the tests noticed, if only by never ending).
# cargo-mutants reports 3 over 2, so the missed list decides.
missed="$out/mutants.out/missed.txt"
case "$rc" in
    0 | 3)
        if [ -s "$missed" ]; then
            rc=2
        else
            rc=0
        fi
        ;;
esac
if [ "$rc" -eq 2 ]; then
    echo
    echo "Mutants no test caught (add a test that fails on each, or, if it"
    echo "changes nothing a caller can see, exclude it in .cargo/mutants.toml"
    echo "and say why in docs/mutants.md):"
    sed 's/^/  /' "$missed"
fi
if [ "$rc" -ne 0 ]; then
    exit 1
fi
