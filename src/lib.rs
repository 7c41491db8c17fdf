//! wsvisor keeps xiaozhi WebSocket sessions alive and lends them to local
//! programs through a Unix control socket. This library is the whole
//! program; `main.rs` only parses the command line and calls [`run`].
//!
//! What other programs (the tests, the benchmarks, the fuzz targets, your
//! own tools) use:
//! - [`config`]: loading and checking a configuration file;
//! - [`identity`]: the device identities kept in the state directory;
//! - [`protocol`]: the control protocol's messages, one type each;
//! - [`control_client`]: the one client of the control socket;
//! - [`control_server`]: the daemon's end of the control socket.
//!
//! The rest is the daemon around the actor tree (`wsvisor-actors`):
//! `daemon` (`wsvisor run`), `ctl` (`wsvisor ctl`), `demo` (`wsvisor
//! demo`), and the logging, systemd, reload and open-file glue.
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod control_client;
pub mod control_server;
mod ctl;
mod daemon;
mod demo;
pub mod exit;
mod generated_docs;
mod heap;
pub mod identity;
mod limits;
mod logging;
pub mod metrics_http;
pub mod protocol;
pub mod reload;
mod socket_location;
mod systemd;
mod trimming_body;

use crate::cli::{Cli, Command};

/// Carry out one command line; the process exit code (CONTRACT §1).
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Run { config } => match config::load(&config) {
            Ok(mut config) => {
                logging::init(config.daemon.log_level);
                for warning in &config.warnings {
                    log::warn!("{warning}");
                }
                let store = identity::IdentityStore::for_daemon(&config.daemon);
                if let Err(err) = identity::settle(&mut config, &store).map(|settled| identity::log(&settled)) {
                    // Like a bad config: a restart cannot repair it (systemd's
                    // RestartPreventExitStatus=2), a person must.
                    log::error!("{err}");
                    return exit::USAGE;
                }
                let admission = limits::admit(0, config.sessions.len());
                if let Some(why) = admission.why_not {
                    let refused = config.sessions.split_off(admission.admitted);
                    log::error!(
                        "not starting {} sessions: {why}: {}",
                        refused.len(),
                        limits::some_names(refused.iter().map(|s| s.name.as_str()), 10)
                    );
                }
                daemon::run(config)
            }
            Err(err) => {
                logging::startup_error(&err.to_string());
                exit::USAGE
            }
        },
        Command::Check { config } => match config::load(&config) {
            Ok(config) => {
                for warning in &config.warnings {
                    eprintln!("warning: {warning}");
                }
                // Never writes: says which identity files `run` would make.
                let store = identity::IdentityStore::for_daemon(&config.daemon);
                match identity::preview(&config, &store) {
                    Ok(lines) => lines.iter().for_each(|line| println!("{line}")),
                    Err(err) => {
                        eprintln!("{err}");
                        return exit::USAGE;
                    }
                }
                println!("{}: ok, sessions={}", config.path.display(), config.sessions.len());
                exit::OK
            }
            Err(err) => {
                eprintln!("{err}");
                exit::USAGE
            }
        },
        Command::Ctl(args) => ctl::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Completions { shell } => generated_docs::completions(shell),
        Command::Man { dir } => generated_docs::man_page(dir.as_deref()),
    }
}
