//! The keys `[defaults]` sets and each `[[session]]` may override.
//!
//! Both tables are read into a [`Layer`] of checked but optional values.
//! A session's settings are then merged key by key — the session's value,
//! else the default's, else the built-in one — and only then are the
//! checks that relate two keys made, since the two may come from
//! different tables.

use std::ops::Range;
use std::time::Duration;

use toml::{Spanned, Value};
use wsvisor_actors::mcp::McpMode;
use wsvisor_actors::settings::{BufferLimits, Keep, LivenessSettings, QueueSettings, ReconnectSettings};
use wsvisor_actors::wire::AudioParams;

use super::position::{ConfigError, Source};
use super::raw::{Leaf, RawDefaults};
use super::value::{self, At};

/// Built-in values, exactly those documented in the contract.
pub(super) mod builtin {
    use std::time::Duration;

    pub const PING_INTERVAL: Duration = Duration::from_secs(15);
    pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
    pub const QUEUE_LIMIT: usize = 64;
    pub const QUEUE_TTL: Duration = Duration::from_secs(30);
    pub const QUEUE_BYTES: usize = 1 << 20;
    pub const MAX_MESSAGE: usize = wsvisor_actors::settings::DEFAULT_MAX_MESSAGE;
    pub const OUTBOUND_BUFFER: usize = 1 << 20;
    pub const INITIAL_DELAY: Duration = Duration::from_millis(500);
    pub const MAX_DELAY: Duration = Duration::from_secs(60);
    pub const MULTIPLIER: f64 = 2.0;
    pub const JITTER: f64 = 0.5;
    pub const MAX_ATTEMPTS: u32 = 10;
    pub const STABLE_AFTER: Duration = Duration::from_secs(10);
    pub const REVIVE_AFTER: Duration = Duration::from_secs(60);
}

/// Most messages a session may hold while not ready.
pub(super) const MAX_QUEUE_LIMIT: i64 = 100_000;

/// Byte budgets: at least one useful message, at most what one session
/// may reasonably pin in memory.
const MIN_BUFFER: u64 = 1024;
const MAX_BUFFER: u64 = 256 << 20;

/// The overridable keys of one table, checked one by one, absent as `None`.
#[derive(Clone, Debug, Default)]
pub(super) struct Layer {
    ping_interval: Option<At<Duration>>,
    ping_timeout: Option<At<Duration>>,
    connect_timeout: Option<At<Duration>>,
    hello_timeout: Option<At<Duration>>,
    app_ping_interval: Option<At<Option<Duration>>>,
    keep: Option<At<Keep>>,
    queue_limit: Option<At<usize>>,
    queue_bytes: Option<At<usize>>,
    queue_ttl: Option<At<Duration>>,
    max_message: Option<At<usize>>,
    outbound_buffer: Option<At<usize>>,
    initial_delay: Option<At<Duration>>,
    max_delay: Option<At<Duration>>,
    multiplier: Option<At<f64>>,
    jitter: Option<At<f64>>,
    max_attempts: Option<At<u32>>,
    stable_after: Option<At<Duration>>,
    revive_after: Option<At<Option<Duration>>>,
    format: Option<At<String>>,
    sample_rate: Option<At<u32>>,
    channels: Option<At<u32>>,
    frame_duration: Option<At<u32>>,
    mcp: Option<At<McpMode>>,
}

/// The settings of one session that come from a [`Layer`] stack.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Tunables {
    pub liveness: LivenessSettings,
    pub connect_timeout: Duration,
    pub hello_timeout: Duration,
    pub keep: Keep,
    pub queue: QueueSettings,
    pub limits: BufferLimits,
    pub reconnect: ReconnectSettings,
    pub audio_params: AudioParams,
    pub mcp: McpMode,
}

/// Applies `check` to the value of an optional key.
fn opt<T>(
    v: &Leaf,
    check: impl FnOnce(&Spanned<Value>) -> Result<At<T>, ConfigError>,
) -> Result<Option<At<T>>, ConfigError> {
    v.as_ref().map(check).transpose()
}

