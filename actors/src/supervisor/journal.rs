//! The session lifecycle lines of CONTRACT §4, written in one place so
//! their wording stays exactly what `journalctl | grep` users rely on.
//! Every value a server chose (URLs, session ids, reasons, codes) is
//! redacted, escaped and capped by `logsafe` on its way in.
//!
//! Levels follow what the operator must do: a close the server meant
//! (1000/1001) and a deliberate stop are info; other losses are warnings;
//! giving up, a parked auth failure and a panic are errors; a refused
//! token that one OTA refresh repairs is one warning (`token refreshed`);
//! the failed probes of a parked session are info (the park was an error).

use std::time::Duration;

use log::Level;

use crate::events::DropReason;
use crate::logsafe::{quoted, redact_url, value};
use crate::loss::Cause;
use crate::messages::ConnectionEnded;

/// `session=NAME connected url=… session_id=… took_ms=N`
pub fn connected(name: &str, url: &str, session_id: Option<&str>, took: Duration) {
    log::info!(
        "session={name} connected url={} session_id={} took_ms={}",
        value(&redact_url(url)),
        value(session_id.unwrap_or("-")),
        took.as_millis()
    );
}

/// `session=NAME lost cause=… code=… reason="…" uptime_s=N` for a
/// connection that had been ready; `… reason="…" url=…` for one that never was.
pub fn lost(name: &str, ended: &ConnectionEnded, probing: bool, refreshing: bool) {
    let report = &ended.report;
    let level = match report.cause {
        _ if refreshing => Level::Debug,
        // Not a loss: the activation lines say what happens.
        Cause::ActivationRequired => Level::Debug,
        Cause::LocalStop => Level::Info,
        _ if probing => Level::Info,
        Cause::AuthFailed | Cause::Internal => Level::Error,
        _ if report.is_clean_close() && ended.ready_for.is_some() => Level::Info,
        _ => Level::Warn,
    };
    let code = report.code.map(|c| format!(" code={c}")).unwrap_or_default();
    let status = report.status.map(|s| format!(" status={s}")).unwrap_or_default();
    let whence = match (ended.ready_for, &ended.url) {
        (Some(up), _) => format!(" uptime_s={}", up.as_secs()),
        (None, Some(url)) => format!(" url={}", value(&redact_url(url))),
        (None, None) => String::new(),
    };
    log::log!(
        level,
        "session={name} lost cause={}{code}{status} reason={}{whence}",
        report.cause,
        quoted(&report.reason)
    );
}

/// `session=NAME connecting attempt=N` (debug): a connection attempt
/// starts now (0: the first of its burst). With the `stopping` line, it
/// shows that no attempt starts once the daemon took SIGTERM.
pub fn connecting(name: &str, attempt: u32) {
    log::debug!("session={name} connecting attempt={attempt}");
}

/// `session=NAME retrying attempt=N/MAX in_ms=N`: retry N of this burst.
pub fn retrying(name: &str, attempt: u32, max_attempts: u32, after: Duration) {
    log::info!(
        "session={name} retrying attempt={attempt}/{max_attempts} in_ms={}",
        after.as_millis()
    );
}

/// `session=NAME activation required code=… message="…" confirm_every_ms=N; enter …`
/// for a code first seen, `session=NAME new activation code=…` for one
/// that replaced another, and a debug line for the same code asked again.
/// `confirm_every`: v2 confirms to `/activate` at that pace; else the
/// OTA endpoint is asked again in `after`.
pub fn activation(
    name: &str,
    report: &crate::loss::LossReport,
    previous_code: Option<&str>,
    confirm_every: Option<Duration>,
    after: Duration,
) {
    let Some(ask) = &report.activation else { return };
    let how = match confirm_every {
        Some(every) => format!("confirm_every_ms={}", every.as_millis()),
        None => format!("retry_in_ms={}", after.as_millis()),
    };
    let (code, message) = (value(&ask.code), quoted(&ask.message));
    match previous_code {
        Some(previous) if previous == ask.code => {
            log::debug!("session={name} activation still pending code={code} {how}")
        }
        Some(_) => log::warn!(
            "session={name} new activation code={code} message={message} {how}; the previous code expired: enter this one in the server's console"
        ),
        None => log::warn!(
            "session={name} activation required code={code} message={message} {how}; enter the code in the server's console"
        ),
    }
}

