//! `wsvisor ctl`: being written.
use clap::Args;

/// Arguments of `wsvisor ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {}

/// Run `ctl`; the process exit code.
pub fn run(_args: CtlArgs) -> i32 {
    1
}
