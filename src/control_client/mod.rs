//! The one client of the control socket: `wsvisor ctl`, the demo, the
//! tests and the benchmarks all talk to the daemon through it. Async on
//! tokio, with a [`blocking`] wrapper for callers without a runtime.
//!
//! A [`Client`] sends [`Command`]s with fresh ids and reads the response
//! with the same id ([`Client::call`], or typed: [`Client::result`]);
//! requests may also be pipelined ([`Client::send`], then
//! [`Client::next_line`]). [`Client::subscribe`] turns the connection into
//! a [`Subscription`] of [`EventLine`]s. Every wait is bounded by the
//! client's timeout, except an event wait, which lasts as long as the
//! subscription. Lines from the daemon are capped at [`MAX_LINE`] bytes, so
//! a confused peer cannot make a client eat all memory.

pub mod blocking;
mod error;
mod listener;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

pub use self::error::{ClientError, DaemonError, NoAnswer};
use crate::protocol::lines::{Line, LineReader};
use crate::protocol::{self, Command, EventLine, Request, SessionList, SessionSummary};

/// Longest line read from the daemon. Far above anything it sends.
pub const MAX_LINE: usize = 64 << 20;

/// How long an answer may take unless [`Client::set_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`Client::connect_within`] tries again while the socket is not there yet.
const CONNECT_RETRY: Duration = Duration::from_millis(20);

/// One response line.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The line as received, newline removed (what `ctl --json` prints).
    pub raw: String,
    /// `result` when `ok`, else `error`.
    pub outcome: Result<Value, DaemonError>,
}

impl Response {
    /// The result as `T`, or the daemon's error.
    pub fn into_result<T: DeserializeOwned>(self, cmd: &'static str) -> Result<T, ClientError> {
        let value = self.outcome?;
        serde_json::from_value(value).map_err(|source| ClientError::Shape { cmd, source })
    }
}

/// A connection to the daemon's control socket.
pub struct Client {
    path: PathBuf,
    reader: LineReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    answered: bool,
    timeout: Option<Duration>,
}

