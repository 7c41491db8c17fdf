#!/usr/bin/env bash
# Check what systemd/ installs, as CI does:
#  - `systemd-analyze verify` of the unit must be clean,
#  - its offline security exposure at most 2.0,
#  - systemd-sysusers must accept wsvisor.sysusers (into a scratch root),
#  - the shell scripts must parse.
# Needs a built target/debug/wsvisor (builds it when missing) that has
# `wsvisor man`.
set -euo pipefail
cd "$(dirname "$0")/.."

unit=systemd/wsvisor.service
binary="${CARGO_TARGET_DIR:-$PWD/target}/debug/wsvisor"
[ -x "$binary" ] || cargo build --quiet --bin wsvisor

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# verify wants the ExecStart/ExecReload binary to exist: check a copy that
# points at the one just built; every key and value is checked all the same.
sed "s#/usr/bin/wsvisor#$binary#g" "$unit" > "$scratch/wsvisor.service"
# verify also looks up the unit's Documentation= man pages: wsvisor(1) is
# generated from the CLI, as the package does (a trailing colon in MANPATH
# keeps the system's pages, such as systemd.exec(5)).
mkdir -p "$scratch/man/man1"
"$binary" man --dir "$scratch/man/man1"
if ! out=$(MANPATH="$scratch/man:" systemd-analyze verify "$scratch/wsvisor.service" 2>&1) || [ -n "$out" ]; then
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

# systemd-sysusers opens file arguments below --root, so feed it on stdin.
root="$scratch/sysroot"
mkdir -p "$root/etc"
if ! out=$(systemd-sysusers --root="$root" - < systemd/wsvisor.sysusers 2>&1); then
    echo "systemd-sysusers rejects systemd/wsvisor.sysusers:"
    echo "$out"
    exit 1
fi
if ! grep -q '^wsvisor:x:[0-9]*:[0-9]*:[^:]*:/:/usr/sbin/nologin$' "$root/etc/passwd" \
    || ! grep -q '^wsvisor:x:[0-9]*:$' "$root/etc/group"; then
    echo "systemd-sysusers did not create the wsvisor user and group:"
    cat "$root/etc/passwd" "$root/etc/group"
    exit 1
fi
echo "systemd-sysusers: creates $(grep '^wsvisor:' "$root/etc/passwd")"

for script in systemd/*.sh systemd/debian/post* systemd/debian/pre* scripts/*.sh; do
    [ -f "$script" ] || continue
    case $(head -1 "$script") in
        *bash*) bash -n "$script" ;;
        *) sh -n "$script" ;;
    esac
done
echo "shell scripts parse"
