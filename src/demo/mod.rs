//! `wsvisor demo` (CONTRACT §1): wsvisor at work on a machine with no
//! xiaozhi server. It starts the loopback xiaozhi server (wsvisor-loopback)
//! in this process, the daemon as a child process of this same binary with a
//! throw-away config and control socket, and then, watching the daemon only
//! through its control socket, injects a fault every few seconds, sends a
//! few `listen detect` messages that the server echoes as `stt`, shows the
//! sessions live, and ends with a summary. Ctrl-C (or SIGTERM) ends it early
//! the same way: daemon stopped with SIGTERM, files removed, summary printed.
//!
//! Layout of the module:
//! - `setup`: the scratch directory and the daemon's config;
//! - `daemon`: the child process;
//! - the control socket through the one control client
//!   ([`crate::control_client`]): one connection for requests, one
//!   subscribed for events;
//! - `faults`: the fault kinds, how each is done, the schedule;
//! - `tracker`: states, faults and recoveries as the events tell them;
//! - `view`: the live table or plain lines, and the summary.
//!
//! This file owns the order of things: set up, wait for every session,
//! run the schedule, wind down.

mod daemon;
mod faults;
mod setup;
mod tracker;
mod verdict;
mod view;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use wsvisor_actors::state::SessionState;
use wsvisor_loopback::{Server, ServerOptions};

use crate::control_client::{Client, ClientError, Subscription};
use crate::exit;
use crate::protocol::{Command, Delivery, EventLine, ListenState};
use daemon::DaemonProcess;
use faults::{FaultKind, Schedule};
use setup::Scratch;
use tracker::{Note, Tracker};
use view::{Ending, View};

/// Every session must be ready this soon after the daemon starts.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);

/// After the run, how long the last fault may still take to be repaired.
const REPAIR_GRACE: Duration = Duration::from_secs(10);

/// SIGTERM's grace before the daemon is killed; it needs 2 s at most.
const DAEMON_STOP_GRACE: Duration = Duration::from_secs(3);

/// A response that takes longer than this means the daemon is wedged.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the loop looks at the clock (fault and message due times).
const TICK: Duration = Duration::from_millis(50);

/// How often the live table is redrawn.
const REDRAW: Duration = Duration::from_millis(100);

/// Arguments of `wsvisor demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to inject faults before the summary, e.g. `30s`, `2m`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How many sessions the daemon keeps alive (1 to 50).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub sessions: u16,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{e} (try 30s or 2m)"))?;
    if d < Duration::from_secs(2) || d > Duration::from_secs(3600) {
        return Err("must be between 2s and 1h".to_owned());
    }
    Ok(d)
}

/// Run the demo; the process exit code.
pub fn run(args: DemoArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("wsvisor demo: cannot start a runtime: {err}");
            return exit::FAILURE;
        }
    };
    runtime.block_on(demo(args))
}

/// Ctrl-C and SIGTERM, both meaning "stop now, cleanly".
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// How the part with the daemon running ended.
enum Outcome {
    /// The run (and the repair grace) is over.
    Finished,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// Something broke: the daemon died, did not start, or stopped answering.
    Failed(String),
}

/// Everything the run needs, so the steps below can be methods.
struct Demo {
    names: Vec<String>,
    server: Arc<Server>,
    daemon: DaemonProcess,
    view: View,
    tracker: Tracker,
    signals: StopSignals,
    /// When the daemon was started.
    spawned: Instant,
    /// When every session was first ready: the demo's clock starts there.
    clock: Option<Instant>,
}

