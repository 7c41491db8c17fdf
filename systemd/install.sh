#!/bin/sh
# Install wsvisor as a systemd service. Run as root after
# `cargo build --release`:
#     sudo systemd/install.sh
# Installs the binary to /usr/local/bin, creates the `wsvisor` user, the
# unit, and /etc/wsvisor/config.toml (kept if it exists). Safe to run again.
set -eu
cd "$(dirname "$0")/.."

binary=${1:-target/release/wsvisor}
if [ ! -x "$binary" ]; then
    echo "no $binary: run 'cargo build --release' first (or pass the binary's path)" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "run as root (sudo $0)" >&2
    exit 1
fi

install -m 0755 "$binary" /usr/local/bin/wsvisor
install -D -m 0644 systemd/wsvisor.sysusers /etc/sysusers.d/wsvisor.conf
systemd-sysusers /etc/sysusers.d/wsvisor.conf
install -m 0644 systemd/wsvisor.service /etc/systemd/system/wsvisor.service
install -d -m 0755 /etc/wsvisor
if [ ! -e /etc/wsvisor/config.toml ]; then
    # Group-readable by the service only: it may hold a token.
    install -m 0640 -o root -g wsvisor config.toml /etc/wsvisor/config.toml
    echo "installed /etc/wsvisor/config.toml: edit url, token, device_id and client_id"
else
    echo "kept the existing /etc/wsvisor/config.toml"
fi
systemctl daemon-reload
/usr/local/bin/wsvisor check --config /etc/wsvisor/config.toml || true
echo "then: systemctl enable --now wsvisor"
