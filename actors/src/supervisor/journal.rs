//! The session lifecycle lines of CONTRACT §4, written in one place so
//! their wording stays exactly what `journalctl | grep` users rely on.

use std::time::Duration;

use log::Level;

use crate::events::DropReason;
use crate::loss::{Cause, LossReport};

/// `session=NAME connected url=… session_id=… took_ms=N`
pub fn connected(name: &str, url: &str, session_id: Option<&str>, took: Duration) {
    let session_id = session_id.unwrap_or("-");
    log::info!(
        "session={name} connected url={url} session_id={session_id} took_ms={}",
        took.as_millis()
    );
}

/// `session=NAME lost cause=… code=… reason="…" uptime_s=N`
pub fn lost(name: &str, report: &LossReport, ready_for: Option<Duration>) {
    let level = match report.cause {
        Cause::LocalStop => Level::Info,
        Cause::AuthFailed | Cause::Internal => Level::Error,
        _ if report.is_clean_close() => Level::Info,
        _ => Level::Warn,
    };
    let code = report.code.map(|c| format!(" code={c}")).unwrap_or_default();
    let status = report.status.map(|s| format!(" status={s}")).unwrap_or_default();
    let uptime = ready_for.unwrap_or_default().as_secs();
    log::log!(
        level,
        "session={name} lost cause={}{code}{status} reason={:?} uptime_s={uptime}",
        report.cause,
        report.reason
    );
}

/// `session=NAME retrying attempt=N/MAX in_ms=N`
pub fn retrying(name: &str, attempt: u32, max_attempts: u32, after: Duration) {
    log::info!(
        "session={name} retrying attempt={attempt}/{max_attempts} in_ms={}",
        after.as_millis()
    );
}

/// `session=NAME activation required code=… message="…" retry_in_ms=N`
pub fn activation(name: &str, report: &LossReport, after: Duration) {
    let code = report.activation_code.as_deref().unwrap_or("-");
    log::warn!(
        "session={name} activation required code={code} message={:?} retry_in_ms={}; enter the code in the server's console",
        report.reason,
        after.as_millis()
    );
}

/// `session=NAME gave up attempts=N last_cause=…; will revive in 10m`
pub fn gave_up(name: &str, attempts: u32, last_cause: Cause, revive_after: Option<Duration>) {
    let revive = match revive_after {
        Some(after) => format!("will revive in {}", humantime::format_duration(after)),
        None => "will not revive; use `wsvisor ctl connect` after fixing the cause".to_owned(),
    };
    log::error!("session={name} gave up attempts={attempts} last_cause={last_cause}; {revive}");
}

/// `session=NAME reviving`
pub fn reviving(name: &str) {
    log::info!("session={name} reviving after revive_after");
}

/// `session=NAME dropped count=N why=…`
pub fn dropped(name: &str, count: u64, why: DropReason) {
    log::warn!("session={name} dropped count={count} why={}", why.as_str());
}
