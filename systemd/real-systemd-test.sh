#!/usr/bin/env bash
# The shipped service under a real systemd: boots a minimal Debian bookworm
# with `systemd-nspawn --boot` (systemd as PID 1), installs the .deb that
# scripts/deb.sh builds, and checks with the real systemctl and journalctl
# what README.md promises about the service. Prints one line per check
# (ok / FAILED, seconds, why) and exits non-zero when any check failed.
#
#     sudo systemd/real-systemd-test.sh [--deb PATH] [--keep]
#
#   --deb PATH  install this package instead of building one
#   --keep      leave the machine running at the end (prints how to enter it)
#
# Needs root, debootstrap, systemd-nspawn (package systemd-container) and
# nsenter; installs the first two from Debian's archive when missing. The
# debootstrapped tree is kept in target/systemd-test/ and reused (about 90 s
# cold); each run boots it with --volatile=overlay, so the tree stays clean.
# The machine shares the host's network; the daemon only talks to a
# loopback server started inside it on 127.0.0.1.
#
# Everything is bounded: each command in the machine has a timeout, each
# wait a deadline, and the whole run WSVISOR_SYSTEMD_TEST_TIMEOUT seconds
# (default 1800, builds included). The machine is powered off and the
# nspawn process ended on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# ---------------------------------------------------------------- options
deb=""
keep=false
while [ $# -gt 0 ]; do
    case $1 in
        --deb) deb=$(realpath "$2"); shift 2 ;;
        --keep) keep=true; shift ;;
        *) echo "usage: $0 [--deb PATH] [--keep]" >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "real-systemd-test: needs root (systemd-nspawn boots a machine)" >&2
    exit 2
fi

# One deadline for everything: re-run under timeout(1), whose SIGTERM ends
# this script through the cleanup trap below.
budget=${WSVISOR_SYSTEMD_TEST_TIMEOUT:-1800}
if [ -z "${WSVISOR_SYSTEMD_TEST_INNER:-}" ]; then
    export WSVISOR_SYSTEMD_TEST_INNER=1
    args=()
    [ -n "$deb" ] && args+=(--deb "$deb")
    $keep && args+=(--keep)
    set +e
    timeout --kill-after=30 "$budget" "$0" "${args[@]}"
    rc=$?
    set -e
    [ $rc -eq 124 ] && echo "real-systemd-test: gave up after the global timeout of ${budget}s" >&2
    exit $rc
fi

t_start=$(date +%s)
log() { printf '[%4ds] %s\n' "$(( $(date +%s) - t_start ))" "$*" >&2; }

# ---------------------------------------------------------------- tools
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v nsenter >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} from Debian's archive"
    timeout 300 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------- the tree
suite=bookworm
mirror=${WSVISOR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
include=systemd,systemd-sysv,dbus
# A new key (suite, packages, this layout) builds a new tree; old ones stay
# until `rm -rf target/systemd-test`.
key=$(printf '%s %s %s v1' "$suite" "$include" "$mirror" | sha256sum | cut -c1-12)
cache=$repo/target/systemd-test
rootfs=$cache/$suite-$key
if [ -f "$rootfs/.wsvisor-complete" ]; then
    log "reusing the $suite tree $rootfs"
else
    log "debootstrap $suite into $rootfs (cold: about 90 s)"
    mkdir -p "$cache"
    rm -rf "$rootfs.partial"
    t0=$(date +%s)
    if ! timeout 900 debootstrap --variant=minbase --include="$include" "$suite" "$rootfs.partial" "$mirror" \
        > "$cache/debootstrap.log" 2>&1; then
        tail -20 "$cache/debootstrap.log" >&2
        echo "real-systemd-test: debootstrap failed (log: $cache/debootstrap.log)" >&2
        exit 1
    fi
    touch "$rootfs.partial/.wsvisor-complete"
    mv "$rootfs.partial" "$rootfs"
    log "debootstrap took $(( $(date +%s) - t0 ))s"
fi

# ---------------------------------------------------------------- what goes in
if [ -z "$deb" ]; then
    log "building the package (scripts/deb.sh)"
    deb=$(scripts/deb.sh | tail -1)
    deb=$(realpath "$deb")
fi
log "package: $deb"
log "building the loopback server (wsvisor-loopback example serve)"
cargo build --release --quiet -p wsvisor-loopback --example serve
serve_binary="${CARGO_TARGET_DIR:-$repo/target}/release/examples/serve"

# Read-only inside the machine at /mnt/wsvisor-test.
stage=$(mktemp -d "$cache/stage.XXXXXX")
cp "$deb" "$stage/wsvisor.deb"
cp "$serve_binary" "$stage/serve"
mkdir -p "$stage/src"
cp -r systemd config.toml "$stage/src/"

# ---------------------------------------------------------------- the machine
machine=wsvisor-test-$$
nspawn_pid=""
results=()
current_check=""
leader=""
boot_log=$cache/boot.log

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "${current_check:-}" ]; then
        # Interrupted (the global timeout) in the middle of a check.
        results+=("$(printf '%-44s %-6s %7s  %s' "$current_check" FAILED "-" "interrupted (global timeout?)")")
        echo
        echo "real-systemd-test was interrupted; the checks so far:"
        printf '%s\n' "${results[@]}"
    fi
    if $keep && [ -n "$leader" ] && kill -0 "$leader" 2>/dev/null; then
        echo "the machine is still running: nsenter --target $leader --all bash; stop it with: kill $nspawn_pid" >&2
        exit $rc
    fi
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        if [ -n "$leader" ]; then
            timeout 10 nsenter --target "$leader" --all systemctl poweroff --no-block >/dev/null 2>&1 || true
        fi
        for _ in $(seq 1 100); do
            kill -0 "$nspawn_pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$nspawn_pid" 2>/dev/null; then
            kill -TERM "$nspawn_pid" 2>/dev/null || true
            sleep 3
            kill -KILL "$nspawn_pid" 2>/dev/null || true
        fi
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    rm -rf "$stage"
    exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

