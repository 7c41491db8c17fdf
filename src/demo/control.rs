//! The demo's two connections to the daemon's control socket, async so they
//! share one thread with the fault schedule: one for requests (`sessions`,
//! `listen`), one `subscribe`d for events. The demo watches the daemon only
//! through this socket, as any local program would.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// A response that takes longer than this means the daemon is wedged.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects, retrying while the daemon is still creating its socket.
pub async fn connect(path: &Path, within: Duration) -> io::Result<UnixStream> {
    let deadline = Instant::now() + within;
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return Ok(stream),
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A request/response connection.
pub struct Requests {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
    next_id: u64,
}

impl Requests {
    /// Talks over `stream`.
    pub fn new(stream: UnixStream) -> Requests {
        let (reader, writer) = stream.into_split();
        Requests {
            lines: BufReader::new(reader).lines(),
            writer,
            next_id: 1,
        }
    }

    /// Sends `cmd` with `args` (an object) and returns its `result`, or the
    /// error the daemon answered with, as text.
    pub async fn call(&mut self, cmd: &str, args: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = if args.is_object() { args } else { json!({}) };
        request["id"] = json!(id);
        request["cmd"] = json!(cmd);
        let exchange = async {
            self.writer
                .write_all(format!("{request}\n").as_bytes())
                .await
                .map_err(|e| format!("control socket: {e}"))?;
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await
                    .map_err(|e| format!("control socket: {e}"))?
                    .ok_or_else(|| "the daemon closed the control connection".to_owned())?;
                let response: Value =
                    serde_json::from_str(&line).map_err(|e| format!("control socket sent {line:?}: {e}"))?;
                if response["id"] != json!(id) {
                    continue;
                }
                return if response["ok"] == json!(true) {
                    Ok(response["result"].clone())
                } else {
                    Err(format!(
                        "{}: {}",
                        response["error"]["code"].as_str().unwrap_or("error"),
                        response["error"]["message"].as_str().unwrap_or("")
                    ))
                };
            }
        };
        match tokio::time::timeout(RESPONSE_TIMEOUT, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer to {cmd} within {}s", RESPONSE_TIMEOUT.as_secs())),
        }
    }
}

/// A subscription: every event of every session, one JSON object a line.
pub struct Events {
    lines: Lines<BufReader<OwnedReadHalf>>,
    // Kept open: closing our half would end the subscription.
    _writer: OwnedWriteHalf,
}

impl Events {
    /// Subscribes over `stream` and waits for the daemon's confirmation.
    pub async fn subscribe(stream: UnixStream) -> Result<Events, String> {
        let mut requests = Requests::new(stream);
        requests.call("subscribe", json!({})).await?;
        Ok(Events {
            lines: requests.lines,
            _writer: requests.writer,
        })
    }

    /// The next event; `None` when the daemon closed the connection. Lines
    /// that are not JSON objects are skipped.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let line = self.lines.next_line().await.ok()??;
            if let Ok(event @ Value::Object(_)) = serde_json::from_str::<Value>(&line) {
                return Some(event);
            }
        }
    }
}
