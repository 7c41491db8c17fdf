#!/bin/sh
# Install wsvisor as a systemd service on a distribution without the Debian
# package (on Debian and Ubuntu prefer `apt install ./wsvisor_*.deb`, see
# README.md). Run as root after `cargo build --release`:
#     sudo systemd/install.sh [BINARY]
# Installs the binary to /usr/local/bin, the `wsvisor` user and group, the
# unit, and /etc/wsvisor/config.toml (kept if it exists). Safe to run
# again: every step converges, and a running service is restarted on the
# new binary.
set -eu
cd "$(dirname "$0")/.."

binary=${1:-${CARGO_TARGET_DIR:-target}/release/wsvisor}
if [ ! -x "$binary" ]; then
    echo "no $binary: run 'cargo build --release' first (or pass the binary's path)" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "run as root (sudo $0)" >&2
    exit 1
fi
# Under a running systemd only: in a chroot or an image build, systemctl
# would fail and stop the script half-way.
booted() { [ -d /run/systemd/system ]; }

# A new file renamed over the old one: a running wsvisor keeps its inode
# ("text file busy" cannot happen) and the path is never half-written.
install -m 0755 "$binary" /usr/local/bin/wsvisor.new
mv -f /usr/local/bin/wsvisor.new /usr/local/bin/wsvisor

install -D -m 0644 systemd/wsvisor.sysusers /etc/sysusers.d/wsvisor.conf
systemd-sysusers wsvisor.conf

# The unit names /usr/bin/wsvisor, where the package puts it.
sed 's#/usr/bin/wsvisor#/usr/local/bin/wsvisor#g' systemd/wsvisor.service > /etc/systemd/system/wsvisor.service.new
chmod 0644 /etc/systemd/system/wsvisor.service.new
mv -f /etc/systemd/system/wsvisor.service.new /etc/systemd/system/wsvisor.service

# As the unit's ConfigurationDirectoryMode=0750 asks; group wsvisor so the
# service (User=wsvisor) can enter it. `install -d` also fixes an existing one.
install -d -m 0750 -o root -g wsvisor /etc/wsvisor
if [ ! -e /etc/wsvisor/config.toml ]; then
    # Group-readable by the service only: it may hold a token.
    install -m 0640 -o root -g wsvisor config.toml /etc/wsvisor/config.toml
    echo "installed /etc/wsvisor/config.toml: edit url, token, device_id and client_id"
else
    echo "kept the existing /etc/wsvisor/config.toml"
fi

/usr/local/bin/wsvisor check --config /etc/wsvisor/config.toml || echo "fix the config above before starting the service" >&2
if booted; then
    systemctl daemon-reload
    if systemctl --quiet is-active wsvisor; then
        systemctl restart wsvisor
        echo "restarted wsvisor on the new binary"
    else
        echo "then: systemctl enable --now wsvisor"
    fi
else
    echo "systemd is not running here: once booted, systemctl enable --now wsvisor"
fi