log "booting $machine"
systemd-nspawn --quiet --directory="$rootfs" --volatile=overlay --boot \
    --register=no --keep-unit --machine="$machine" --console=read-only \
    --bind-ro="$stage:/mnt/wsvisor-test" \
    < /dev/null > "$boot_log" 2>&1 &
nspawn_pid=$!

# The machine's PID 1 is the child of nspawn that runs systemd (another,
# short-lived child comes first).
for _ in $(seq 1 150); do
    for stat in /proc/[0-9]*/stat; do
        # pid (comm) state ppid ...: comm has no spaces for these two.
        read -r pid comm _ ppid _ < "$stat" 2>/dev/null || continue
        [ "$ppid" = "$nspawn_pid" ] && [ "$comm" = "(systemd)" ] && leader=$pid
    done
    [ -n "$leader" ] && break
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$leader" ]; then
    tail -20 "$boot_log" >&2
    echo "real-systemd-test: systemd-nspawn did not start a machine (log: $boot_log)" >&2
    exit 1
fi

# Run a command inside the machine, with a clean environment and a timeout
# (first argument when it is a number of seconds; default 30).
in_machine() {
    local limit=30
    case $1 in (''|*[!0-9]*) ;; (*) limit=$1; shift ;; esac
    timeout --kill-after=5 "$limit" nsenter --target "$leader" --all \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# Until PID 1 listens, systemctl cannot connect; then "starting" until the
# boot is done.
boot_deadline=$(( $(date +%s) + 90 ))
while :; do
    state=$(in_machine 10 systemctl is-system-running 2>&1 || true)
    case $state in
        running|degraded) break ;;
    esac
    if [ "$(date +%s)" -ge "$boot_deadline" ] || ! kill -0 "$nspawn_pid" 2>/dev/null; then
        tail -20 "$boot_log" >&2
        echo "real-systemd-test: the machine did not boot: '$state' (log: $boot_log)" >&2
        exit 1
    fi
    sleep 0.5
done
log "booted: $state ($(in_machine systemctl --version | head -1))"

# ---------------------------------------------------------------- helpers
unit=wsvisor
socket=/run/wsvisor/control.sock
prop() { in_machine systemctl show -p "$1" --value "$unit"; }
# A point in time for journal_since: the machine shares the host's clock.
# (Not a cursor: journalctl 252 shows nothing for --after-cursor with -p.)
cursor() { date +@%s.%6N; }
journal_since() { in_machine journalctl -q -o cat --no-pager --since="$1" "${@:2}"; }
# Wait up to $1 seconds for "$2..." (a command, run locally) to succeed.
wait_until() {
    local limit=$1; shift
    local deadline=$(( $(date +%s) + limit ))
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.25
    done
}
prop_is() { [ "$(prop "$1")" = "$2" ]; }
fail() { why="$*"; return 1; }

