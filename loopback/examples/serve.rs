//! Serve a loopback xiaozhi server until killed, printing its URL:
//! `cargo run -p wsvisor-loopback --example serve [IDLE_CLOSE_SECONDS]`.
//! Handy to try wsvisor and `wsvisor ctl` without a real server.

use std::time::Duration;

use wsvisor_loopback::{Server, ServerOptions};

fn main() {
    let idle_close = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs);
    let server = Server::start(ServerOptions {
        idle_close,
        ..Default::default()
    })
    .expect("bind 127.0.0.1");
    println!("{}", server.url());
    loop {
        std::thread::park();
    }
}
