#!/usr/bin/env bash
# Build the Debian package: target/debian/wsvisor_VERSION-1_ARCH.deb.
#     scripts/deb.sh            # prints the .deb's path as its last line
# Installs cargo-deb (pinned) into ~/.cargo when it is missing: about two
# minutes of compiling on two cores, once. Then a release build, the man
# pages and shell completions generated from the CLI (`wsvisor man --dir`,
# `wsvisor completions SHELL`), and `cargo deb` packs what
# [package.metadata.deb] in Cargo.toml lists.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_deb_version=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $cargo_deb_version"; then
    echo "installing cargo-deb $cargo_deb_version (cargo install, once)" >&2
    cargo install --locked --quiet cargo-deb --version "$cargo_deb_version"
fi

cargo build --release --quiet --bin wsvisor
binary="${CARGO_TARGET_DIR:-target}/release/wsvisor"

# Always under ./target/assets, whatever CARGO_TARGET_DIR says: Cargo.toml
# names these paths literally.
assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/completions" "$assets/man"
"$binary" man --dir "$assets/man"
"$binary" completions bash > "$assets/completions/wsvisor.bash"
"$binary" completions zsh > "$assets/completions/_wsvisor"
"$binary" completions fish > "$assets/completions/wsvisor.fish"

# cargo-deb prints the package's path.
cargo deb --no-build --quiet "$@" | tail -1
