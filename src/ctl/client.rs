//! One connection to the control socket: send a request line, read the
//! response line with the same id, then (for `subscribe`) event lines.
//! Failures are sorted by what they mean for the exit code: nobody there,
//! nobody answering, or a conversation that broke.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// Longest line read from the daemon. Far above anything it sends; only
/// there so that a confused peer cannot make us eat all memory.
const MAX_LINE: u64 = 64 << 20;

/// Why a conversation with the daemon did not give a response.
#[derive(Debug)]
pub enum ClientError {
    /// Connecting failed: no socket, nobody listening, no permission.
    Unreachable {
        /// The socket.
        path: PathBuf,
        /// What `connect` said.
        source: io::Error,
    },
    /// Connected, but the connection ended or stayed silent before the first response.
    NoAnswer {
        /// The socket.
        path: PathBuf,
        /// What happened.
        why: String,
    },
    /// Something went wrong after the daemon had started answering, or it answered nonsense.
    Broken(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { path, source } => {
                let path = path.display();
                let why = os_message(source);
                match source.kind() {
                    io::ErrorKind::PermissionDenied => write!(
                        f,
                        "not allowed to connect to {path} ({why}); run as root or as a user in the socket's group"
                    ),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                        write!(
                            f,
                            "no daemon answers on {path} ({why}); is wsvisor running? (systemctl status wsvisor)"
                        )
                    }
                    _ => write!(
                        f,
                        "cannot connect to {path} ({why}); is wsvisor running? (systemctl status wsvisor)"
                    ),
                }
            }
            ClientError::NoAnswer { path, why } => write!(f, "the daemon on {} {why}", path.display()),
            ClientError::Broken(why) => f.write_str(why),
        }
    }
}

/// `No such file or directory` rather than `No such file or directory (os error 2)`.
fn os_message(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// An error the daemon answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonError {
    /// Machine-readable, e.g. `not_found`.
    pub code: String,
    /// For people.
    pub message: String,
}

/// One response line.
#[derive(Debug)]
pub struct Response {
    /// The line as received, newline removed, for `--json`.
    pub raw: String,
    /// `result` when `ok`, else `error`.
    pub outcome: Result<Value, DaemonError>,
}

/// A connection to the daemon.
pub struct Client {
    path: PathBuf,
    stream: BufReader<UnixStream>,
    next_id: u64,
    answered: bool,
}

impl Client {
    /// Connects to `path`; reads and writes then give up after `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            path: path.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(unreachable)?;
        stream.set_read_timeout(Some(timeout)).map_err(unreachable)?;
        stream.set_write_timeout(Some(timeout)).map_err(unreachable)?;
        Ok(Client {
            path: path.to_path_buf(),
            stream: BufReader::new(stream),
            next_id: 1,
            answered: false,
        })
    }

    /// Sends `request` with a fresh id and reads its response.
    pub fn request(&mut self, mut request: Map<String, Value>) -> Result<Response, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        request.insert("id".into(), Value::from(id));
        let mut line = Value::Object(request).to_string();
        line.push('\n');
        let written = self.stream.get_mut().write_all(line.as_bytes());
        // A daemon that refuses us (forbidden) writes its one line and
        // closes, possibly before our request is out: what it said is
        // still in our receive buffer and explains more than EPIPE.
        let line = match (self.next_line(), written) {
            (Ok(Some(line)), _) => line,
            (Ok(None), Err(err)) | (Err(_), Err(err)) => {
                return Err(self.no_answer(format!("refused the request: {err}")))
            }
            (Ok(None), Ok(())) => return Err(self.no_answer("closed the connection without answering".into())),
            (Err(err), Ok(())) => return Err(err),
        };
        let outcome = parse_response(&line, id).map_err(ClientError::Broken)?;
        self.answered = true;
        Ok(Response { raw: line, outcome })
    }

    /// From now on, wait for lines without limit (events come when they come).
    pub fn wait_forever(&mut self) -> Result<(), ClientError> {
        self.stream
            .get_ref()
            .set_read_timeout(None)
            .map_err(|e| ClientError::Broken(format!("socket: {e}")))
    }

    /// The next line, newline removed; `None` once the daemon has closed.
    pub fn next_line(&mut self) -> Result<Option<String>, ClientError> {
        let mut bytes = Vec::new();
        match (&mut self.stream).take(MAX_LINE).read_until(b'\n', &mut bytes) {
            Ok(0) => Ok(None),
            Ok(_) => {
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                let why = "did not answer in time".to_owned();
                Err(if self.answered {
                    ClientError::Broken(format!("the daemon {why}"))
                } else {
                    self.no_answer(why)
                })
            }
            Err(err) if self.answered => Err(ClientError::Broken(format!(
                "reading from the daemon: {}",
                os_message(&err)
            ))),
            Err(err) => Err(self.no_answer(format!("failed before answering: {}", os_message(&err)))),
        }
    }

    fn no_answer(&self, why: String) -> ClientError {
        ClientError::NoAnswer {
            path: self.path.clone(),
            why,
        }
    }
}