# A config for the machine: the session(s) named after "$@" point at the
# loopback server; extra [daemon] lines come from $daemon_extra.
write_config() {
    {
        echo "[daemon]"
        echo "control_socket = \"$socket\""
        echo "socket_mode = \"0660\""
        printf '%s\n' "${daemon_extra:-}"
        echo "[defaults.reconnect]"
        echo "initial_delay = \"100ms\""
        echo "max_delay = \"1s\""
        printf '%s\n' "${reconnect_extra:-}"
        local n=0 name
        for name in "$@"; do
            n=$((n + 1))
            echo "[[session]]"
            echo "name = \"$name\""
            echo "url = \"${session_url:-$server_url}\""
            echo "token = \"test-token\""
            echo "device_id = \"aa:bb:cc:dd:ee:0$n\""
            echo "client_id = \"6f1c0b8e-0000-4000-8000-00000000000$n\""
        done
    } | in_machine sh -c 'cat > /tmp/config.new && install -m 0640 -o root -g wsvisor /tmp/config.new /etc/wsvisor/config.toml'
}
good_config() { daemon_extra="" reconnect_extra="" session_url="" write_config kitchen; }

failed=0
# WSVISOR_SYSTEMD_TEST_ONLY="reload stop": only these checks (and install),
# for working on one of them.
only=${WSVISOR_SYSTEMD_TEST_ONLY:-}
# Runs check function $2 as "$1"; one row of the table; its status.
run_check() {
    local name=$1 fn=$2 t0 ms outcome=ok
    why=""
    if [ -n "$only" ] && [ "$fn" != check_install ] && [[ " $only " != *" ${fn#check_} "* ]]; then
        return 0
    fi
    log "check: $name"
    t0=$(date +%s%3N)
    current_check=$name
    "$fn" || outcome=FAILED
    current_check=""
    ms=$(( $(date +%s%3N) - t0 ))
    results+=("$(printf '%-44s %-6s %4d.%ds  %s' "$name" "$outcome" $((ms / 1000)) $((ms % 1000 / 100)) "$why")")
    if [ $outcome = FAILED ]; then
        failed=$((failed + 1))
        log "FAILED: $name: $why"
        log "last lines of the wsvisor journal:"
        in_machine journalctl -q -u "$unit" -n 15 --no-pager -o short-monotonic >&2 || true
        return 1
    fi
}

# ---------------------------------------------------------------- checks

check_install() {
    in_machine 120 dpkg -i /mnt/wsvisor-test/wsvisor.deb > "$cache/dpkg.log" 2>&1 \
        || fail "dpkg -i failed: $(tail -3 "$cache/dpkg.log" | tr '\n' ' ')" || return
    in_machine getent passwd wsvisor | grep -q ':/usr/sbin/nologin$' || fail "no wsvisor system user" || return
    local modes
    modes=$(in_machine stat -c '%n %U:%G %a' /etc/wsvisor /etc/wsvisor/config.toml | tr '\n' ' ')
    [ "$modes" = "/etc/wsvisor root:wsvisor 750 /etc/wsvisor/config.toml root:wsvisor 640 " ] \
        || fail "modes: $modes" || return
    [ "$(in_machine systemctl is-enabled "$unit" 2>&1)" = disabled ] || fail "the package enabled the unit" || return
    [ "$(in_machine systemctl is-active "$unit" 2>&1)" = inactive ] || fail "the package started the unit" || return
    local verify
    verify=$(in_machine systemd-analyze verify --man=no /usr/lib/systemd/system/wsvisor.service 2>&1) || true
    [ -z "$verify" ] || fail "systemd-analyze verify: $verify" || return
    in_machine wsvisor check --config /etc/wsvisor/config.toml >/dev/null 2>&1 \
        || fail "the shipped example config does not pass wsvisor check" || return
    why="user, /etc/wsvisor root:wsvisor 750, config 640, unit installed, not enabled or started"
}

check_ready() {
    local mark
    mark=$(cursor)
    good_config
    in_machine 45 systemctl start "$unit" || fail "systemctl start failed" || return
    # start returned: systemd saw READY=1. The socket must answer now, with
    # no retry, and STATUS= must already be there (READY=1 carries it).
    local ping
    ping=$(in_machine 10 wsvisor ctl --socket "$socket" ping 2>&1) \
        || fail "ctl ping right after start: $ping" || return
    prop_is Type notify || fail "Type=$(prop Type)" || return
    prop_is ActiveState active || fail "ActiveState=$(prop ActiveState) after start" || return
    local status
    status=$(prop StatusText)
    [[ $status == *"sessions ready"* ]] || fail "StatusText='$status' right after start" || return
    # The package's directory modes match the unit's *DirectoryMode=.
    if journal_since "$mark" -u "$unit" | grep -q 'mode is different'; then
        fail "$(journal_since "$mark" -u "$unit" | grep -m1 'mode is different')"; return
    fi
    why="start returned after READY=1; socket answered at once; status '$status'"
}