impl Client {
    /// Connects to `path`, and makes sure the listener is root, ourselves
    /// or the daemon's user (the owner of the socket's private directory)
    /// before anything is sent: [`ClientError::Untrusted`] otherwise.
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Unreachable {
                path: path.to_path_buf(),
                source,
            })?;
        let listener_uid = stream.peer_cred().map_err(|source| ClientError::Unreachable {
            path: path.to_path_buf(),
            source,
        })?;
        listener::check(path, listener_uid.uid()).map_err(|why| ClientError::Untrusted {
            path: path.to_path_buf(),
            uid: listener_uid.uid(),
            why,
        })?;
        let (reader, writer) = stream.into_split();
        Ok(Client {
            path: path.to_path_buf(),
            reader: LineReader::new(reader, MAX_LINE),
            writer,
            next_id: 1,
            answered: false,
            timeout: Some(DEFAULT_TIMEOUT),
        })
    }

    /// Connects, trying again for up to `within` while the daemon is still
    /// starting (no socket yet, or nobody listening on it yet).
    pub async fn connect_within(path: &Path, within: Duration) -> Result<Client, ClientError> {
        let deadline = Instant::now() + within;
        loop {
            match Client::connect(path).await {
                Err(ClientError::Unreachable { source, .. })
                    if Instant::now() < deadline
                        && matches!(
                            source.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                        ) =>
                {
                    tokio::time::sleep(CONNECT_RETRY).await
                }
                other => return other,
            }
        }
    }

    /// How long to wait for each answer from now on; `None` waits for ever.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `command` with a fresh id and reads its response.
    pub async fn call(&mut self, command: &Command) -> Result<Response, ClientError> {
        let id = self.next_id;
        let written = self.send(command).await;
        // A daemon that refuses us (forbidden) writes its one line and
        // closes, possibly before our request is out: what it said is
        // still in our receive buffer and explains more than EPIPE.
        let line = match (self.next_line().await, written) {
            (Ok(Some(line)), _) => line,
            (Ok(None), Err(err)) | (Err(_), Err(err)) => return Err(self.refused(err)),
            (Ok(None), Ok(_)) if self.answered => return Err(ClientError::Closed),
            (Ok(None), Ok(_)) => return Err(self.no_answer(NoAnswer::Closed)),
            (Err(err), Ok(_)) => return Err(err),
        };
        let outcome = parse_response(&line, id)?;
        self.answered = true;
        Ok(Response { raw: line, outcome })
    }

    /// Sends `command` and reads its result as `T` (see the result types of
    /// [`protocol`]); an error answer is [`ClientError::Daemon`].
    pub async fn result<T: DeserializeOwned>(&mut self, command: &Command) -> Result<T, ClientError> {
        self.call(command).await?.into_result(command.name())
    }

    /// Every session's summary.
    pub async fn sessions(&mut self) -> Result<Vec<SessionSummary>, ClientError> {
        Ok(self.result::<SessionList>(&Command::Sessions).await?.sessions)
    }

    /// One session's summary, with its counters.
    pub async fn session(&mut self, name: &str) -> Result<SessionSummary, ClientError> {
        let command = Command::Session {
            session: name.to_owned(),
        };
        self.result(&command).await
    }

    /// Writes `command` with a fresh id without waiting for its answer
    /// (pipelining); returns the id.
    pub async fn send(&mut self, command: &Command) -> Result<u64, ClientError> {
        let id = self.send_batch(std::slice::from_ref(command)).await?;
        Ok(id)
    }

    /// Writes several requests in one write; returns the id of the first
    /// (the others follow it in order).
    pub async fn send_batch(&mut self, commands: &[Command]) -> Result<u64, ClientError> {
        let first = self.next_id;
        let mut lines = String::new();
        for command in commands {
            let request = Request {
                id: self.next_id.into(),
                command: command.clone(),
            };
            self.next_id += 1;
            // Key order does not matter in a request: no sorting pass.
            match serde_json::to_string(&request) {
                Ok(line) => lines.push_str(&line),
                Err(_) => lines.push_str(&protocol::to_line(&request)),
            }
            lines.push('\n');
        }
        let write = self.writer.write_all(lines.as_bytes());
        match self.timeout {
            Some(limit) => tokio::time::timeout(limit, write)
                .await
                .map_err(|_| self.timed_out())?
                .map_err(|err| self.broken(err))?,
            None => write.await.map_err(|err| self.broken(err))?,
        }
        Ok(first)
    }

    /// The next line from the daemon, newline removed; `None` once it has
    /// closed the connection.
    pub async fn next_line(&mut self) -> Result<Option<String>, ClientError> {
        let read = self.reader.next();
        let line = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, read).await.map_err(|_| self.timed_out())?,
            None => read.await,
        };
        match line.map_err(|err| self.broken(err))? {
            Line::Complete(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Line::TooLong => Err(ClientError::Unreadable {
                what: "a line longer than the client's limit",
                line: format!("more than {MAX_LINE} bytes"),
            }),
            Line::End => Ok(None),
        }
    }

    /// Subscribes to the events of `sessions` (every session when `None`),
    /// with audio payloads when `audio`. Waits for the daemon's confirmation
    /// within the timeout; events are then awaited for ever.
    pub async fn subscribe(self, sessions: Option<Vec<String>>, audio: bool) -> Result<Subscription, ClientError> {
        let (subscription, response) = self.subscribe_raw(sessions, audio).await?;
        response.outcome?;
        Ok(subscription)
    }

    /// [`Client::subscribe`] that also hands back the daemon's response
    /// line as received (`ctl --json` prints it), error or not.
    pub async fn subscribe_raw(
        mut self,
        sessions: Option<Vec<String>>,
        audio: bool,
    ) -> Result<(Subscription, Response), ClientError> {
        let response = self.call(&Command::Subscribe { sessions, audio }).await?;
        self.timeout = None;
        Ok((Subscription { client: self }, response))
    }

    fn no_answer(&self, why: NoAnswer) -> ClientError {
        ClientError::NoAnswer {
            path: self.path.clone(),
            why,
        }
    }

    fn refused(&self, err: ClientError) -> ClientError {
        match err {
            ClientError::Io(err) if !self.answered => self.no_answer(NoAnswer::Refused(err)),
            ClientError::NoAnswer {
                why: NoAnswer::Failed(err),
                ..
            } => self.no_answer(NoAnswer::Refused(err)),
            other => other,
        }
    }

    fn timed_out(&self) -> ClientError {
        if self.answered {
            ClientError::TimedOut
        } else {
            self.no_answer(NoAnswer::TimedOut)
        }
    }

    fn broken(&self, err: io::Error) -> ClientError {
        if self.answered {
            ClientError::Io(err)
        } else {
            self.no_answer(NoAnswer::Failed(err))
        }
    }
}

