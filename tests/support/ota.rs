//! A loopback OTA endpoint for tests: answers every POST with the JSON the
//! test currently wants, and remembers what devices sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// One request as the endpoint saw it.
#[derive(Clone, Debug)]
pub struct OtaRequest {
    /// Lower-cased header names and their values.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
}

impl OtaRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The endpoint; stops when dropped.
pub struct OtaEndpoint {
    addr: SocketAddr,
    answer: Arc<Mutex<Value>>,
    requests: Arc<Mutex<Vec<OtaRequest>>>,
    stop: Arc<AtomicBool>,
}

impl OtaEndpoint {
    /// Start on 127.0.0.1, answering `answer` until told otherwise.
    pub fn start(answer: Value) -> OtaEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = OtaEndpoint {
            addr: listener.local_addr().unwrap(),
            answer: Arc::new(Mutex::new(answer)),
            requests: Arc::default(),
            stop: Arc::default(),
        };
        let (answer, requests, stop) = (
            endpoint.answer.clone(),
            endpoint.requests.clone(),
            endpoint.stop.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &answer.lock().unwrap(), &requests),
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        endpoint
    }

    /// `http://127.0.0.1:PORT/xiaozhi/ota/`.
    pub fn url(&self) -> String {
        format!("http://{}/xiaozhi/ota/", self.addr)
    }

    /// Answer this from now on.
    pub fn set_answer(&self, answer: Value) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Requests so far.
    pub fn requests(&self) -> Vec<OtaRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for OtaEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Answer one request; it is recorded before the answer goes out, so a
/// client that reacts to the answer always finds its request recorded.
fn serve(stream: TcpStream, answer: &Value, requests: &Mutex<Vec<OtaRequest>>) {
    let _ = answer_one(stream, answer, requests);
}

fn answer_one(stream: TcpStream, answer: &Value, requests: &Mutex<Vec<OtaRequest>>) -> Option<()> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize = headers.iter().find(|(n, _)| n == "content-length")?.1.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    requests.lock().unwrap().push(OtaRequest { headers, body });
    let text = answer.to_string();
    let mut stream = stream;
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    stream.write_all(response.as_bytes()).ok()
}

/// A session that learns its url and token from `ota` (test timings).
pub fn ota_session(ota: &OtaEndpoint) -> wsvisor_actors::settings::SessionSettings {
    let mut session = super::settings("kitchen", "unused");
    session.url = None;
    session.credential = None;
    session.ota = Some(wsvisor_actors::settings::OtaSettings { url: ota.url() });
    session
}
