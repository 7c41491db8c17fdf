//! wsvisor: keeps xiaozhi WebSocket sessions alive and lends them to local
//! programs. This file only reads the command line; the library does the rest.

use clap::Parser;

fn main() {
    std::process::exit(wsvisor::run(wsvisor::cli::Cli::parse()));
}
