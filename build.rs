//! Links the daemon's code in the order it runs: the functions listed in
//! `link/code-order.txt` (written by `scripts/code-order.sh` from callgrind
//! profiles) go first and together.
//!
//! The kernel maps the 64 KiB around each code page a program first touches,
//! so scattered functions make resident text of code that never runs: at
//! 1,000 idle sessions 5.2 MB of it unordered, 2.0 MB ordered (issue 14).
//! Only release builds of the `wsvisor` binary are ordered, and only where
//! the linker is rust-lld, the default of Rust 1.90 and later on x86_64
//! Linux. Names the list has and the binary lacks (a stale list) are
//! ignored by the linker: the build never fails for them.
//! `WSVISOR_CODE_ORDER=off` links in the default order, as does a source
//! tree without the list.

use std::env;
use std::path::Path;
use std::process::Command;

const LIST: &str = "link/code-order.txt";

fn main() {
    println!("cargo:rerun-if-changed={LIST}");
    println!("cargo:rerun-if-env-changed=WSVISOR_CODE_ORDER");
    let list = Path::new(&env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo")).join(LIST);
    if ordered_link() && list.exists() {
        let list = list.display();
        println!("cargo:rustc-link-arg-bin=wsvisor=-Wl,--symbol-ordering-file={list}");
        println!("cargo:rustc-link-arg-bin=wsvisor=-Wl,--no-warn-symbol-ordering");
    }
}

fn ordered_link() -> bool {
    let var = |name: &str| env::var(name).unwrap_or_default();
    let rustflags = var("CARGO_ENCODED_RUSTFLAGS");
    var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("WSVISOR_CODE_ORDER") != "off"
        // Another linker asked for: it may not know the option.
        && !rustflags.contains("link-self-contained=-linker")
        && !rustflags.contains("linker-flavor")
        && !rustflags.contains("fuse-ld")
        && env::var_os("RUSTC_LINKER").is_none()
        && rustc_minor().is_some_and(|minor| minor >= 90)
}

/// The minor version of the compiler cargo builds with (`rustc 1.95.0 (…)`).
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("-V").output().ok()?;
    let version = String::from_utf8(out.stdout).ok()?;
    version.split_whitespace().nth(1)?.split('.').nth(1)?.parse().ok()
}
