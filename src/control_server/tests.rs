//! The control socket in process, against a real actor tree and loopback
//! server: every kind of bad input gets its error (or is cut off), the
//! daemon keeps serving everyone else, and the session never notices.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use wsvisor_actors::events::Event;
use wsvisor_actors::messages::{AddSession, Subscribe};
use wsvisor_actors::start_tree;
use wsvisor_actors::state::SessionState;
use wsvisor_actors::subscription::{SubscriberLimits, Subscription};
use wsvisor_loopback::{Fault, Server, ServerOptions};

use super::*;
use crate::config;
use crate::protocol::MAX_LINE_BYTES;
use crate::reload::Reloader;

const LIMIT: Duration = Duration::from_secs(5);

struct Harness {
    server: Arc<Server>,
    socket: PathBuf,
    _file: SocketFile,
    dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn options() -> ControlOptions {
    ControlOptions {
        first_request_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
        write_timeout: Duration::from_millis(300),
        accept: Default::default(),
    }
}

async fn harness(tag: &str) -> Harness {
    let server = Server::start(ServerOptions::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("wsvisor-control-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("control.sock");
    let text = format!(
        "[daemon]\ncontrol_socket = \"{}\"\n[[session]]\nname = \"kitchen\"\nurl = \"{}\"\ntoken = \"t\"\n\
         device_id = \"d\"\nclient_id = \"c\"\n",
        socket.display(),
        server.url()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    let config = config::load(&path).unwrap();
    let tree = start_tree(Default::default());
    let daemon = Rc::new(DaemonHandle {
        tree: tree.clone(),
        reloader: Rc::new(Reloader::new(tree.clone(), config.clone())),
        started: Instant::now(),
        subscriber_limits: SubscriberLimits::default(),
    });
    let file = start(&config.daemon, daemon, options()).await.unwrap();
    let mut events = tree
        .monitor
        .send(Subscribe {
            sessions: None,
            limits: SubscriberLimits::default(),
            states_only: false,
        })
        .await
        .unwrap();
    tree.supervisor
        .send(AddSession(config.sessions[0].clone()))
        .await
        .unwrap()
        .unwrap();
    wait_ready(&mut events).await;
    Harness {
        server: Arc::new(server),
        socket,
        _file: file,
        dir,
    }
}

async fn wait_ready(events: &mut Subscription) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, events.recv()).await;
        match next.as_ref().map(|e| e.as_ref().map(|e| &e.event)) {
            Ok(Some(Event::State(u))) if u.state == SessionState::Ready => return,
            Ok(Some(_)) => {}
            other => panic!("session not ready: {other:?}"),
        }
    }
}

struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn connect(path: &PathBuf) -> Client {
        let (read, writer) = UnixStream::connect(path).await.unwrap().into_split();
        Client {
            reader: BufReader::new(read),
            writer,
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    async fn read_line(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = tokio::time::timeout(LIMIT, self.reader.read_line(&mut line))
            .await
            .expect("no answer")
            .ok()?;
        (n > 0).then(|| serde_json::from_str(&line).expect("a JSON line"))
    }

    async fn request(&mut self, line: &str) -> Value {
        self.send_raw(format!("{line}\n").as_bytes()).await;
        self.read_line().await.expect("connection closed")
    }

    async fn error_code(&mut self, line: &[u8]) -> String {
        self.send_raw(line).await;
        let answer = self.read_line().await.expect("connection closed");
        assert_eq!(answer["ok"], false, "{answer}");
        answer["error"]["code"].as_str().unwrap().to_owned()
    }

    /// True once the daemon has closed the connection.
    async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.reader.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

async fn assert_session_untouched(h: &Harness, before: &Value) {
    let mut client = Client::connect(&h.socket).await;
    let now = client.request(r#"{"id":9,"cmd":"session","session":"kitchen"}"#).await;
    assert_eq!(now["result"]["state"], "ready");
    assert_eq!(
        now["result"]["session_id"], before["result"]["session_id"],
        "the session reconnected"
    );
}

#[actix_rt::test]
async fn every_command_answers_with_its_id() {
    let h = harness("commands").await;
    let mut c = Client::connect(&h.socket).await;
    let ping = c.request(r#"{"id":1,"cmd":"ping"}"#).await;
    assert_eq!(
        ping,
        json!({"id":1,"ok":true,"result":{"version":env!("CARGO_PKG_VERSION"),"pid":std::process::id()}})
    );
    let status = c.request(r#"{"id":"s","cmd":"status"}"#).await;
    assert_eq!(
        (status["id"].clone(), status["result"]["sessions"]["ready"].clone()),
        (json!("s"), json!(1))
    );
    let sessions = c.request(r#"{"id":2,"cmd":"sessions"}"#).await;
    assert_eq!(sessions["result"]["sessions"][0]["name"], "kitchen");
    let session = c.request(r#"{"id":3,"cmd":"session","session":"kitchen"}"#).await;
    assert_eq!(session["result"]["counters"]["connects"], 1);
    let sent = c
        .request(r#"{"id":4,"cmd":"listen","session":"kitchen","state":"detect","text":"hi"}"#)
        .await;
    assert_eq!(sent["result"], json!({"sent": true}));
    assert!(h.server.wait_until(LIMIT, |s| s
        .received_texts()
        .iter()
        .any(|t| t.text.contains("\"detect\""))));
    let audio = c
        .request(r#"{"id":5,"cmd":"audio","session":"kitchen","data":"AAEC"}"#)
        .await;
    assert_eq!(audio["result"], json!({"sent": true}));
    assert!(h.server.wait_until(LIMIT, |s| s.received_binary_bytes() == 3));
    let metrics = c.request(r#"{"id":6,"cmd":"metrics"}"#).await;
    assert!(metrics["result"]["text"]
        .as_str()
        .unwrap()
        .contains("wsvisor_session_connects_total{session=\"kitchen\"} 1"));
    let gone = c.request(r#"{"id":7,"cmd":"session","session":"attic"}"#).await;
    assert_eq!(
        gone["error"],
        json!({"code":"not_found","message":"no session named 'attic'"})
    );
    let identity = c.request(r#"{"id":"i","cmd":"identity","session":"kitchen"}"#).await;
    assert_eq!(
        identity["result"],
        json!({"session": "kitchen", "device_id": "d", "client_id": "c", "serial_number": null,
               "activation_version": 1, "file": null, "configured": ["device_id", "client_id"],
               "activation": "no_ota_url"})
    );
    let unknown = c.request(r#"{"id":"j","cmd":"identity","session":"attic"}"#).await;
    assert_eq!(unknown["error"]["code"], "not_found");
    let down = c.request(r#"{"id":8,"cmd":"disconnect","session":"kitchen"}"#).await;
    assert_eq!(down["result"]["requested"], "disconnect");
    let deadline = Instant::now() + LIMIT;
    loop {
        let audio = c
            .request(r#"{"id":10,"cmd":"audio","session":"kitchen","data":"AA=="}"#)
            .await;
        if audio["ok"] == false {
            assert_eq!(audio["error"]["code"], "not_ready");
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let stopped = c
        .request(r#"{"id":11,"cmd":"send","session":"kitchen","message":{"type":"mcp"}}"#)
        .await;
    assert_eq!(
        stopped["error"]["code"], "not_ready",
        "a stopped session queues nothing"
    );
}

#[actix_rt::test]
async fn bad_input_gets_errors_and_the_connection_goes_on() {
    let h = harness("bad").await;
    let before = Client::connect(&h.socket)
        .await
        .request(r#"{"id":0,"cmd":"session","session":"kitchen"}"#)
        .await;
    let mut c = Client::connect(&h.socket).await;
    let mut huge = vec![b'x'; MAX_LINE_BYTES + 10];
    huge.push(b'\n');
    assert_eq!(c.error_code(&huge).await, "bad_request");
    assert_eq!(c.error_code(b"{not json\n").await, "bad_request");
    assert_eq!(c.error_code(b"[1,2,3]\n").await, "bad_request");
    assert_eq!(c.error_code(b"\"ping\"\n").await, "bad_request");
    assert_eq!(
        c.error_code(b"{\"cmd\":\"session\",\"session\":42}\n").await,
        "bad_request"
    );
    assert_eq!(
        c.error_code(b"{\"cmd\":\"send\",\"session\":\"kitchen\",\"message\":[1]}\n")
            .await,
        "bad_request"
    );
    assert_eq!(c.error_code(b"{\"cmd\":\"teleport\"}\n").await, "unknown_command");
    assert_eq!(
        c.error_code(b"{\"cmd\":\"connect\",\"session\":\"attic\"}\n").await,
        "not_found"
    );
    assert_eq!(c.error_code(b"{\"cmd\":\"ping\"}\xff\xfe\n").await, "bad_request");
    assert_eq!(c.error_code(b"\xc3\x28\n").await, "bad_request");
    assert_eq!(
        c.request(r#"{"id":1,"cmd":"ping"}"#).await["ok"],
        true,
        "the connection survived it all"
    );
    assert_session_untouched(&h, &before).await;
}

#[actix_rt::test]
async fn a_silent_client_is_cut_off_and_others_are_served_meanwhile() {
    let h = harness("silent").await;
    let mut silent = Client::connect(&h.socket).await;
    let mut other = Client::connect(&h.socket).await;
    assert_eq!(other.request(r#"{"id":1,"cmd":"ping"}"#).await["ok"], true);
    assert!(
        silent.closed_within(Duration::from_secs(2)).await,
        "a client that never sends was kept"
    );
    // A client that spoke once gets the longer idle timeout, then goes too.
    assert!(
        other.closed_within(Duration::from_secs(2)).await,
        "an idle client was kept for ever"
    );
}

#[actix_rt::test]
async fn a_subscriber_that_never_reads_is_cut_off_and_the_session_never_waits() {
    let h = harness("unreading").await;
    let before = Client::connect(&h.socket)
        .await
        .request(r#"{"id":0,"cmd":"session","session":"kitchen"}"#)
        .await;
    let mut lazy = Client::connect(&h.socket).await;
    assert_eq!(
        lazy.request(r#"{"id":1,"cmd":"subscribe","audio":true}"#).await["result"]["subscribed"],
        true
    );
    let mut reader = Client::connect(&h.socket).await;
    assert_eq!(reader.request(r#"{"id":1,"cmd":"subscribe"}"#).await["ok"], true);
    // Far more event bytes than socket buffers hold: 4,000 frames of 4 KiB.
    let started = Instant::now();
    // Injection blocks until applied: off this thread, which runs the session.
    let server = h.server.clone();
    let injector = std::thread::spawn(move || {
        for _ in 0..4000 {
            server.inject(Fault::Binary(vec![7; 4096]));
        }
    });
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen < 4000 && Instant::now() < deadline {
        match reader.read_line().await {
            Some(event) if event["event"] == "audio" => seen += 1,
            Some(event) if event["event"] == "lagged" => seen += event["skipped"].as_u64().unwrap() as usize,
            Some(_) => {}
            None => break,
        }
    }
    injector.join().unwrap();
    assert_eq!(seen, 4000, "the reading subscriber missed events it did not hear about");
    // Still not reading, for longer than the daemon waits on a write.
    actix_rt::time::sleep(options().write_timeout * 3).await;
    assert!(
        lazy.closed_within(Duration::from_secs(3)).await,
        "the unreading subscriber was kept"
    );
    assert_session_untouched(&h, &before).await;
    eprintln!("4000 audio frames fanned out in {:?}", started.elapsed());
}

#[actix_rt::test]
async fn a_thousand_clients_at_once() {
    let h = harness("thousand").await;
    let before = Client::connect(&h.socket)
        .await
        .request(r#"{"id":0,"cmd":"session","session":"kitchen"}"#)
        .await;
    let mut clients = Vec::new();
    for _ in 0..1000 {
        clients.push(UnixStream::connect(&h.socket).await.unwrap());
    }
    let mut answers = Vec::new();
    for (i, stream) in clients.into_iter().enumerate() {
        answers.push(actix_rt::spawn(async move {
            let (read, mut write) = stream.into_split();
            write
                .write_all(format!("{{\"id\":{i},\"cmd\":\"ping\"}}\n").as_bytes())
                .await
                .unwrap();
            let mut line = String::new();
            BufReader::new(read).read_line(&mut line).await.unwrap();
            serde_json::from_str::<Value>(&line).unwrap()["id"].as_u64()
        }));
    }
    for (i, answer) in answers.into_iter().enumerate() {
        let id = tokio::time::timeout(LIMIT, answer)
            .await
            .expect("a client waited too long")
            .unwrap();
        assert_eq!(id, Some(i as u64));
    }
    assert_session_untouched(&h, &before).await;
}

#[actix_rt::test]
async fn a_live_socket_is_never_taken_over_and_a_stale_one_is_replaced() {
    let h = harness("claim").await;
    let daemon = config::DaemonConfig {
        control_socket: h.socket.clone(),
        ..config::DaemonConfig::default()
    };
    match socket_file::bind(&daemon.control_socket, 0o660).await {
        Err(err @ ClaimError::InUse { pid: Some(pid), .. }) => {
            assert_eq!(pid as u32, std::process::id());
            assert!(err.to_string().contains(&format!("in use by process {pid}")), "{err}");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("took over a live socket"),
    }
    let stale = h.dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists(), "a crashed daemon leaves its socket file");
    let (_listener, file) = socket_file::bind(&stale, 0o600).await.expect("stale socket replaced");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&stale).unwrap().permissions().mode() & 0o777, 0o600);
    drop(file);
    assert!(!stale.exists(), "the socket file outlived the daemon");
    let plain = h.dir.join("plain");
    std::fs::write(&plain, "not a socket").unwrap();
    assert!(matches!(
        socket_file::bind(&plain, 0o660).await,
        Err(ClaimError::NotASocket { .. })
    ));
    assert!(plain.exists(), "a file that is not a socket was removed");
}

#[test]
fn access_is_root_ourselves_and_the_allowed() {
    let access = Access {
        own_uid: 1000,
        allowed_uids: vec![1001],
        allowed_gids: vec![],
    };
    assert!(access.allows(0) && access.allows(1000) && access.allows(1001));
    assert!(!access.allows(1002));
}
