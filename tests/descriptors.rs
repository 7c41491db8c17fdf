//! Running out of descriptors (issue 10, item 7): a daemon with a low
//! open-file limit reloaded from 1 to many sessions starts only what fits,
//! says what it refused (reload result and log), keeps answering its
//! control socket, and neither spins nor floods its log; when control
//! clients themselves take every descriptor, accepting backs off (bounded
//! CPU and log lines) and recovers once they are gone.

mod support;

use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use support::process::{
    config_toml, control, read_all, session_toml, socket_of, wait_sessions, wsvisor, Daemon, Scratch,
};
use wsvisor::protocol::{Command, ReloadSummary, SessionState, Status};
use wsvisor_loopback::{Server, ServerOptions};

/// The daemon's hard and soft open-file limit.
const NOFILE: u64 = 320;
/// What the daemon keeps for everything but sessions (src/limits.rs).
const RESERVE: u64 = 256;
const ROOM: usize = (NOFILE - RESERVE) as usize;
const WANTED: usize = 150;

/// User + system CPU time of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which ends with the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap_or(100) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// `ctl status` as a fresh client: how long the answer took.
fn status_took(socket: &Path) -> Duration {
    let t0 = Instant::now();
    let output = wsvisor(&["ctl", "--socket", socket.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ctl status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    t0.elapsed()
}

fn lines_with(log: &Path, needle: &str) -> usize {
    read_all(log).lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_reload_past_the_open_file_limit_refuses_what_does_not_fit_and_the_socket_keeps_answering() {
    // This process holds the server's end of every session and many clients.
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    rlimit::setrlimit(rlimit::Resource::NOFILE, hard.min(65_536), hard).unwrap();
    let server = Server::start(ServerOptions::default()).unwrap();
    let url = server.url();
    let scratch = Scratch::new("descriptors");
    let config = scratch.write("config.toml", &config_toml(&scratch, "", &[("s000", &url)]));
    let log = scratch.path("stderr.log");
    let mut command = wsvisor(&["run", "--config", config.to_str().unwrap()]);
    command.stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        command.pre_exec(|| rlimit::setrlimit(rlimit::Resource::NOFILE, NOFILE, NOFILE));
    }
    let daemon = Daemon::spawn(&mut command).logging_to(&log);
    let socket = socket_of(&scratch);
    let mut client = control(&socket);
    wait_sessions(&mut client, "s000 ready", |s| {
        s.len() == 1 && s[0].state == SessionState::Ready
    });

    // 1 -> 150 sessions with room for 64.
    let mut text = config_toml(&scratch, "", &[]);
    let names: Vec<String> = (0..WANTED).map(|i| format!("s{i:03}")).collect();
    for name in &names {
        text.push_str(&session_toml(name, &url));
    }
    std::fs::write(&config, text).unwrap();
    let summary: ReloadSummary = client.result(&Command::Reload).unwrap();
    assert_eq!(summary.unchanged, 1);
    assert_eq!(
        summary.added,
        names[1..ROOM].to_vec(),
        "the first that fit, in file order"
    );
    assert_eq!(
        summary.failed.keys().cloned().collect::<Vec<_>>(),
        names[ROOM..].to_vec()
    );
    let why = &summary.failed[&names[ROOM]];
    assert!(
        why.starts_with(&format!(
            "add: not started: the open-file limit is {NOFILE}: room for {ROOM} sessions"
        )),
        "{why}"
    );
    let said = read_all(&log);
    assert!(
        said.contains(&format!("reload: not starting {} new sessions", WANTED - ROOM)),
        "{said}"
    );
    let ready = wait_sessions(&mut client, "every admitted session ready", |s| {
        s.len() == ROOM && s.iter().all(|s| s.state == SessionState::Ready)
    });
    assert_eq!(ready.len(), ROOM);

    // The control socket answers at once, and the daemon is idle.
    let cpu_before = cpu_time(daemon.id());
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        worst = worst.max(status_took(&socket));
        std::thread::sleep(Duration::from_millis(100));
    }
    let idle_cpu = cpu_time(daemon.id()) - cpu_before;
    eprintln!("with {ROOM} sessions at a limit of {NOFILE}: slowest ctl status {worst:?}, daemon CPU {idle_cpu:?} over ~1.5 s");
    assert!(worst < Duration::from_secs(1), "ctl status took {worst:?}");
    assert!(
        idle_cpu < Duration::from_millis(500),
        "the daemon used {idle_cpu:?} of CPU"
    );
    assert_eq!(lines_with(&log, "Too many open files"), 0, "{}", read_all(&log));

    // A second reload of the same file refuses the same sessions again, and
    // changes nothing else.
    let again: ReloadSummary = client.result(&Command::Reload).unwrap();
    assert_eq!(
        (again.added.len(), again.failed.len(), again.unchanged),
        (0, WANTED - ROOM, ROOM)
    );

    // Now control clients take every descriptor left.
    let mut hogs = Vec::new();
    for _ in 0..NOFILE {
        hogs.push(UnixStream::connect(&socket).unwrap());
    }
    std::thread::sleep(Duration::from_millis(300));
    let cpu_before = cpu_time(daemon.id());
    let lines_before = read_all(&log).lines().count();
    std::thread::sleep(Duration::from_secs(2));
    let busy_cpu = cpu_time(daemon.id()) - cpu_before;
    let new_lines = read_all(&log).lines().count() - lines_before;
    eprintln!("out of descriptors for 2 s: daemon CPU {busy_cpu:?}, {new_lines} new log lines");
    assert!(
        lines_with(&log, "out of descriptors") >= 1,
        "descriptors never ran out: {}",
        read_all(&log)
    );
    assert!(
        busy_cpu < Duration::from_millis(300),
        "the daemon spun: {busy_cpu:?} of CPU in 2 s"
    );
    assert!(new_lines <= 2, "{new_lines} log lines in 2 s: {}", read_all(&log));
    // The sessions were not disturbed by it.
    let sessions = client.sessions().unwrap();
    assert!(sessions.iter().all(|s| s.state == SessionState::Ready));
    drop(hogs);
    // Once the clients are gone, a new one is answered within the backoff's bound.
    let deadline = Instant::now() + Duration::from_secs(3);
    let recovered = loop {
        let took = status_took(&socket);
        if took < Duration::from_millis(1500) {
            break took;
        }
        assert!(
            Instant::now() < deadline,
            "ctl status still slow after the clients left: {took:?}"
        );
    };
    eprintln!("after the clients left: ctl status in {recovered:?}");
    let status: Status = client.result(&Command::Status).unwrap();
    assert_eq!(status.sessions.total, ROOM as u64);
    daemon.stop();
}