/// Reads a response line. The daemon answers a request it could not read
/// the id of (and a forbidden peer) with `"id": null`, so an error with a
/// null id is accepted as the answer.
fn parse_response(line: &str, id: u64) -> Result<Result<Value, DaemonError>, String> {
    let unreadable = |why: &str| format!("the daemon sent {why}: {}", shorten(line));
    let value: Value = serde_json::from_str(line).map_err(|_| unreadable("a line that is not JSON"))?;
    let Value::Object(mut fields) = value else {
        return Err(unreadable("a response that is not a JSON object"));
    };
    let ok = fields.get("ok").and_then(Value::as_bool);
    match fields.get("id") {
        Some(got) if got.as_u64() == Some(id) => {}
        Some(Value::Null) | None if ok != Some(true) => {}
        got => {
            let got = got.map_or_else(|| "none".to_owned(), Value::to_string);
            return Err(format!("the daemon answered id {got} to request {id}"));
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

/// At most 200 characters of a line, for error messages.
fn shorten(line: &str) -> String {
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error(code: &str, message: &str) -> Result<Value, DaemonError> {
        Err(DaemonError {
            code: code.into(),
            message: message.into(),
        })
    }

    #[test]
    fn ok_and_error_responses() {
        assert_eq!(
            parse_response(r#"{"id":1,"ok":true,"result":{"pid":3}}"#, 1),
            Ok(Ok(json!({"pid": 3})))
        );
        let line = r#"{"id":2,"ok":false,"error":{"code":"not_found","message":"no session named 'x'"}}"#;
        assert_eq!(parse_response(line, 2), Ok(error("not_found", "no session named 'x'")));
    }

    #[test]
    fn forbidden_with_null_id_is_an_answer() {
        let line = r#"{"id":null,"ok":false,"error":{"code":"forbidden","message":"uid 1000 may not connect"}}"#;
        assert_eq!(
            parse_response(line, 1),
            Ok(error("forbidden", "uid 1000 may not connect"))
        );
    }

    #[test]
    fn mismatched_ids_and_garbage_are_refused() {
        assert!(parse_response(r#"{"id":7,"ok":true,"result":{}}"#, 1)
            .unwrap_err()
            .contains("id 7"));
        assert!(parse_response(r#"{"id":null,"ok":true,"result":{}}"#, 1).is_err());
        assert!(parse_response("hello", 1).unwrap_err().contains("not JSON"));
        assert!(parse_response("[1]", 1).is_err());
        assert!(parse_response(r#"{"id":1}"#, 1).is_err());
    }

    #[test]
    fn odd_error_shapes_still_say_something() {
        assert_eq!(
            parse_response(r#"{"id":1,"ok":false,"error":"boom"}"#, 1),
            Ok(error("error", "\"boom\""))
        );
        assert_eq!(
            parse_response(r#"{"id":1,"ok":false,"error":{"code":5}}"#, 1),
            Ok(error("error", "(no message)"))
        );
        assert_eq!(parse_response(r#"{"id":1,"ok":true}"#, 1), Ok(Ok(Value::Null)));
    }

    #[test]
    fn connect_failure_names_the_socket_and_the_reason() {
        let path = Path::new("/nonexistent/wsvisor/control.sock");
        let err = Client::connect(path, Duration::from_secs(1)).err().unwrap();
        assert_eq!(
            err.to_string(),
            "no daemon answers on /nonexistent/wsvisor/control.sock (No such file or directory); \
             is wsvisor running? (systemctl status wsvisor)"
        );
    }
}