async fn demo(args: DemoArgs) -> i32 {
    // First, so that a Ctrl-C during set-up is ours to handle too.
    let signals = match StopSignals::install() {
        Ok(signals) => signals,
        Err(err) => return fail_early(&format!("cannot install signal handlers: {err}")),
    };
    let names = setup::session_names(usize::from(args.sessions));
    let scratch = match Scratch::create() {
        Ok(scratch) => scratch,
        Err(err) => return fail_early(&format!("cannot create a temporary directory: {err}")),
    };
    let server = match Server::start(ServerOptions::default()) {
        Ok(server) => Arc::new(server),
        Err(err) => return fail_early(&format!("cannot start the loopback server on 127.0.0.1: {err}")),
    };
    let config = setup::config_text(&scratch.socket(), &server.url(), &names);
    if let Err(err) = std::fs::write(scratch.config(), config) {
        return fail_early(&format!("cannot write {}: {err}", scratch.config().display()));
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return fail_early(&format!("cannot find this program's own path: {err}")),
    };
    let daemon = match DaemonProcess::spawn(&exe, &scratch.config(), &scratch.log()) {
        Ok(daemon) => daemon,
        Err(err) => return fail_early(&format!("cannot start the daemon ({}): {err}", exe.display())),
    };
    let now = Instant::now();
    let mut demo = Demo {
        tracker: Tracker::new(&names, now),
        view: View::new(std::io::stdout().is_terminal(), now),
        names,
        server,
        daemon,
        signals,
        spawned: now,
        clock: None,
    };
    demo.introduce(&args, &scratch);
    let outcome = demo.run(&args, &scratch).await;

    let started = demo.clock.unwrap_or(now);
    let ran_for = Instant::now().saturating_duration_since(started);
    let stopped = demo.daemon.stop(DAEMON_STOP_GRACE);
    let (daemon_words, daemon_ok) = verdict::daemon_stop(&stopped, DAEMON_STOP_GRACE);
    let log_tail = if daemon_ok && matches!(outcome, Outcome::Finished | Outcome::Interrupted) {
        Vec::new()
    } else {
        scratch.log_tail(15)
    };
    // The server's connections close with it; then the scratch files go.
    drop(demo.server);
    drop(scratch);

    let interrupted = matches!(outcome, Outcome::Interrupted);
    let ending = Ending {
        ran_for,
        interrupted,
        daemon: daemon_words,
    };
    demo.view.say(&view::summary(&demo.tracker, demo.names.len(), &ending));
    let (recovered, hits) = demo.tracker.recovery_counts();
    let verdict = verdict::decide(&verdict::Facts {
        broke_off: match &outcome {
            Outcome::Failed(why) => Some(why),
            Outcome::Finished | Outcome::Interrupted => None,
        },
        interrupted,
        hits,
        recovered,
        unrepaired: demo.tracker.unrepaired(),
        repair_grace: REPAIR_GRACE,
        daemon_ok,
    });
    for complaint in &verdict.complaints {
        eprintln!("wsvisor demo: {complaint}");
    }
    if !log_tail.is_empty() {
        eprintln!("wsvisor demo: the daemon's last log lines:");
        for line in log_tail {
            eprintln!("  {line}");
        }
    }
    verdict.code
}

/// The next event; `None` when the daemon closed the connection. Lines
/// that are not events this demo knows are skipped.
async fn next_event(events: &mut Subscription) -> Option<EventLine> {
    loop {
        match events.next_event().await {
            Ok(event) => return event,
            Err(ClientError::Unreadable { .. }) => continue,
            Err(_) => return None,
        }
    }
}

fn fail_early(why: &str) -> i32 {
    eprintln!("wsvisor demo: {why}");
    exit::FAILURE
}

impl Demo {
    fn introduce(&mut self, args: &DemoArgs, scratch: &Scratch) {
        let interval = Schedule::interval_for(args.duration);
        self.view.say(&format!(
            "wsvisor demo: {} sessions, a fault every {}s for {}s; Ctrl-C stops it.\n\
             \x20 server   {} (loopback, in this process)\n\
             \x20 daemon   pid {}, heartbeat 1s + 1s, first retry 300ms ±50%\n\
             \x20 files    {} (config, log, control socket)\n\
             \x20 try      wsvisor ctl --socket {} sessions\n",
            self.names.len(),
            interval.as_secs(),
            args.duration.as_secs(),
            self.server.url(),
            self.daemon.pid(),
            scratch.config().parent().unwrap_or(&scratch.config()).display(),
            scratch.socket().display(),
        ));
    }

