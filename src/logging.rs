//! Log output: `key=value` lines through `log` + env_logger. Under systemd
//! (stderr is the journal, as `JOURNAL_STREAM` tells) each line carries a
//! `<N>` syslog priority prefix and no timestamp, since journald stamps
//! and ranks lines itself; on a terminal lines get an RFC 3339 timestamp.

use std::io::Write;
use std::os::unix::fs::MetadataExt;

use env_logger::{Builder, Env};
use log::{Level, LevelFilter};

/// Install the logger. `RUST_LOG`, when set, wins over `level`.
pub fn init(level: LevelFilter) {
    let mut builder = Builder::new();
    // Our own crates (wsvisor, wsvisor_actors) at the configured level; the
    // libraries below us only when something is wrong.
    builder.filter_level(LevelFilter::Warn).filter_module("wsvisor", level);
    builder.parse_env(Env::new().filter("RUST_LOG"));
    if stderr_is_journal() {
        builder.format(|out, record| writeln!(out, "<{}>{}", syslog_priority(record.level()), record.args()));
    } else {
        builder.format(|out, record| {
            let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
            writeln!(out, "{now} {:5} {}", record.level(), record.args())
        });
    }
    builder.target(env_logger::Target::Stderr);
    // A second init (tests) keeps the first logger.
    let _ = builder.try_init();
}

/// Print an error that stops the daemon before the logger exists (a
/// config that does not load): at error priority under systemd, so that
/// `journalctl -p err` shows why the start failed; as the bare line
/// elsewhere, the same `file:line:col: message` as `wsvisor check`.
pub fn startup_error(message: &str) {
    if stderr_is_journal() {
        eprintln!("<{}>{message}", syslog_priority(Level::Error));
    } else {
        eprintln!("{message}");
    }
}

/// sd-daemon(3) priorities.
fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// True when `JOURNAL_STREAM` names the device and inode of our stderr
/// (systemd.exec(5)): then, and only then, stderr goes to the journal.
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}
