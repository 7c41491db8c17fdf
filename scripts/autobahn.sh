#!/usr/bin/env bash
# WebSocket conformance: the Autobahn|Testsuite fuzzing server against
# wsvisor's conformance client (actors/examples/autobahn_client.rs, the
# Connection's own frame handling in echo mode), cases 1-7 and 9 (12-13
# test compression, which wsvisor does not negotiate).
#
#   scripts/autobahn.sh                 install (once) and run; exit 1 on any failed case
#   scripts/autobahn.sh --find-python   print the Python 2.7 it would use, or exit 1
#
# The suite is Python 2.7 only. It is installed with that interpreter's pip
# into target/autobahn/site (pip --target, then site.addsitedir so its zope
# namespace package loads). The interpreter is $AUTOBAHN_PYTHON, else
# pyenv's 2.7.x, else python2.7 on PATH. The server listens on 127.0.0.1
# only; reports land in target/autobahn/reports/clients/index.html.
# A case passes when its result is OK, NON-STRICT or INFORMATIONAL.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE_VERSION=25.10.1
# AUTOBAHN_CASES narrows the run, e.g. AUTOBAHN_CASES='"3.*", "7.5.1"'.
CASES=${AUTOBAHN_CASES:-'"1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*"'}
AGENT=wsvisor
WORK=target/autobahn

find_python() {
    local candidates=()
    [ -n "${AUTOBAHN_PYTHON:-}" ] && candidates+=("$AUTOBAHN_PYTHON")
    if command -v pyenv >/dev/null 2>&1; then
        local version
        for version in $(pyenv versions --bare 2>/dev/null | grep -E '^2\.7(\.[0-9]+)?$' | sort -rV); do
            candidates+=("$(pyenv root)/versions/$version/bin/python")
        done
    fi
    candidates+=(python2.7)
    local python
    for python in "${candidates[@]}"; do
        if "$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' >/dev/null 2>&1; then
            command -v "$python"
            return 0
        fi
    done
    return 1
}

if [ "${1:-}" = "--find-python" ]; then
    find_python
    exit
fi

PYTHON=$(find_python) || {
    echo "autobahn: no Python 2.7 found (set AUTOBAHN_PYTHON, or install 2.7 with pyenv); the suite needs it" >&2
    exit 1
}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
SITE="$WORK/site"

if [ ! -f "$SITE/.installed-$SUITE_VERSION" ]; then
    echo "autobahn: installing autobahntestsuite $SUITE_VERSION with $PYTHON into $SITE"
    rm -rf "$SITE"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --target "$SITE" "autobahntestsuite==$SUITE_VERSION"
    touch "$SITE/.installed-$SUITE_VERSION"
fi

echo "autobahn: building the conformance client"
cargo build --quiet --release -p wsvisor-actors --example autobahn_client
CLIENT=target/release/examples/autobahn_client

PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUN="$WORK/run"
rm -rf "$RUN" "$WORK/reports"
mkdir -p "$RUN"
cat >"$RUN/fuzzingserver.json" <<EOF
{
  "url": "ws://127.0.0.1:$PORT",
  "outdir": "$WORK/reports/clients",
  "cases": [$CASES],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
EOF

# wstest binds every interface; bind the loopback address only.
cat >"$RUN/wstest.py" <<EOF
import site, sys
site.addsitedir("$SITE")
import autobahntestsuite.fuzzing as fuzzing
_listen = fuzzing.listenWS
fuzzing.listenWS = lambda factory, context=None, backlog=50, interface="": _listen(factory, context, backlog, "127.0.0.1")
from autobahntestsuite.wstest import run
sys.argv = ["wstest", "--mode", "fuzzingserver", "--spec", "$RUN/fuzzingserver.json", "--webport", "0"]
run()
EOF

started=$(date +%s)
(cd "$RUN" && exec "$PYTHON" wstest.py >"$RUN/server.log" 2>&1) &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null; then
        break
    fi
    kill -0 "$SERVER" 2>/dev/null || { cat "$RUN/server.log" >&2; echo "autobahn: the fuzzing server died" >&2; exit 1; }
    sleep 0.1
done

echo "autobahn: running cases [$CASES] against ws://127.0.0.1:$PORT"
timeout 1200 "$CLIENT" "ws://127.0.0.1:$PORT" "$AGENT" 2>"$RUN/client.log" || {
    cat "$RUN/client.log" >&2
    echo "autobahn: the conformance client failed" >&2
    exit 1
}
took=$(( $(date +%s) - started ))

"$PYTHON" - "$WORK/reports/clients" "$AGENT" "$took" <<'EOF'
import json, os, sys
outdir, agent, took = sys.argv[1], sys.argv[2], sys.argv[3]
index = json.load(open(os.path.join(outdir, "index.json")))[agent]
PASS = ("OK", "NON-STRICT", "INFORMATIONAL")
def key(case):
    return [int(part) for part in case.split(".")]
groups = {}
failed = []
for case in sorted(index, key=key):
    result = index[case]
    group = groups.setdefault(case.split(".")[0], {})
    behavior = result["behavior"]
    group[behavior] = group.get(behavior, 0) + 1
    if behavior not in PASS or result.get("behaviorClose") not in PASS:
        failed.append((case, behavior, result.get("behaviorClose")))
total = sum(sum(g.values()) for g in groups.values())
print("autobahn: %d cases in %ss" % (total, took))
for name in sorted(groups, key=int):
    counts = groups[name]
    print("  case %-2s %s" % (name, ", ".join("%s %d" % (b, counts[b]) for b in sorted(counts))))
for case, behavior, close in failed:
    report = index[case].get("reportfile", "")
    print("  FAILED %s: behavior %s, close %s (%s)" % (case, behavior, close, os.path.join(outdir, report)))
if failed:
    print("autobahn: %d of %d cases failed" % (len(failed), total))
    sys.exit(1)
print("autobahn: every case OK, NON-STRICT or INFORMATIONAL")
EOF
