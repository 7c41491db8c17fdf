#!/usr/bin/env bash
# The link order of the daemon's code: link/code-order.txt, which build.rs
# hands to the linker (lld's --symbol-ordering-file) in release builds.
#
#   scripts/code-order.sh            profile the daemon, rewrite the list
#   scripts/code-order.sh --check [BIN]   how much of the list BIN (the last
#       release build) has, and whether it was linked in that order (exit 1
#       when its listed functions are scattered)
#
# Why: the kernel maps a 64 KiB block of a program around each code page it
# first touches, so the daemon's resident code is set by how scattered the
# functions it runs are, not by how many there are. At 1,000 idle sessions
# it runs about 1.6 MB of its 13 MB of code, and unordered that cost 5.2 MB
# of resident text; listed first, together, 2.0 MB (issue 14).
#
# How: the daemon runs under callgrind (it counts every function executed,
# and is on every machine kind) through a workload that touches what a
# daemon in service does: start-up from a config of 60 sessions, hellos and
# MCP from loopback servers, server Pings on half of the sessions and its
# own on the other half, a server killed and started again (losses,
# backoff, reconnects), the control commands operators and programs use,
# a reload and SIGTERM. Two builds are profiled, as their symbol names
# differ (the features the benchmarks' dev-dependencies add change the
# dependencies' hashes): `cargo build --release --bin wsvisor` (what is
# installed and packaged) and the benchmarks' (`cargo bench`).
#
# When: after a toolchain or dependency update, or a change to the code an
# idle daemon runs. A stale list costs memory, never correctness: the linker
# ignores names it does not find, and `--check` says how many it still finds.
# Takes about 5 minutes, most of it two release builds. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

LIST=link/code-order.txt
TARGET=${CARGO_TARGET_DIR:-target}

if [[ ${1:-} == --check ]]; then
    bin=${2:-$TARGET/release/wsvisor}
    # A report on the list, and a failure when the binary was not linked in
    # its order at all: the functions it has are then scattered.
    python3 - "$LIST" <(nm --defined-only -S "$bin") "$bin" <<'EOF'