check_status_text() {
    local shown=""
    status_line() {
        shown=$(in_machine systemctl status "$unit" --no-pager 2>&1 | sed -n 's/^ *Status: //p')
        [ "$shown" = '"1/1 sessions ready"' ]
    }
    wait_until 20 status_line || fail "systemctl status shows Status: ${shown:-nothing}" || return
    why="systemctl status: Status: $shown"
}

check_reload() {
    local mark before restarts
    restarts=$(prop NRestarts)
    before=$(prop MainPID)
    mark=$(cursor)
    daemon_extra="" reconnect_extra="" session_url="" write_config kitchen attic
    in_machine 45 systemctl reload "$unit" || fail "systemctl reload failed" || return
    # Right after reload returned, without waiting: the new session is there.
    in_machine 10 wsvisor ctl sessions 2>&1 | grep -q attic \
        || fail "attic missing from ctl sessions right after systemctl reload returned" || return
    [ "$(prop MainPID)" = "$before" ] || fail "reload restarted the daemon" || return
    [ "$(prop NRestarts)" = "$restarts" ] || fail "reload restarted the daemon" || return
    # The daemon's "reloaded" line is logged before the reload job finished.
    local lines
    lines=$(journal_since "$mark" 2>&1 | grep -n -e 'reloaded added' -e 'Reloaded ' || true)
    local applied finished
    applied=$(echo "$lines" | grep 'reloaded added' | head -1 | cut -d: -f1)
    finished=$(echo "$lines" | grep 'Reloaded ' | head -1 | cut -d: -f1)
    [ -n "$applied" ] && [ -n "$finished" ] && [ "$applied" -lt "$finished" ] \
        || fail "journal order: reload applied at line ${applied:-?}, systemd's Reloaded at ${finished:-?}" || return
    # A config that does not parse: reload fails, the old one stays.
    echo 'this is not toml' | in_machine sh -c 'cat >> /etc/wsvisor/config.toml'
    if in_machine 45 systemctl reload "$unit" 2>/dev/null; then
        fail "systemctl reload of a broken config succeeded"; return
    fi
    prop_is ActiveState active || fail "a failed reload left ActiveState=$(prop ActiveState)" || return
    in_machine 10 wsvisor ctl --socket "$socket" sessions 2>&1 | grep -q attic \
        || fail "a failed reload changed the sessions" || return
    good_config
    in_machine 45 systemctl reload "$unit" || fail "reload back to one session failed" || return
    why="ctl saw the new session as soon as reload returned; a broken config fails the reload"
}

# The documented way to let a user run `wsvisor ctl` (see
# /work/notes/systemd-access.md): make them a member of group wsvisor; the
# shipped config lets that group in with this [daemon] line.
nonroot_daemon_config='allowed_groups = ["wsvisor"]'

check_nonroot_ctl() {
    in_machine id alice >/dev/null 2>&1 || in_machine useradd --no-create-home --shell /bin/sh --groups wsvisor alice \
        || fail "useradd alice" || return
    # [daemon] settings take effect at a restart.
    local mark
    mark=$(cursor)
    daemon_extra=$nonroot_daemon_config reconnect_extra="" session_url="" write_config kitchen
    if ! in_machine 45 systemctl restart "$unit" 2>/dev/null; then
        fail "the daemon refuses [daemon] $nonroot_daemon_config: $(journal_since "$mark" -u "$unit" | grep -m1 'config.toml:')"
        good_config
        in_machine systemctl reset-failed "$unit" 2>/dev/null || true
        in_machine 45 systemctl start "$unit" || true
        return 1
    fi
    local out
    out=$(in_machine 10 setpriv --reuid=alice --regid=alice --init-groups --reset-env wsvisor ctl sessions 2>&1) \
        || fail "alice (group wsvisor): $(echo "$out" | head -2 | tr '\n' ' ')" || return
    echo "$out" | grep -q kitchen || fail "alice's ctl sessions lacks kitchen: $out" || return
    # Not every user: bob is in no group of the service.
    in_machine id bob >/dev/null 2>&1 || in_machine useradd --no-create-home --shell /bin/sh bob || fail "useradd bob" || return
    if in_machine 10 setpriv --reuid=bob --regid=bob --init-groups --reset-env wsvisor ctl sessions >/dev/null 2>&1; then
        fail "bob, in no group of the service, listed the sessions too"; return
    fi
    why="alice (group wsvisor) listed the sessions; bob was refused"
}

