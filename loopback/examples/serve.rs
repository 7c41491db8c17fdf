//! Serve a loopback xiaozhi server (WebSocket and OTA) until killed, on the
//! real server's default ports, so the example `config.toml` works as is:
//!
//! ```text
//! cargo run -p wsvisor-loopback --example serve -- [--port 8000] [--ota-port 8003]
//!     [--token TOKEN] [--idle-close SECS] [--ping-interval SECS] [--real-defaults] [--activation]
//! ```
//!
//! Handy to try `wsvisor run` and `wsvisor ctl` by hand without a real
//! server, including a refused token (`--token`) and an idle close.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use wsvisor_loopback::{ActivationOptions, OtaOptions, OtaServer, Server, ServerOptions};

/// A loopback xiaozhi server on 127.0.0.1.
#[derive(Parser)]
struct Args {
    /// WebSocket port (0: any free one).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// OTA port (0: any free one).
    #[arg(long, default_value_t = 8003)]
    ota_port: u16,
    /// Require `Authorization: Bearer TOKEN`; any other client gets
    /// `认证失败` and Close 1000, as the real server with auth enabled. The
    /// OTA endpoint hands this token out. Without it, anything is accepted
    /// and OTA hands out `token: ""` (the real server's default).
    #[arg(long)]
    token: Option<String>,
    /// Close 1000 after this many seconds without voice or typed text.
    #[arg(long, value_name = "SECS")]
    idle_close: Option<u64>,
    /// Send a WebSocket Ping this often.
    #[arg(long, value_name = "SECS")]
    ping_interval: Option<u64>,
    /// Start from the real server's defaults (idle close 180 s, Ping every
    /// 20 s, app pings ignored, spoken answers); the flags above win.
    #[arg(long)]
    real_defaults: bool,
    /// Unbound devices must activate first (code and challenge in the OTA
    /// answer; `/activate` answers 202 three times, then 200).
    #[arg(long)]
    activation: bool,
    /// Kept for the old `serve IDLE_CLOSE_SECONDS` form.
    #[arg(hide = true)]
    legacy_idle_close: Option<u64>,
}

fn main() {
    let args = Args::parse();
    let mut options = if args.real_defaults {
        ServerOptions::xiaozhi_server()
    } else {
        ServerOptions::default()
    };
    if let Some(secs) = args.idle_close.or(args.legacy_idle_close) {
        options.idle_close = Some(Duration::from_secs(secs));
    }
    if let Some(secs) = args.ping_interval {
        options.ping_interval = Some(Duration::from_secs(secs));
    }
    options.expected_token = args.token.clone();
    let ws_addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let server = match Server::start_at(ws_addr, options) {
        Ok(server) => server,
        Err(e) => fail(&format!("cannot listen on {ws_addr}: {e}")),
    };
    let mut ota_options = OtaOptions::for_url(&server.url(), args.token.as_deref().unwrap_or(""));
    if args.activation {
        ota_options.activation = Some(ActivationOptions::default());
    }
    let ota_addr = SocketAddr::from(([127, 0, 0, 1], args.ota_port));
    let ota = match OtaServer::start_at(ota_addr, ota_options) {
        Ok(ota) => ota,
        Err(e) => fail(&format!("cannot listen on {ota_addr}: {e}")),
    };
    println!("url = \"{}\"", server.url());
    println!("ota_url = \"{}\"", ota.url());
    if args.token.is_some() {
        println!("# other tokens are refused");
    }
    loop {
        std::thread::park();
    }
}

fn fail(message: &str) -> ! {
    eprintln!("serve: {message}");
    std::process::exit(1);
}
