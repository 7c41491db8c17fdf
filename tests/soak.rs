//! Soak: many loss-and-recovery cycles of the real daemon, across mixed
//! causes, on a handful of sessions, with `ctl` traffic, messages and a
//! `reload` every so often. At the end every session is `ready`, every
//! message the daemon accepted was delivered exactly once and in order or
//! reported as dropped, and the daemon's open descriptors, threads and RSS
//! are within a small margin of their level after warm-up.
//!
//! The default is a short run for every `cargo test`; the long one is
//!
//! ```text
//! WSVISOR_SOAK_CYCLES=10000 cargo test --release --all-features --test soak -- --nocapture
//! ```
//!
//! How it runs: one thread per session drives its own cycles (a message,
//! a fault, a message while the session is down, back to `ready` with a new
//! server session). Faults on one session are Close 1000/1001/1011/1012, a
//! Close without code, TCP end, RST, silence (ping timeout), `reconnect`,
//! `disconnect` + `connect`, and with the `fault-injection` feature a panic
//! of the connection actor. Every so often the main thread stops the
//! drivers between cycles for an event that hits every session at once
//! (server restart, an outage, upgrades refused with 503, a server that
//! never says hello), and between those it sends `reload`s that change,
//! remove and add back a fifth session, plus `sessions`, `status` and
//! `metrics` requests.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::process::{control, open_fds, session_toml, socket_of, wsvisor, Control, Daemon, Scratch};
use wsvisor::control_client::ClientError;
use wsvisor::protocol::{
    Command, Delivery, ErrorCode, EventLine, ListenState, MetricsText, ReloadSummary, SessionState, SessionSummary,
    Status,
};
use wsvisor_loopback::{EventKind, Fault, Mode, Server, ServerOptions};

/// The drivers' sessions; `extra` comes and goes with reloads.
const SESSIONS: [&str; 4] = ["s0", "s1", "s2", "s3"];
const EXTRA: &str = "extra";
/// Cycles of the run `cargo test` does.
const SHORT_CYCLES: u64 = 1_000;
/// Resources are first measured after this share of the cycles.
const WARM_UP_SHARE: f64 = 0.1;
/// Bound of every single wait.
const LIMIT: Duration = Duration::from_secs(15);
/// How often the main thread does something of its own.
const TICK: Duration = Duration::from_millis(100);
const HELLO_TIMEOUT: Duration = Duration::from_millis(200);
/// Short, so that outages expire held messages.
const QUEUE_TTL: Duration = Duration::from_millis(150);

/// The allowed growth from warm-up to the end. A session in the middle of
/// a reconnect holds one more socket; glibc keeps freed memory in its
/// arenas, so RSS settles rather than returning to the byte.
const FD_MARGIN: usize = 2;
const THREAD_MARGIN: usize = 2;
const RSS_MARGIN_KIB: u64 = 4 * 1024;

