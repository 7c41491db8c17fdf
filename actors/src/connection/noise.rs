//! The log lines a server can trigger once per frame, each kind rate
//! limited per session (the limits outlive a connection, so reconnecting
//! does not reset them): the first of a kind is always written, then a
//! few per window, then one `suppressed N similar lines` summary.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use log::Level;
use strum::{EnumCount, IntoStaticStr};
use tokio::time::Instant;

use crate::ratelimit::{LineLimiter, Verdict};

/// Lines of the same kind written per window.
const BURST: u32 = 5;
/// The window.
const WINDOW: Duration = Duration::from_secs(60);

/// A kind of line a server can repeat at will.
#[derive(Clone, Copy, Debug, IntoStaticStr, EnumCount)]
#[strum(serialize_all = "snake_case")]
pub enum Noise {
    /// A message of a type the xiaozhi protocol does not have.
    UnknownType,
    /// Text that is not a JSON object.
    Malformed,
    /// A message before the server hello.
    BeforeHello,
    /// A binary frame before the server hello.
    BinaryBeforeHello,
    /// A second server hello.
    SecondHello,
}

/// The per-kind budgets of one session.
pub struct NoiseLimits {
    limiters: Mutex<[LineLimiter; Noise::COUNT]>,
}

impl Default for NoiseLimits {
    fn default() -> Self {
        NoiseLimits {
            limiters: Mutex::new(std::array::from_fn(|_| LineLimiter::new(WINDOW, BURST))),
        }
    }
}

impl NoiseLimits {
    /// Write `line` for session `name` at `level`, unless its kind is over budget.
    pub fn log(&self, name: &str, kind: Noise, level: Level, line: fmt::Arguments<'_>) {
        let verdict = match self.limiters.lock() {
            Ok(mut limiters) => limiters[kind as usize].check(Instant::now()),
            Err(_) => Verdict::Write,
        };
        match verdict {
            Verdict::Suppress => return,
            Verdict::WriteAfterSuppressed(n) => {
                let kind: &str = kind.into();
                log::log!(level, "session={name} suppressed {n} similar lines kind={kind}");
            }
            Verdict::Write => {}
        }
        log::log!(level, "session={name} {line}");
    }
}