/// The events of a subscription, one line each.
pub struct Subscription {
    client: Client,
}

impl Subscription {
    /// How long to wait for each event from now on (`None`, the default
    /// after subscribing: for ever); a wait that ends unanswered is
    /// [`ClientError::TimedOut`].
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.client.set_timeout(timeout);
    }

    /// The next event line as received; `None` once the daemon has closed.
    pub async fn next_line(&mut self) -> Result<Option<String>, ClientError> {
        self.client.next_line().await
    }

    /// The next event; `None` once the daemon has closed. A line that is
    /// not an event this client knows is an error naming it; the
    /// subscription goes on.
    pub async fn next_event(&mut self) -> Result<Option<EventLine>, ClientError> {
        let Some(line) = self.next_line().await? else {
            return Ok(None);
        };
        match serde_json::from_str(&line) {
            Ok(event) => Ok(Some(event)),
            Err(_) => Err(ClientError::Unreadable {
                what: "an event this client does not know",
                line,
            }),
        }
    }
}

/// Reads a response line. The daemon answers a request it could not read
/// the id of (and a forbidden peer) with `"id": null`, so an error with a
/// null id is accepted as the answer. Odd error shapes still give a code
/// and a message.
fn parse_response(line: &str, id: u64) -> Result<Result<Value, DaemonError>, ClientError> {
    let unreadable = |what| ClientError::Unreadable {
        what,
        line: line.to_owned(),
    };
    let value: Value = serde_json::from_str(line).map_err(|_| unreadable("a line that is not JSON"))?;
    let Value::Object(mut fields) = value else {
        return Err(unreadable("a response that is not a JSON object"));
    };
    let ok = fields.get("ok").and_then(Value::as_bool);
    match fields.get("id") {
        Some(got) if got.as_u64() == Some(id) => {}
        Some(Value::Null) | None if ok != Some(true) => {}
        got => {
            return Err(ClientError::WrongId {
                got: got.map_or_else(|| "none".to_owned(), Value::to_string),
                id,
            })
        }
    }
    match ok {
        Some(true) => Ok(Ok(fields.remove("result").unwrap_or(Value::Null))),
        _ if fields.contains_key("error") => {
            let error = fields.remove("error").unwrap_or(Value::Null);
            let code = error.get("code").and_then(Value::as_str).unwrap_or("error").to_owned();
            let message = match error.get("message") {
                Some(Value::String(message)) => message.clone(),
                Some(other) => other.to_string(),
                None if error.is_object() => "(no message)".to_owned(),
                None => error.to_string(),
            };
            Ok(Err(DaemonError { code, message }))
        }
        _ => Err(unreadable("a response with neither result nor error")),
    }
}

#[cfg(test)]
mod tests;