check_security() {
    local line score
    line=$(in_machine 60 systemd-analyze security "$unit" 2>&1 | grep 'Overall exposure level') \
        || fail "systemd-analyze security printed no score" || return
    score=$(echo "$line" | grep -oE '[0-9]+\.[0-9]+' | head -1)
    awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score > 2.0" || return
    why="live exposure $score"
}

check_watchdog() {
    local pid restarts mark
    pid=$(prop MainPID)
    restarts=$(prop NRestarts)
    mark=$(cursor)
    in_machine systemctl kill --kill-who=main --signal=SIGSTOP "$unit" || fail "cannot SIGSTOP" || return
    # The watchdog (30 s) kills it, Restart= brings it back after RestartSec (10 s).
    restarted() { [ "$(prop NRestarts)" -gt "$restarts" ] && prop_is ActiveState active; }
    wait_until 70 restarted || fail "no restart within 70 s (NRestarts=$(prop NRestarts), $(prop ActiveState))" || return
    [ "$(prop MainPID)" != "$pid" ] || fail "same MainPID after the restart" || return
    journal_since "$mark" -u "$unit" | grep -q 'Watchdog timeout' || fail "no 'Watchdog timeout' in the journal" || return
    why="stopped daemon killed on watchdog timeout and restarted (new pid)"
}

check_exit_75() {
    local restarts mark
    restarts=$(prop NRestarts)
    mark=$(cursor)
    # Nothing listens on port 9: the one session fails at once and gives up.
    daemon_extra='on_give_up = "exit"' reconnect_extra='max_attempts = 1' session_url="ws://127.0.0.1:9/" write_config kitchen
    in_machine 45 systemctl restart "$unit" || true
    exited() { journal_since "$mark" -u "$unit" | grep -q 'status=75'; }
    wait_until 20 exited || fail "no exit status 75 in the journal" || return
    restarted() { [ "$(prop NRestarts)" -gt "$restarts" ]; }
    wait_until 30 restarted || fail "not restarted after exit 75 (NRestarts=$(prop NRestarts))" || return
    in_machine 30 systemctl stop "$unit" || true
    good_config
    in_machine systemctl reset-failed "$unit" 2>/dev/null || true
    in_machine 45 systemctl start "$unit" || fail "start with the good config failed afterwards" || return
    why="exited 75, restarted by Restart=on-failure"
}

check_config_error() {
    local mark restarts
    mark=$(cursor)
    echo 'bogus_key = 1' | in_machine sh -c 'cat /etc/wsvisor/config.toml - > /tmp/bad && install -m 0640 -o root -g wsvisor /tmp/bad /etc/wsvisor/config.toml'
    if in_machine 45 systemctl restart "$unit" 2>/dev/null; then
        fail "systemctl restart with a bad config succeeded"; return
    fi
    restarts=$(prop NRestarts)
    [ "$(prop ExecMainStatus)" = 2 ] || fail "exit status $(prop ExecMainStatus), not 2" || return
    # Longer than RestartSec=10s: a restart loop would have begun.
    sleep 12
    [ "$(prop NRestarts)" = "$restarts" ] || fail "restarted after exit 2 (NRestarts $restarts -> $(prop NRestarts))" || return
    prop_is ActiveState failed || fail "ActiveState=$(prop ActiveState), not failed" || return
    local errors reason
    errors=$(journal_since "$mark" -u "$unit" -p err)
    if ! echo "$errors" | grep -q 'config.toml:[0-9]'; then
        reason=$(journal_since "$mark" -u "$unit" -o verbose | grep -B30 'MESSAGE=.*config.toml:[0-9]' | grep -o 'PRIORITY=[0-9]' | tail -1)
        fail "exit 2 and no restart, but journalctl -p err lacks the reason (logged with ${reason:-no priority found}); it shows: $(echo "$errors" | head -2 | tr '\n' ' ')"
        return
    fi
    why="exit 2, no restart, -p err: $(echo "$errors" | grep 'config.toml:' | head -1 | cut -c1-70)"
}

