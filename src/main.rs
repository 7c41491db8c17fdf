//! wsvisor: keeps xiaozhi WebSocket sessions alive and lends them to local
//! programs. This file only dispatches the command line.
#![deny(missing_docs)]

mod cli;
mod config;
mod control;
mod ctl;
mod daemon;
mod demo;
mod exit;
mod limits;
mod logging;
mod reload;
mod systemd;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run { config } => match config::load(&config) {
            Ok(config) => {
                logging::init(config.daemon.log_level);
                for warning in &config.warnings {
                    log::warn!("{warning}");
                }
                limits::ensure_open_files(config.sessions.len());
                daemon::run(config)
            }
            Err(err) => {
                eprintln!("{err}");
                exit::USAGE
            }
        },
        Command::Check { config } => match config::load(&config) {
            Ok(config) => {
                for warning in &config.warnings {
                    eprintln!("warning: {warning}");
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
    };
    std::process::exit(code);
}