impl Layer {
    /// Checks each key of a `[defaults]`-shaped table on its own.
    pub fn read(src: &Source, raw: &RawDefaults) -> Result<Layer, ConfigError> {
        let positive = |key, v: &Leaf| opt(v, |v| value::positive_duration(src, key, v));
        let optional = |key, v: &Leaf| opt(v, |v| value::optional_duration(src, key, v));
        let bytes = |key, v: &Leaf| opt(v, |v| value::byte_size(src, key, v, MIN_BUFFER, MAX_BUFFER));
        let count = |key, v: &Leaf, min: u32, max: u32| {
            opt(v, |v| {
                let n = value::integer(src, key, v, min.into(), max.into())?;
                Ok(At {
                    value: n.value as u32,
                    span: n.span,
                })
            })
        };
        let reconnect = raw.reconnect.clone().unwrap_or_default();
        let audio = raw.audio_params.clone().unwrap_or_default();
        let keeps = [("always", Keep::Always), ("on_demand", Keep::OnDemand)];
        Ok(Layer {
            ping_interval: positive("ping_interval", &raw.ping_interval)?,
            ping_timeout: positive("ping_timeout", &raw.ping_timeout)?,
            connect_timeout: positive("connect_timeout", &raw.connect_timeout)?,
            hello_timeout: positive("hello_timeout", &raw.hello_timeout)?,
            app_ping_interval: optional("app_ping_interval", &raw.app_ping_interval)?,
            keep: opt(&raw.keep, |v| value::choice(src, "keep", v, &keeps))?,
            queue_limit: opt(&raw.queue_limit, |v| {
                let n = value::integer(src, "queue_limit", v, 0, MAX_QUEUE_LIMIT)?;
                Ok(At {
                    value: n.value as usize,
                    span: n.span,
                })
            })?,
            queue_bytes: bytes("queue_bytes", &raw.queue_bytes)?,
            queue_ttl: positive("queue_ttl", &raw.queue_ttl)?,
            max_message: bytes("max_message", &raw.max_message)?,
            outbound_buffer: bytes("outbound_buffer", &raw.outbound_buffer)?,
            initial_delay: positive("initial_delay", &reconnect.initial_delay)?,
            max_delay: positive("max_delay", &reconnect.max_delay)?,
            multiplier: opt(&reconnect.multiplier, |v| {
                let m = value::number(src, "multiplier", v)?;
                if m.value < 1.0 {
                    let message = format!("multiplier: must be at least 1.0, found {}", m.value);
                    return Err(src.error(&m.span, message));
                }
                Ok(m)
            })?,
            jitter: opt(&reconnect.jitter, |v| {
                let j = value::number(src, "jitter", v)?;
                if !(0.0..1.0).contains(&j.value) {
                    let message = format!("jitter: must be at least 0.0 and less than 1.0, found {}", j.value);
                    return Err(src.error(&j.span, message));
                }
                Ok(j)
            })?,
            max_attempts: count("max_attempts", &reconnect.max_attempts, 1, u32::MAX)?,
            // Zero is allowed: every ready session then counts as stable at once.
            stable_after: opt(&reconnect.stable_after, |v| value::duration(src, "stable_after", v))?,
            revive_after: optional("revive_after", &reconnect.revive_after)?,
            format: opt(&audio.format, |v| value::plain_string(src, "format", v))?,
            sample_rate: count("sample_rate", &audio.sample_rate, 8000, 48000)?,
            channels: count("channels", &audio.channels, 1, 2)?,
            frame_duration: count("frame_duration", &audio.frame_duration, 10, 120)?,
            mcp: opt(&raw.mcp, |v| {
                let modes = [
                    ("builtin", McpMode::Builtin),
                    ("external", McpMode::External),
                    ("off", McpMode::Off),
                ];
                value::choice(src, "mcp", v, &modes)
            })?,
        })
    }