    async fn run(&mut self, args: &DemoArgs, scratch: &Scratch) -> Outcome {
        // The daemon creates its socket once its tree is up.
        let connected = tokio::select! {
            () = self.signals.recv() => return Outcome::Interrupted,
            connected = async {
                let requests = Client::connect_within(&scratch.socket(), STARTUP_LIMIT).await?;
                let events = Client::connect_within(&scratch.socket(), STARTUP_LIMIT).await?;
                Ok::<_, ClientError>((requests, events))
            } => connected,
        };
        let (mut requests, mut events) = match connected {
            Ok(pair) => pair,
            Err(err) => {
                return Outcome::Failed(format!(
                    "the daemon's control socket {} did not answer: {err}",
                    scratch.socket().display()
                ))
            }
        };
        requests.set_timeout(Some(RESPONSE_TIMEOUT));
        events.set_timeout(Some(RESPONSE_TIMEOUT));
        let mut events = match events.subscribe(None, false).await {
            Ok(events) => events,
            Err(err) => return Outcome::Failed(format!("subscribe failed: {err}")),
        };
        match requests.sessions().await {
            Ok(sessions) => self
                .tracker
                .load_states(sessions.iter().map(|s| (s.name.as_str(), s.state)), Instant::now()),
            Err(err) => return Outcome::Failed(format!("sessions failed: {err}")),
        }
        match self.wait_until_ready(&mut events).await {
            Outcome::Finished => {}
            other => return other,
        }
        self.run_faults(args, &mut requests, &mut events).await
    }

    /// Shows events until every session is ready.
    async fn wait_until_ready(&mut self, events: &mut Subscription) -> Outcome {
        let deadline = tokio::time::Instant::now() + STARTUP_LIMIT;
        while !self.tracker.all_ready() {
            self.draw("starting: waiting for every session to be ready");
            tokio::select! {
                () = self.signals.recv() => return Outcome::Interrupted,
                () = tokio::time::sleep_until(deadline) => {
                    return Outcome::Failed(format!(
                        "not every session was ready within {}s",
                        STARTUP_LIMIT.as_secs()
                    ))
                }
                event = next_event(events) => match event {
                    Some(event) => {
                        self.on_event(&event);
                    }
                    None => return Outcome::Failed("the daemon closed its control connection".to_owned()),
                },
            }
        }
        let now = Instant::now();
        self.clock = Some(now);
        self.view.restart_clock(now);
        self.view.line(
            now,
            &format!(
                "all {} sessions ready, {} after the daemon started",
                self.names.len(),
                view::millis(now.saturating_duration_since(self.spawned))
            ),
        );
        Outcome::Finished
    }

    /// The schedule: faults and messages until the run is over, then the
    /// repair of the last fault.
    async fn run_faults(&mut self, args: &DemoArgs, requests: &mut Client, events: &mut Subscription) -> Outcome {
        let start = self.clock.unwrap_or_else(Instant::now);
        let end = start + args.duration;
        let mut schedule = Schedule::new(args.duration);
        // Messages go out between faults, so their echoes are not caught in one.
        let message_every = schedule.interval() / 2;
        let mut next_message = start + message_every / 2;
        let mut messages = 0usize;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(FaultKind, usize)>();
        let mut fault_running = false;
        let mut grace_until: Option<Instant> = None;
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_draw = Instant::now();
        loop {
            let now = Instant::now();
            if let Some(status) = self.daemon.exited() {
                return Outcome::Failed(format!("the daemon exited during the demo: {status}"));
            }
            match grace_until {
                None if now >= end => {
                    if !fault_running && self.tracker.all_repaired() {
                        return Outcome::Finished;
                    }
                    self.view
                        .line(now, "time is up; waiting for the last fault to be repaired");
                    grace_until = Some(now + REPAIR_GRACE);
                }
                None => {
                    let due = schedule.next_due().map(|d| start + d);
                    if !fault_running && self.tracker.all_repaired() && due.is_some_and(|due| now >= due) {
                        self.start_fault(&mut schedule, start, &done_tx);
                        fault_running = true;
                    }
                    if now >= next_message {
                        next_message += message_every;
                        self.send_message(requests, &mut messages).await;
                    }
                }
                Some(until) => {
                    if (!fault_running && self.tracker.all_repaired()) || now >= until {
                        return Outcome::Finished;
                    }
                }
            }
            if now.saturating_duration_since(last_draw) >= REDRAW {
                last_draw = now;
                let status = self.status_line(args, start, &schedule, fault_running);
                self.draw(&status);
            }
            tokio::select! {
                () = self.signals.recv() => return Outcome::Interrupted,
                event = next_event(events) => match event {
                    Some(event) => {
                        let note = self.on_event(&event);
                        if note.is_some() && self.tracker.all_repaired() {
                            schedule.repaired(Instant::now().saturating_duration_since(start));
                        }
                    }
                    None => return Outcome::Failed("the daemon closed its control connection".to_owned()),
                },
                Some((kind, reached)) = done_rx.recv() => {
                    fault_running = false;
                    if reached == 0 {
                        self.tracker.fault_missed();
                        self.view.line(Instant::now(), &format!("the {} reached no connection; not counted", kind.label()));
                    } else if kind == FaultKind::Outage {
                        self.view.line(Instant::now(), "server listening again");
                    }
                }
                _ = ticker.tick() => {}
            }
        }
    }