import sys
listed, symbols, binary = sys.argv[1], sys.argv[2], sys.argv[3]
extent = {}
for line in open(symbols):
    parts = line.split()
    if len(parts) == 4 and parts[2] in "tTwW":
        extent[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
builds, current = {}, None
for line in open(listed):
    line = line.strip()
    if line.startswith("# build: "):
        current = line[len("# build: "):]
        builds[current] = []
    elif line and not line.startswith("#") and current is not None:
        builds[current].append(line)
build, names = max(builds.items(), key=lambda kv: sum(n in extent for n in kv[1]))
found = [extent[n] for n in names if n in extent]
share = len(found) / max(len(names), 1)
size = sum(length for _, length in found)
span = max(at + length for at, length in found) - min(at for at, _ in found) if found else 0
print(f"code order: {binary} has {len(found)} of the {len(names)} functions listed for `{build}` ({share:.0%}):"
      f" {size / 2**20:.2f} MiB of code within {span / 2**20:.2f} MiB")
if share < 0.9:
    print("code order: the list is stale for this build; scripts/code-order.sh rewrites it")
if span > 1.5 * size:
    print("code order: the listed functions are scattered: the binary was not linked in the list's order (build.rs)")
    sys.exit(1)
EOF
    exit
fi

command -v valgrind >/dev/null || { echo "code-order: needs valgrind" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet -p wsvisor-loopback --example serve
cp "$TARGET/release/examples/serve" "$work/serve"
cargo build --release --quiet --bin wsvisor
cp "$TARGET/release/wsvisor" "$work/wsvisor-release"
cargo bench --quiet --bench independent --bench wsvisor --no-run 2>/dev/null
cp "$TARGET/release/wsvisor" "$work/wsvisor-bench"
ctl() { "$work/wsvisor-release" ctl --socket "$work/control.sock" "$@"; }

# A loopback server on PORT (0: any): its URLs land in $work/NAME.out, its pid in $server_pid.
start_server() {
    local name=$1 port=$2
    shift 2
    "$work/serve" --port "$port" --ota-port 0 --idle-close 600 "$@" >"$work/$name.out" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    for _ in $(seq 100); do
        grep -q '^ota_url' "$work/$name.out" 2>/dev/null && return
        sleep 0.1
    done
    echo "code-order: server $name did not start" >&2
    exit 1
}
url_of() { sed -n "s/^$2 = \"\(.*\)\"/\1/p" "$work/$1.out"; }

# Wait (bounded) until COUNT sessions are ready.
wait_ready() {
    for _ in $(seq 240); do
        [[ $(ctl --json sessions 2>/dev/null | grep -o '"state":"ready"' | wc -l) -ge $1 ]] && return
        sleep 0.5
    done
    echo "code-order: sessions not ready in 120 s" >&2
    exit 1
}

# Run one build through the workload; the functions it ran on stdout.
profile() {
    local bin=$1
    start_server pinging 0 --ping-interval 2
    local pinging_pid=$server_pid
    start_server quiet 0
    local quiet_pid=$server_pid
    local quiet_url
    quiet_url=$(url_of quiet url)
    {
        printf '[daemon]\ncontrol_socket = "%s"\nstate_dir = "%s"\nlog_level = "info"\n\n' "$work/control.sock" "$work/state"
        printf '[defaults]\nping_interval = "2s"\nping_timeout = "2s"\n\n'
        printf '[defaults.reconnect]\ninitial_delay = "200ms"\nmax_delay = "1s"\n\n'
        for i in $(seq 0 59); do
            local url
            url=$(url_of "$([[ $((i % 2)) == 0 ]] && echo pinging || echo quiet)" url)
            printf '[[session]]\nname = "s%d"\nurl = "%s"\ntoken = "t"\n\n' "$i" "$url"
        done
        printf '[[session]]\nname = "ota"\nota_url = "%s"\n\n' "$(url_of pinging ota_url)"
    } >"$work/config.toml"
    rm -rf "$work/state" "$work/control.sock"
    valgrind --tool=callgrind --demangle=no --compress-strings=no --dump-instr=no \
        --callgrind-out-file="$work/callgrind.out" \
        "$bin" run --config "$work/config.toml" >"$work/daemon.log" 2>&1 &
    local daemon=$!
    pids+=("$daemon")
    wait_ready 61
    sleep 10
    ctl status >/dev/null
    ctl sessions >/dev/null
    ctl session s0 >/dev/null
    ctl send s0 '{"type":"listen","state":"detect","text":"hello"}' >/dev/null
    ctl listen s1 detect --text hello >/dev/null
    ctl audio s0 --data AAAAAAAAAAAAAAAAAAAAAA== >/dev/null
    timeout 3 "$work/wsvisor-release" ctl --socket "$work/control.sock" subscribe >/dev/null || true
    ctl tools s0 >/dev/null || true
    ctl metrics >/dev/null
    ctl reconnect s2 >/dev/null
    ctl disconnect s3 >/dev/null
    ctl connect s3 >/dev/null
    wait_ready 61
    # A server lost and back on its port: losses, backoff, reconnects.
    local quiet_port=${quiet_url#ws://127.0.0.1:}
    quiet_port=${quiet_port%%/*}
    kill "$quiet_pid"
    wait "$quiet_pid" 2>/dev/null || true
    sleep 3
    start_server quiet "$quiet_port"
    quiet_pid=$server_pid
    wait_ready 61
    ctl reload >/dev/null
    sleep 2
    kill -TERM "$daemon"
    wait "$daemon" 2>/dev/null || true
    kill "$pinging_pid" "$quiet_pid"
    wait "$pinging_pid" "$quiet_pid" 2>/dev/null || true
    python3 - "$work/callgrind.out" "$bin" <<'EOF'
import re, sys
out, binary = sys.argv[1], sys.argv[2]
ran, obj = set(), None
for line in open(out):
    if line.startswith("ob="):
        obj = line[3:].strip()
    elif line.startswith("fn=") and obj == binary:
        name = re.sub(r"'\d+$", "", line[3:].strip())  # callgrind's recursion marks
        if not name.startswith(("0x", "(")):
            ran.add(name)
print("\n".join(sorted(ran)))
EOF
}

profile "$work/wsvisor-release" >"$work/release.txt"
profile "$work/wsvisor-bench" >"$work/bench.txt"
{
    echo "# The functions the daemon runs, linked first and together (build.rs)."
    echo "# Written by scripts/code-order.sh from callgrind profiles; do not edit."
    echo "# rustc: $(rustc -V)"
    echo "# build: cargo build --release --bin wsvisor"
    cat "$work/release.txt"
    echo "# build: cargo bench"
    cat "$work/bench.txt"
} >"$LIST"
echo "code order: $(wc -l <"$work/release.txt") functions (release), $(wc -l <"$work/bench.txt") (bench) in $LIST" >&2