    /// Key by key, `self` where set, else `under`.
    pub fn over(&self, under: &Layer) -> Layer {
        fn pick<T: Clone>(top: &Option<At<T>>, bottom: &Option<At<T>>) -> Option<At<T>> {
            top.as_ref().or(bottom.as_ref()).cloned()
        }
        Layer {
            ping_interval: pick(&self.ping_interval, &under.ping_interval),
            ping_timeout: pick(&self.ping_timeout, &under.ping_timeout),
            connect_timeout: pick(&self.connect_timeout, &under.connect_timeout),
            hello_timeout: pick(&self.hello_timeout, &under.hello_timeout),
            app_ping_interval: pick(&self.app_ping_interval, &under.app_ping_interval),
            keep: pick(&self.keep, &under.keep),
            queue_limit: pick(&self.queue_limit, &under.queue_limit),
            queue_bytes: pick(&self.queue_bytes, &under.queue_bytes),
            queue_ttl: pick(&self.queue_ttl, &under.queue_ttl),
            max_message: pick(&self.max_message, &under.max_message),
            outbound_buffer: pick(&self.outbound_buffer, &under.outbound_buffer),
            initial_delay: pick(&self.initial_delay, &under.initial_delay),
            max_delay: pick(&self.max_delay, &under.max_delay),
            multiplier: pick(&self.multiplier, &under.multiplier),
            jitter: pick(&self.jitter, &under.jitter),
            max_attempts: pick(&self.max_attempts, &under.max_attempts),
            stable_after: pick(&self.stable_after, &under.stable_after),
            revive_after: pick(&self.revive_after, &under.revive_after),
            format: pick(&self.format, &under.format),
            sample_rate: pick(&self.sample_rate, &under.sample_rate),
            channels: pick(&self.channels, &under.channels),
            frame_duration: pick(&self.frame_duration, &under.frame_duration),
            mcp: pick(&self.mcp, &under.mcp),
        }
    }

    /// Fills what is still absent with built-in values and checks the
    /// relations between keys. `anchor` is where to point when the culprit
    /// is a built-in value that has no place in the file.
    pub fn finish(&self, src: &Source, anchor: &Range<usize>) -> Result<Tunables, ConfigError> {
        fn or<T: Clone>(v: &Option<At<T>>, default: T) -> T {
            v.as_ref().map_or(default, |v| v.value.clone())
        }
        let initial_delay = or(&self.initial_delay, builtin::INITIAL_DELAY);
        let max_delay = or(&self.max_delay, builtin::MAX_DELAY);
        if max_delay < initial_delay {
            // Blame the one written down; if both are, the cap is the likelier slip.
            let span = self
                .max_delay
                .as_ref()
                .or(self.initial_delay.as_ref())
                .map_or(anchor.clone(), |v| v.span.clone());
            return Err(src.error(
                &span,
                format!(
                    "max_delay ({}) must be at least initial_delay ({})",
                    humantime::format_duration(max_delay),
                    humantime::format_duration(initial_delay)
                ),
            ));
        }
        let builtin_audio = AudioParams::default();
        Ok(Tunables {
            liveness: LivenessSettings {
                ping_interval: or(&self.ping_interval, builtin::PING_INTERVAL),
                ping_timeout: or(&self.ping_timeout, builtin::PING_TIMEOUT),
                app_ping_interval: or(&self.app_ping_interval, None),
            },
            connect_timeout: or(&self.connect_timeout, builtin::CONNECT_TIMEOUT),
            hello_timeout: or(&self.hello_timeout, builtin::HELLO_TIMEOUT),
            keep: or(&self.keep, Keep::Always),
            queue: QueueSettings {
                limit: or(&self.queue_limit, builtin::QUEUE_LIMIT),
                bytes: or(&self.queue_bytes, builtin::QUEUE_BYTES),
                ttl: or(&self.queue_ttl, builtin::QUEUE_TTL),
            },
            limits: BufferLimits {
                max_message: or(&self.max_message, builtin::MAX_MESSAGE),
                outbound: or(&self.outbound_buffer, builtin::OUTBOUND_BUFFER),
            },
            reconnect: ReconnectSettings {
                initial_delay,
                max_delay,
                multiplier: or(&self.multiplier, builtin::MULTIPLIER),
                jitter: or(&self.jitter, builtin::JITTER),
                max_attempts: or(&self.max_attempts, builtin::MAX_ATTEMPTS),
                stable_after: or(&self.stable_after, builtin::STABLE_AFTER),
                revive_after: or(&self.revive_after, Some(builtin::REVIVE_AFTER)),
            },
            audio_params: AudioParams {
                format: or(&self.format, builtin_audio.format),
                sample_rate: or(&self.sample_rate, builtin_audio.sample_rate),
                channels: or(&self.channels, builtin_audio.channels),
                frame_duration: or(&self.frame_duration, builtin_audio.frame_duration),
            },
            mcp: or(&self.mcp, McpMode::Builtin),
        })
    }
}