/// `session=NAME activation refused status=401 reason="…"; asking … again in_ms=N`:
/// an error the first time, info while the same code keeps being refused
/// (the state says it all along).
pub fn activation_refused(name: &str, report: &crate::loss::LossReport, after: Duration, again: bool) {
    let status = report.status.map(|s| format!(" status={s}")).unwrap_or_default();
    let hint = match report.status {
        Some(401 | 403) => "the server did not accept this device's HMAC key (sent as application.elf_sha256)",
        _ => "the server handed out a code that was already expired",
    };
    let level = if again { Level::Info } else { Level::Error };
    log::log!(
        level,
        "session={name} activation refused{status} reason={}; {hint}; asking the OTA endpoint again in_ms={}",
        quoted(&report.reason),
        after.as_millis()
    );
}

/// `session=NAME activated`: the user entered the code.
pub fn activated(name: &str) {
    log::info!("session={name} activated: the server bound this device; asking the OTA endpoint for the WebSocket");
}

/// `session=NAME activation code expired`: a fresh one is asked for.
pub fn code_expired(name: &str) {
    log::info!("session={name} activation code expired; asking the OTA endpoint for a new one");
}

/// `session=NAME ota offers only mqtt`: what to ask the server's operator for.
pub fn only_mqtt(name: &str, endpoint: Option<&str>, url_configured: bool) {
    let endpoint = endpoint.map(|e| format!(" endpoint={}", value(e))).unwrap_or_default();
    let then = if url_configured {
        "connecting to the configured url"
    } else {
        "ask the server's operator for a `websocket` section in the OTA answer (xiaozhi-esp32-server: leave server.mqtt_gateway empty), or set `url`"
    };
    log::warn!("session={name} ota offers only mqtt{endpoint}; wsvisor speaks WebSocket: {then}");
}

/// `session=NAME gave up attempts=N last_cause=…; probing every 1m`
pub fn gave_up(name: &str, attempts: u32, last_cause: Cause, revive_after: Option<Duration>, daemon_exits: bool) {
    let next = match revive_after {
        Some(every) if daemon_exits => format!(
            "probing every {} while another session runs; the daemon exits once every session has given up (on_give_up = \"exit\")",
            humantime::format_duration(every)
        ),
        Some(every) => format!("probing every {}", humantime::format_duration(every)),
        None if daemon_exits => {
            "not probing (revive_after = \"0s\"); the daemon exits once every session has given up (on_give_up = \"exit\")"
                .to_owned()
        }
        None => format!("not probing (revive_after = \"0s\"); run `wsvisor ctl connect {name}` after fixing the cause"),
    };
    log::error!("session={name} gave up attempts={attempts} last_cause={last_cause}; {next}");
}

/// `session=NAME probe failed cause=… next_probe_in_s=N`
pub fn probe_failed(name: &str, cause: Cause, probe_in: Option<Duration>) {
    match probe_in {
        Some(after) => log::info!(
            "session={name} probe failed cause={cause} next_probe_in_s={}",
            after.as_secs()
        ),
        None => log::info!("session={name} probe failed cause={cause}; no more probes"),
    }
}

/// `session=NAME probing`: one attempt of a failed session.
pub fn probing(name: &str) {
    log::info!("session={name} probing (failed, one attempt every revive_after)");
}

/// `session=NAME token refreshed`: a refusal repaired by the OTA endpoint.
pub fn token_refreshed(name: &str, configured_token_refused: bool) {
    if configured_token_refused {
        log::warn!(
            "session={name} token refreshed: the server refused the configured token; using the token from the OTA endpoint"
        );
    } else {
        log::warn!(
            "session={name} token refreshed: the server refused the old token; the OTA endpoint issued a new one"
        );
    }
}

/// `session=NAME dropped count=N why=…`
pub fn dropped(name: &str, count: u64, why: DropReason) {
    log::warn!("session={name} dropped count={count} why={why}");
}
