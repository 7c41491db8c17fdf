//! The command line of CONTRACT §1.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::ctl::CtlArgs;
use crate::demo::DemoArgs;

/// Keeps xiaozhi WebSocket sessions alive and lends them to local programs.
#[derive(Debug, Parser)]
#[command(name = "wsvisor", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd runs it so).
    Run {
        /// The TOML configuration file.
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
    },
    /// Validate a configuration file; exit 0, or 2 with `file:line:col: message`.
    Check {
        /// The TOML configuration file.
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
    },
    /// Talk to a running daemon through its control socket.
    Ctl(CtlArgs),
    /// Try wsvisor with no server: a loopback xiaozhi server, the daemon with a
    /// few sessions, faults injected on a schedule, live state, then a summary.
    Demo(DemoArgs),
    /// Print a shell completion script, e.g. `wsvisor completions bash > /etc/bash_completion.d/wsvisor`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page wsvisor(1), in roff (`wsvisor man | man -l -`).
    Man {
        /// Write wsvisor.1 and a page per subcommand (wsvisor-ctl.1, ...) into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}