check_stop() {
    good_config
    in_machine systemctl reset-failed "$unit" 2>/dev/null || true
    in_machine 45 systemctl start "$unit" || fail "start failed" || return
    wait_until 20 prop_is StatusText "1/1 sessions ready" || fail "not ready before stop: $(prop StatusText)" || return
    local mark t0 t1
    mark=$(cursor)
    t0=$(date +%s%N)
    in_machine 30 systemctl stop "$unit" || fail "systemctl stop failed" || return
    t1=$(date +%s%N)
    prop_is ActiveState inactive || fail "ActiveState=$(prop ActiveState) after stop" || return
    prop_is Result success || fail "Result=$(prop Result) after stop" || return
    [ "$(prop ExecMainStatus)" = 0 ] || fail "exit status $(prop ExecMainStatus) after stop" || return
    local journal
    journal=$(journal_since "$mark" -u "$unit")
    echo "$journal" | grep -q 'stopped' || fail "no 'stopped' line from the daemon" || return
    if echo "$journal" | grep -qi -e 'SIGKILL' -e 'timed out'; then
        fail "stop needed a kill: $(echo "$journal" | grep -i -e SIGKILL -e 'timed out' | head -1)"; return
    fi
    why="exit 0 in $(( (t1 - t0) / 1000000 )) ms, no kill"
}

check_install_sh() {
    # The other path: install.sh (for distributions without the package),
    # twice, on top of the package's user and config.
    local out
    out=$(in_machine 60 sh /mnt/wsvisor-test/src/systemd/install.sh /usr/bin/wsvisor 2>&1) \
        || fail "first run: $(echo "$out" | tail -2 | tr '\n' ' ')" || return
    out=$(in_machine 60 sh /mnt/wsvisor-test/src/systemd/install.sh /usr/bin/wsvisor 2>&1) \
        || fail "second run: $(echo "$out" | tail -2 | tr '\n' ' ')" || return
    in_machine grep -q '^ExecStart=/usr/local/bin/wsvisor ' /etc/systemd/system/wsvisor.service \
        || fail "the installed unit does not run /usr/local/bin/wsvisor" || return
    local modes
    modes=$(in_machine stat -c '%U:%G %a' /etc/wsvisor | tr '\n' ' ')
    [ "$modes" = "root:wsvisor 750 " ] || fail "/etc/wsvisor is $modes" || return
    in_machine 45 systemctl start "$unit" || fail "start after install.sh failed" || return
    [ "$(prop ExecMainPID)" -gt 0 ] && in_machine 10 wsvisor ctl --socket "$socket" ping >/dev/null 2>&1 \
        || fail "not answering after install.sh" || return
    in_machine 30 systemctl stop "$unit" || true
    in_machine rm -f /etc/systemd/system/wsvisor.service /usr/local/bin/wsvisor
    in_machine systemctl daemon-reload || true
    why="ran twice cleanly; the service starts from /usr/local/bin"
}

# ---------------------------------------------------------------- the run

# The loopback xiaozhi server, as a unit of its own inside the machine.
in_machine systemd-run --quiet --unit=loopback-serve --property=StandardOutput=file:/run/loopback.url \
    /mnt/wsvisor-test/serve
server_url=""
# serve prints TOML lines (`url = "ws://…"`, `ota_url = "…"`).
read_url() {
    server_url=$(in_machine cat /run/loopback.url 2>/dev/null | sed -n 's/^url = "\(.*\)"$/\1/p' | head -1)
    [ -n "$server_url" ]
}
wait_until 15 read_url || { echo "real-systemd-test: the loopback server printed no URL" >&2; exit 1; }
log "loopback server: $server_url"

if ! run_check "package installs (dpkg -i)" check_install; then
    echo "real-systemd-test: the package did not install; nothing else can be checked" >&2
else
    run_check "active only after READY=1" check_ready || true
    run_check "STATUS= in systemctl status" check_status_text || true
    run_check "systemctl reload returns once applied" check_reload || true
    run_check "non-root user (group wsvisor) runs ctl" check_nonroot_ctl || true
    run_check "systemd-analyze security <= 2.0 (live)" check_security || true
    run_check "SIGSTOP -> watchdog kill -> restart" check_watchdog || true
    run_check "exit 75 -> restart" check_exit_75 || true
    run_check "config error -> exit 2, no restart, -p err" check_config_error || true
    run_check "systemctl stop is clean" check_stop || true
    run_check "install.sh twice, then start" check_install_sh || true
fi

total=$(( $(date +%s) - t_start ))
echo
echo "real systemd ($(in_machine systemctl --version | head -1)), package $(basename "$deb"), ${total}s in all:"
printf '%s\n' "${results[@]}"
echo "$(( ${#results[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