    fn start_fault(
        &mut self,
        schedule: &mut Schedule,
        start: Instant,
        done: &mpsc::UnboundedSender<(FaultKind, usize)>,
    ) {
        let kind = schedule.next_kind();
        let targets: Vec<String> = if kind.hits_everyone() {
            self.names.clone()
        } else {
            vec![self.names[schedule.next_target(self.names.len())].clone()]
        };
        let device = (!kind.hits_everyone()).then(|| setup::device_id(&targets[0]));
        let now = Instant::now();
        self.tracker.fault_started(kind, &targets, now);
        schedule.started(now.saturating_duration_since(start));
        let whom = if kind.hits_everyone() {
            "every session".to_owned()
        } else {
            targets[0].clone()
        };
        self.view
            .line(now, &format!("FAULT {} on {whom}: {}", kind.label(), kind.describe()));
        // The server's calls block (an outage lasts seconds); the events
        // must keep flowing meanwhile.
        let server = self.server.clone();
        let done = done.clone();
        tokio::task::spawn_blocking(move || {
            let reached = kind.apply(&server, device.as_deref());
            let _ = done.send((kind, reached));
        });
    }

    /// A `listen detect` to a ready session that no fault is acting on; the
    /// loopback server answers with an `stt` of the same text.
    async fn send_message(&mut self, requests: &mut Client, count: &mut usize) {
        let candidates = self.tracker.quiet_ready();
        if candidates.is_empty() {
            return;
        }
        let session = candidates[*count % candidates.len()].clone();
        *count += 1;
        let text = format!("你好小智 #{count}");
        let listen = Command::Listen {
            session: session.clone(),
            state: ListenState::Detect,
            mode: None,
            text: Some(text.clone()),
        };
        let now = Instant::now();
        match requests.result::<Delivery>(&listen).await {
            Ok(_) => {
                self.tracker.messages_sent += 1;
                self.view.line(now, &format!("{session} <- listen detect \"{text}\""));
            }
            Err(err) => self.view.line(now, &format!("{session}: listen refused: {err}")),
        }
    }

    fn on_event(&mut self, event: &EventLine) -> Option<Note> {
        let now = Instant::now();
        let note = self.tracker.on_event(event, now);
        match event {
            // `handshaking` follows `connecting` within a millisecond on
            // loopback; the table shows it, the log would only repeat itself.
            EventLine::State(state) if state.state != SessionState::Handshaking => {
                self.view.line(now, &view::describe_state(state, note.as_ref()))
            }
            EventLine::Message { session, message } => {
                self.view.line(
                    now,
                    &format!(
                        "{session} -> {} \"{}\"",
                        message["type"].as_str().unwrap_or("message"),
                        message["text"].as_str().unwrap_or("")
                    ),
                );
            }
            EventLine::Lagged { skipped } => self.view.line(now, &format!("missed {skipped} events (lagged)")),
            _ => {}
        }
        note
    }

    fn status_line(&self, args: &DemoArgs, start: Instant, schedule: &Schedule, fault_running: bool) -> String {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(start).min(args.duration);
        let next = match schedule.next_due() {
            _ if fault_running || !self.tracker.all_repaired() => "repairing".to_owned(),
            Some(due) => {
                let kind = schedule.next_kind();
                let whom = if kind.hits_everyone() {
                    "everyone".to_owned()
                } else {
                    self.names[schedule.next_target(self.names.len())].clone()
                };
                let left = (start + due).saturating_duration_since(now);
                format!("next: {} on {whom} in {:.1}s", kind.label(), left.as_secs_f64())
            }
            None => "no more faults".to_owned(),
        };
        format!(
            "wsvisor demo  {:.0}s of {}s  {next}  (Ctrl-C stops)",
            elapsed.as_secs_f64(),
            args.duration.as_secs()
        )
    }

    fn draw(&mut self, status: &str) {
        if self.view.is_live() {
            self.view.draw(&self.tracker, Instant::now(), status);
        }
    }
}