fn target_cycles() -> u64 {
    std::env::var("WSVISOR_SOAK_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SHORT_CYCLES)
}

/// A fault that hits one session.
#[derive(Clone, Copy, Debug)]
enum OneFault {
    Close(u16),
    CloseNoCode,
    Drop,
    Reset,
    Silence,
    Reconnect,
    DisconnectConnect,
    Panic,
}

fn one_faults() -> Vec<OneFault> {
    let mut faults = vec![
        OneFault::Close(1000),
        OneFault::Close(1001),
        OneFault::Close(1011),
        OneFault::Close(1012),
        OneFault::CloseNoCode,
        OneFault::Drop,
        OneFault::Reset,
        OneFault::Silence,
        OneFault::Reconnect,
        OneFault::DisconnectConnect,
    ];
    if cfg!(feature = "fault-injection") {
        faults.push(OneFault::Panic);
    }
    faults
}

/// A fault that hits every session at once.
#[derive(Clone, Copy, Debug)]
enum AllFault {
    Restart,
    Outage,
    Refuse,
    NeverHello,
}

const ALL_FAULTS: [AllFault; 4] = [
    AllFault::Restart,
    AllFault::Outage,
    AllFault::Refuse,
    AllFault::NeverHello,
];

/// The daemon's descriptors, threads and resident memory.
#[derive(Clone, Copy, Debug)]
struct Usage {
    fds: usize,
    threads: usize,
    rss_kib: u64,
}

fn usage(pid: u32) -> Usage {
    let fds = open_fds(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Usage {
        fds,
        threads: field("Threads:") as usize,
        rss_kib: field("VmRSS:"),
    }
}

/// One driven session: its own loopback server, so that what that server
/// received is exactly what the daemon delivered for this session.
struct Lane {
    name: &'static str,
    server: Server,
    /// Messages the daemon accepted (`sent` or `queued`), in order, each
    /// with how it was accepted and after what (for a failure's story).
    accepted: Mutex<Vec<(u64, String)>>,
    /// `dropped` events of this session, counted by the subscriber.
    dropped: AtomicU64,
    /// Sequence number of the next message.
    next_seq: AtomicU64,
}

impl Lane {
    fn accepted_count(&self) -> u64 {
        self.accepted.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// Everything accepted so far has reached the server or been reported
    /// (polled: a `dropped` event changes nothing the server records).
    fn wait_delivered(&self) {
        let want = self.accepted_count();
        let deadline = Instant::now() + LIMIT;
        // The server's count includes the daemon's MCP replies (an
        // `initialize` result per connection, its tool listings): the
        // exact count, taken only once the cheap one is reached.
        let delivered = || {
            let texts = self.server.received_text_count() + self.dropped.load(SeqCst);
            texts >= want && texts - self.server.mcp_replies().len() as u64 >= want
        };
        while !delivered() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            delivered(),
            "{}: accepted {want}, delivered {} and dropped {} after {LIMIT:?}; missing: {:#?}",
            self.name,
            self.server.received_text_count(),
            self.dropped.load(SeqCst),
            self.missing()
        );
    }

    /// Sequence numbers the server received, in arrival order.
    fn received(&self) -> Vec<u64> {
        let prefix = format!("soak:{}:", self.name);
        self.server
            .received_texts()
            .iter()
            .filter_map(|t| {
                let message: Value = serde_json::from_str(&t.text).ok()?;
                message["text"].as_str()?.strip_prefix(&prefix)?.parse().ok()
            })
            .collect()
    }

    /// Accepted messages the server never received, each with its story
    /// and the server's timeline of the connection it was written to.
    fn missing(&self) -> Vec<String> {
        let received: std::collections::HashSet<u64> = self.received().into_iter().collect();
        let events = self.server.events();
        let accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        accepted
            .iter()
            .filter(|(seq, _)| !received.contains(seq))
            .map(|(seq, how)| {
                let conn = events
                    .iter()
                    .find(
                        |e| matches!(&e.kind, EventKind::HelloSent { session_id } if how.contains(session_id.as_str())),
                    )
                    .map(|e| e.conn);
                let timeline: Vec<String> = events
                    .iter()
                    .filter(|e| Some(e.conn) == conn)
                    .map(|e| format!("{:?} ago: {:?}", e.at.elapsed(), e.kind))
                    .collect();
                format!("{seq}: {how}; that connection: {timeline:?}")
            })
            .collect()
    }
}

/// What the test and the drivers share.
struct Soak {
    lanes: Vec<Lane>,
    socket: std::path::PathBuf,
    /// Drivers hold it for reading during a cycle; all-session faults and
    /// measurements take it for writing, between cycles.
    gate: RwLock<()>,
    target: u64,
    /// Cycles completed by the drivers, one session each.
    one_cycles: AtomicU64,
    /// Session losses of the all-session faults, each recovered.
    all_cycles: AtomicU64,
    /// Messages refused (`not_ready` while stopped on purpose): never accepted.
    refused: AtomicU64,
    failed: AtomicBool,
}

impl Soak {
    fn cycles(&self) -> u64 {
        self.one_cycles.load(SeqCst) + self.all_cycles.load(SeqCst)
    }

    fn servers(&self) -> impl Iterator<Item = &Server> {
        self.lanes.iter().map(|lane| &lane.server)
    }

    fn wait_all_delivered(&self) {
        for lane in &self.lanes {
            lane.wait_delivered();
        }
    }

    /// Send the lane's next message and note whether it was accepted.
    fn send(&self, control: &mut Control, lane: &Lane, context: &str) {
        let seq = lane.next_seq.fetch_add(1, SeqCst);
        let text = format!("soak:{}:{seq}", lane.name);
        let listen = Command::Listen {
            session: lane.name.into(),
            state: ListenState::Detect,
            mode: None,
            text: Some(text),
        };
        match control.result::<Delivery>(&listen) {
            Ok(delivery) => {
                let how = format!("{delivery:?} {context}");
                lane.accepted.lock().unwrap().push((seq, how));
            }
            Err(ClientError::Daemon(err)) => {
                assert_eq!(err.code(), Some(ErrorCode::NotReady), "{err}");
                self.refused.fetch_add(1, SeqCst);
            }
            Err(err) => panic!("listen: {err}"),
        }
    }
}

fn summary(control: &mut Control, session: &str) -> SessionSummary {
    control.session(session).expect("session")
}

/// Wait until `session` is ready on a connection other than `not_id`'s.
fn wait_ready(control: &mut Control, session: &str, not_id: Option<&str>) -> Option<String> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let s = summary(control, session);
        if s.state == SessionState::Ready && s.session_id.as_deref() != not_id {
            return s.session_id;
        }
        assert!(Instant::now() < deadline, "{session} not ready again: {s:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Wait until the daemon has seen the connection `id` go.
fn wait_gone(control: &mut Control, session: &str, id: Option<&str>) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let s = summary(control, session);
        if s.state != SessionState::Ready || s.session_id.as_deref() != id {
            return;
        }
        assert!(Instant::now() < deadline, "{session} never noticed the fault: {s:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Every listed session ready on a connection other than the one in `before`.
fn wait_all_ready(control: &mut Control, before: &HashMap<String, Option<String>>) -> HashMap<String, Option<String>> {
    let sessions = support::process::wait_sessions(control, "all ready", |sessions| {
        sessions
            .iter()
            .all(|s| s.state == SessionState::Ready && before.get(&s.name) != Some(&s.session_id))
    });
    sessions.into_iter().map(|s| (s.name, s.session_id)).collect()
}

/// One session's driver: cycles until the target is reached. Its control
/// connection is handed back, to stay open until the final measurement.
fn drive(soak: &Soak, index: usize) -> Control {
    let lane = &soak.lanes[index];
    let session = lane.name;
    let faults = one_faults();
    let mut control = control(&soak.socket);
    let mut next_fault = index;
    loop {
        let _cycle = soak.gate.read().unwrap();
        if soak.failed.load(SeqCst) || soak.cycles() >= soak.target {
            return control;
        }
        let id = wait_ready(&mut control, session, None);
        soak.send(&mut control, lane, &format!("on {id:?}"));
        // A frame written to a socket the server then closes is lost in any
        // WebSocket client (docs/control.md): let what was written arrive.
        lane.wait_delivered();

        let fault = faults[next_fault % faults.len()];
        next_fault += 1;
        match fault {
            OneFault::Close(code) => inject(lane, Fault::Close(code, "soak".into())),
            OneFault::CloseNoCode => inject(lane, Fault::CloseNoCode),
            OneFault::Drop => inject(lane, Fault::Drop),
            OneFault::Reset => inject(lane, Fault::Reset),
            OneFault::Silence => inject(lane, Fault::Silence),
            OneFault::Reconnect => request(
                &mut control,
                Command::Reconnect {
                    session: session.into(),
                },
            ),
            OneFault::DisconnectConnect => request(
                &mut control,
                Command::Disconnect {
                    session: session.into(),
                },
            ),
            OneFault::Panic => request(&mut control, panic_command(session)),
        }
        wait_gone(&mut control, session, id.as_deref());
        // Down (queued), stopped (refused) or already back (sent).
        soak.send(&mut control, lane, &format!("after {fault:?} of {id:?}"));
        if matches!(fault, OneFault::DisconnectConnect) {
            request(
                &mut control,
                Command::Connect {
                    session: session.into(),
                },
            );
        }
        wait_ready(&mut control, session, id.as_deref());
        soak.one_cycles.fetch_add(1, SeqCst);
    }
}

/// `command`, which must succeed.
fn request(control: &mut Control, command: Command) {
    if let Err(err) = control.result::<Value>(&command) {
        panic!("{}: {err}", command.name());
    }
}

#[cfg(feature = "fault-injection")]
fn panic_command(session: &str) -> Command {
    Command::Panic {
        session: session.into(),
    }
}

#[cfg(not(feature = "fault-injection"))]
fn panic_command(_: &str) -> Command {
    unreachable!("panics are injected only with the fault-injection feature")
}

fn inject(lane: &Lane, fault: Fault) {
    let device = format!("dev-{}", lane.name);
    let applied = lane.server.inject_where(Some(&device), fault.clone());
    assert!(applied.connections >= 1, "{fault:?} reached no connection of {device}");
}

/// A fault on every session at once; the drivers are parked meanwhile.
fn inject_all(soak: &Soak, control: &mut Control, fault: AllFault) {
    let _all = soak.gate.write().unwrap();
    soak.wait_all_delivered();
    let before = wait_all_ready(control, &HashMap::new());
    match fault {
        AllFault::Restart => {
            for server in soak.servers() {
                server.restart().unwrap();
            }
        }
        AllFault::Outage => {
            for server in soak.servers() {
                server.stop_listening();
                server.inject(Fault::Reset);
            }
            // Refused connection attempts, and messages held longer than
            // queue_ttl: each must be reported as dropped.
            std::thread::sleep(Duration::from_millis(30));
            for lane in &soak.lanes {
                soak.send(control, lane, "during an outage");
            }
            std::thread::sleep(QUEUE_TTL * 2);
            for server in soak.servers() {
                server.start_listening().unwrap();
            }
        }
        AllFault::Refuse => {
            for server in soak.servers() {
                server.set_mode(Mode::RefuseUpgrade(503));
                server.inject(Fault::Drop);
            }
            std::thread::sleep(Duration::from_millis(60));
            for server in soak.servers() {
                server.set_mode(Mode::Normal);
            }
        }
        AllFault::NeverHello => {
            for server in soak.servers() {
                server.set_mode(Mode::NeverHello);
                server.inject(Fault::Close(1000, "soak".into()));
            }
            std::thread::sleep(HELLO_TIMEOUT + Duration::from_millis(60));
            for server in soak.servers() {
                server.set_mode(Mode::Normal);
            }
        }
    }
    wait_all_ready(control, &before);
    soak.all_cycles.fetch_add(before.len() as u64, SeqCst);
}

/// The daemon's config: the drivers' sessions, each on its own server,
/// and `extra` (on the first server) with this device id when present.
fn config_text(socket: &Path, urls: &[String], extra: Option<&str>) -> String {
    let mut text = format!(
        "[daemon]\ncontrol_socket = \"{}\"\nlog_level = \"warn\"\n\
         [defaults]\nping_interval = \"100ms\"\nping_timeout = \"100ms\"\nhello_timeout = \"{}ms\"\n\
         connect_timeout = \"2s\"\nqueue_ttl = \"{}ms\"\n\
         [defaults.reconnect]\ninitial_delay = \"2ms\"\nmax_delay = \"20ms\"\nmax_attempts = 4000000000\n\
         revive_after = \"100ms\"\n",
        socket.display(),
        HELLO_TIMEOUT.as_millis(),
        QUEUE_TTL.as_millis()
    );
    for (name, url) in SESSIONS.iter().zip(urls) {
        text.push_str(&session_toml(name, url));
    }
    if let Some(device) = extra {
        text.push_str(&session_toml(EXTRA, &urls[0]).replace("dev-extra", device));
    }
    text
}

/// `dropped` events, counted by a subscriber that reads until the daemon goes.
fn count_dropped(soak: Arc<Soak>) -> std::thread::JoinHandle<()> {
    let mut events = control(&soak.socket).subscribe(None, false).expect("subscribed");
    std::thread::spawn(move || {
        // Bounded by the daemon's life: the stream ends when it stops.
        while let Ok(Some(event)) = events.next_event() {
            match event {
                EventLine::Dropped { session, count, .. } => {
                    if let Some(lane) = soak.lanes.iter().find(|l| session == l.name) {
                        lane.dropped.fetch_add(count, SeqCst);
                    }
                }
                EventLine::Lagged { skipped } => {
                    soak.failed.store(true, SeqCst);
                    panic!("the soak's subscriber lagged by {skipped} events");
                }
                _ => {}
            }
        }
    })
}

/// Losses by cause, summed over sessions, from the daemon's metrics.
fn losses_by_cause(control: &mut Control) -> BTreeMap<String, u64> {
    let text = control.result::<MetricsText>(&Command::Metrics).unwrap().text;
    let mut by_cause = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("wsvisor_session_losses_total{")) {
        let cause = line.split("cause=\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *by_cause.entry(cause.to_owned()).or_default() += n;
    }
    by_cause
}

/// Put `extra` back, wait for every session and every message, then measure.
fn settle(soak: &Soak, control: &mut Control, config: &Path, urls: &[String], pid: u32) -> Usage {
    let _all = soak.gate.write().unwrap();
    std::fs::write(config, config_text(&soak.socket, urls, Some("dev-extra"))).unwrap();
    control.result::<ReloadSummary>(&Command::Reload).unwrap();
    let all = wait_all_ready(control, &HashMap::new());
    assert_eq!(all.len(), SESSIONS.len() + 1, "{all:?}");
    soak.wait_all_delivered();
    // Let the sockets of the connections just closed finish closing.
    std::thread::sleep(Duration::from_millis(200));
    usage(pid)
}

#[test]
fn sessions_survive_thousands_of_mixed_losses_without_leaking() {
    let target = target_cycles();
    let warm_up = ((target as f64 * WARM_UP_SHARE) as u64).max(20);
    let lanes: Vec<Lane> = SESSIONS
        .iter()
        .map(|name| Lane {
            name,
            server: Server::start(ServerOptions::default()).unwrap(),
            accepted: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            next_seq: AtomicU64::new(0),
        })
        .collect();
    let urls: Vec<String> = lanes.iter().map(|lane| lane.server.url()).collect();
    let scratch = Scratch::new("soak");
    let socket = socket_of(&scratch);
    let config = scratch.0.join("config.toml");
    std::fs::write(&config, config_text(&socket, &urls, Some("dev-extra"))).unwrap();
    let log = scratch.0.join("stderr.log");
    // Without RUST_BACKTRACE: a captured backtrace keeps the binary's
    // debug info in memory (100+ MiB in a debug build), which is not the
    // daemon's own footprint.
    let daemon = Daemon::spawn(
        wsvisor(&["run", "--config", config.to_str().unwrap()])
            .env_remove("RUST_BACKTRACE")
            .stderr(std::fs::File::create(&log).unwrap()),
    )
    .logging_to(&log);
    let pid = daemon.id();
    let mut control = control(&socket);
    wait_all_ready(&mut control, &HashMap::new());

    let soak = Arc::new(Soak {
        lanes,
        socket: socket.clone(),
        gate: RwLock::new(()),
        target,
        one_cycles: AtomicU64::new(0),
        all_cycles: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        failed: AtomicBool::new(false),
    });
    let subscriber = count_dropped(soak.clone());
    let started = Instant::now();
    let drivers: Vec<_> = (0..SESSIONS.len())
        .map(|i| {
            let soak = soak.clone();
            std::thread::spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drive(&soak, i)));
                if result.is_err() {
                    soak.failed.store(true, SeqCst);
                }
                result
            })
        })
        .collect();

    let mut warm: Option<(Usage, u64)> = None;
    let mut tick = 0u64;
    let mut reloads = 0u64;
    let mut all_faults = 0u64;
    while !drivers.iter().all(|d| d.is_finished()) {
        std::thread::sleep(TICK);
        tick += 1;
        if soak.failed.load(SeqCst) {
            break;
        }
        // ctl traffic of a watching person or script.
        control.sessions().unwrap();
        control.result::<Status>(&Command::Status).unwrap();
        control.result::<MetricsText>(&Command::Metrics).unwrap();
        if warm.is_none() && soak.cycles() >= warm_up {
            let at_warm = settle(&soak, &mut control, &config, &urls, pid);
            warm = Some((at_warm, soak.cycles()));
            continue;
        }
        if tick % 5 == 0 {
            // Change `extra`, remove it, add it back: the drivers' sessions
            // are unchanged and must not notice.
            let text = match reloads % 3 {
                0 => config_text(&socket, &urls, Some(&format!("dev-extra-{reloads}"))),
                1 => config_text(&socket, &urls, None),
                _ => config_text(&socket, &urls, Some("dev-extra")),
            };
            std::fs::write(&config, text).unwrap();
            if let Err(err) = control.result::<ReloadSummary>(&Command::Reload) {
                panic!("reload: {err}");
            }
            reloads += 1;
        }
        if tick % 7 == 0 {
            inject_all(&soak, &mut control, ALL_FAULTS[all_faults as usize % ALL_FAULTS.len()]);
            all_faults += 1;
        }
    }
    let mut driver_controls = Vec::new();
    let driver_failures: Vec<String> = drivers
        .into_iter()
        .filter_map(|d| match d.join().unwrap() {
            Ok(control) => {
                driver_controls.push(control);
                None
            }
            Err(panic) => Some(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
        })
        .collect();
    assert!(driver_failures.is_empty(), "drivers failed: {driver_failures:#?}");
    assert!(!soak.failed.load(SeqCst), "the soak failed; see above");
    let took = started.elapsed();
    let end = settle(&soak, &mut control, &config, &urls, pid);
    let (warm, warm_cycles) = warm.expect("the run ended before warm-up");
    let (one_cycles, all_cycles) = (soak.one_cycles.load(SeqCst), soak.all_cycles.load(SeqCst));
    let cycles = one_cycles + all_cycles;
    let losses = losses_by_cause(&mut control);

    // Every accepted message arrived once, in order, or was reported.
    let (mut accepted_total, mut delivered_total, mut dropped_total) = (0, 0, 0);
    for lane in &soak.lanes {
        let session = lane.name;
        assert!(
            lane.server.received_text_count() < wsvisor_loopback::HISTORY_LIMIT as u64,
            "{session}: the server's history overflowed"
        );
        let got = lane.received();
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "{session}: out of order or twice: {got:?}"
        );
        let want: Vec<u64> = lane.accepted.lock().unwrap().iter().map(|(seq, _)| *seq).collect();
        assert!(
            got.iter().all(|seq| want.contains(seq)),
            "{session}: a message nobody accepted"
        );
        let reported = lane.dropped.load(SeqCst) as usize;
        assert_eq!(
            want.len() - got.len(),
            reported,
            "{session}: {} accepted, {} delivered, {reported} reported dropped; missing: {:#?}",
            want.len(),
            got.len(),
            lane.missing()
        );
        accepted_total += want.len();
        delivered_total += got.len();
        dropped_total += reported;
    }

    drop(driver_controls);
    daemon.stop();
    let _ = subscriber.join();

    eprintln!(
        "soak: {cycles} loss-and-recovery cycles in {took:.1?} ({one_cycles} of one session; {all_cycles} in \
         {all_faults} faults of all sessions at once), {reloads} reloads"
    );
    eprintln!("soak: losses by cause: {losses:?}");
    eprintln!(
        "soak: messages: {accepted_total} accepted, {delivered_total} delivered, {dropped_total} dropped and reported, \
         {} refused (stopped on purpose)",
        soak.refused.load(SeqCst)
    );
    eprintln!(
        "soak: after warm-up ({warm_cycles} cycles): {} fds, {} threads, {} KiB RSS; at the end: {} fds, {} threads, \
         {} KiB RSS",
        warm.fds, warm.threads, warm.rss_kib, end.fds, end.threads, end.rss_kib
    );
    assert!(
        end.fds <= warm.fds + FD_MARGIN,
        "descriptors grew from {} to {}",
        warm.fds,
        end.fds
    );
    assert!(
        end.threads <= warm.threads + THREAD_MARGIN,
        "threads grew from {} to {}",
        warm.threads,
        end.threads
    );
    assert!(
        end.rss_kib <= warm.rss_kib + RSS_MARGIN_KIB,
        "RSS grew from {} KiB to {} KiB",
        warm.rss_kib,
        end.rss_kib
    );
    let total_losses: u64 = losses.values().sum();
    assert!(
        total_losses >= cycles,
        "{total_losses} losses counted for {cycles} cycles: {losses:?}"
    );
}
