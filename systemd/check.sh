#!/usr/bin/env bash
# Check the unit as CI does: `systemd-analyze verify` must be clean and the
# offline security exposure at most 2.0. Needs a built target/debug/wsvisor.
set -euo pipefail
cd "$(dirname "$0")/.."

unit=systemd/wsvisor.service
binary="$PWD/target/debug/wsvisor"
[ -x "$binary" ] || cargo build --quiet

# verify wants the ExecStart binary to exist: check a copy that points at
# the one just built; every key and value is checked all the same.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
sed "s#/usr/local/bin/wsvisor#$binary#g" "$unit" > "$scratch/wsvisor.service"
if ! out=$(systemd-analyze verify "$scratch/wsvisor.service" 2>&1) || [ -n "$out" ]; then
    echo "systemd-analyze verify $unit is not clean:"
    echo "$out"
    exit 1
fi
echo "systemd-analyze verify: clean ($(systemd-analyze --version | head -1))"

line=$(systemd-analyze security --offline=true "$unit" | grep 'Overall exposure level')
score=$(echo "$line" | grep -oE '[0-9]+\.[0-9]+' | head -1)
echo "$line"
if ! awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
    echo "security exposure $score is above 2.0"
    exit 1
fi
