//! The WebSocket conformance client: an echo client for the Autobahn
//! fuzzing server (`wstest -m fuzzingserver`), run by `scripts/autobahn.sh`.
//!
//! It uses the very code a session's Connection runs on every inbound
//! frame: awc's codec, then `FrameAssembler::step`, which reassembles
//! fragments, validates UTF-8 and close frames, and decides the Pong, the
//! Close echo, or the Close that fails the connection. What it adds is what
//! a xiaozhi session has no use for: echoing each text and binary message.
//!
//! ```text
//! cargo run -p wsvisor-actors --example autobahn_client -- ws://127.0.0.1:9001 [AGENT]
//! ```
//!
//! The message limit is 32 MiB here, not the 1 MiB sessions accept
//! (`MAX_MESSAGE_BYTES`): the suite's case 9 echoes messages of up to
//! 16 MiB, and the limit is a policy, not part of the frame handling.

use std::time::Duration;

use awc::ws::Message;
use futures_util::{SinkExt, StreamExt};
use wsvisor_actors::connection::{FrameAssembler, Inbound, Reply, Step, WsFramed};

const MAX_MESSAGE: usize = 32 << 20;

/// After our Close, how long the server gets to end the TCP connection
/// (RFC 6455 §7.1.1: the server closes it first).
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// No single case takes this long; a hung case fails rather than hangs CI.
const CASE_LIMIT: Duration = Duration::from_secs(120);

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(base) = args.next() else {
        eprintln!("usage: autobahn_client ws://127.0.0.1:PORT [AGENT]");
        std::process::exit(2);
    };
    let agent = args.next().unwrap_or_else(|| "wsvisor".to_owned());
    let code = actix_rt::System::new().block_on(run(base.trim_end_matches('/').to_owned(), agent));
    std::process::exit(code);
}

async fn run(base: String, agent: String) -> i32 {
    let client = awc::Client::builder().disable_timeout().max_redirects(0).finish();
    let count = match case_count(&client, &base).await {
        Ok(count) => count,
        Err(err) => {
            eprintln!("autobahn_client: no case count from {base}: {err}");
            return 1;
        }
    };
    eprintln!("autobahn_client: {count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match actix_rt::time::timeout(CASE_LIMIT, echo(&client, &url)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("autobahn_client: case {case}: {err}"),
            Err(_) => eprintln!("autobahn_client: case {case} still running after {CASE_LIMIT:?}; moving on"),
        }
    }
    let url = format!("{base}/updateReports?agent={agent}");
    match connect(&client, &url).await {
        Ok(framed) => {
            let _ = echo_loop(framed).await;
            0
        }
        Err(err) => {
            eprintln!("autobahn_client: updateReports: {err}");
            1
        }
    }
}

async fn connect(client: &awc::Client, url: &str) -> Result<WsFramed, String> {
    client
        .ws(url)
        .max_frame_size(MAX_MESSAGE)
        .connect()
        .await
        .map(|(_, framed)| framed)
        .map_err(|err| err.to_string())
}

/// The server sends the number of cases as one text message.
async fn case_count(client: &awc::Client, base: &str) -> Result<u32, String> {
    let mut framed = connect(client, &format!("{base}/getCaseCount")).await?;
    let mut assembler = FrameAssembler::new(MAX_MESSAGE);
    while let Some(item) = framed.next().await {
        if let Step::Inbound(Inbound::Text(text), _) = assembler.step(item) {
            let _ = framed.send(Message::Close(None)).await;
            return text.trim().parse().map_err(|_| format!("not a count: {text:?}"));
        }
    }
    Err("closed without a count".into())
}

async fn echo(client: &awc::Client, url: &str) -> Result<(), String> {
    let framed = connect(client, url).await?;
    echo_loop(framed).await
}

/// Echo messages until the connection ends, answering control frames and
/// failing the connection exactly as a session's Connection does.
async fn echo_loop(mut framed: WsFramed) -> Result<(), String> {
    let mut assembler = FrameAssembler::new(MAX_MESSAGE);
    while let Some(item) = framed.next().await {
        let close = match assembler.step(item) {
            Step::Pending => continue,
            Step::Inbound(inbound, reply) => {
                let echo = match inbound {
                    Inbound::Text(text) => Some(Message::Text(text.into())),
                    Inbound::Binary(data) => Some(Message::Binary(data)),
                    Inbound::Ping(_) | Inbound::Pong(_) | Inbound::Close(..) => None,
                };
                if let Some(echo) = echo {
                    framed.send(echo).await.map_err(|err| err.to_string())?;
                }
                match reply {
                    None => continue,
                    Some(Reply::Pong(payload)) => {
                        framed
                            .send(Message::Pong(payload))
                            .await
                            .map_err(|err| err.to_string())?;
                        continue;
                    }
                    Some(Reply::Close(echo)) => echo,
                }
            }
            Step::Violation { code, .. } => wsvisor_actors::connection::close_reason(code, ""),
            Step::Io(_) => return Ok(()),
        };
        // Like the Connection: send our Close, flush it, end our half of
        // TCP, and read nothing more of what the peer says; then give the
        // server its moment to end its half.
        let _ = framed.send(Message::Close(Some(close))).await;
        let _ = framed.close().await;
        let _ = actix_rt::time::timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = framed.next().await {} }).await;
        return Ok(());
    }
    Ok(())
}
