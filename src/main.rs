//! wsvisor: keeps xiaozhi WebSocket sessions alive for local programs.
#[allow(dead_code)]
mod config;
fn main() {}
