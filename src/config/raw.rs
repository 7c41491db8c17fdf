//! The configuration file as TOML says it, before any checking.
//!
//! Every leaf is kept as a spanned `toml::Value` rather than its final type:
//! that way a wrong type is reported by our own code, naming the key and
//! what it expects (and never echoing a token), and every later check can
//! point at the exact value. Tables are real structs so that
//! `deny_unknown_fields` reports unknown keys with their position.
//!
//! `#[serde(flatten)]` does not work together with `deny_unknown_fields`,
//! so the keys a session may override are listed both in [`RawDefaults`]
//! and in [`RawSession`]; [`RawSession::tunables`] brings them together.

use std::fmt;

use serde::de::{Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// A key that may be absent, with the position of its value when present.
pub(super) type Leaf = Option<Spanned<toml::Value>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub daemon: Option<RawDaemon>,
    pub defaults: Option<RawDefaults>,
    pub session: Option<SessionList>,
    pub tool: Option<ToolList>,
}

/// `[daemon]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [daemon] table")]
pub(super) struct RawDaemon {
    pub control_socket: Leaf,
    pub socket_mode: Leaf,
    pub allowed_uids: Option<Spanned<UidList>>,
    pub allowed_groups: Option<Spanned<GroupList>>,
    pub metrics_listen: Leaf,
    pub log_level: Leaf,
    pub on_give_up: Leaf,
    pub subscriber_buffer: Leaf,
    pub state_dir: Leaf,
}

/// The elements of `allowed_uids`, each with its own position.
#[derive(Debug, Default)]
pub(super) struct UidList(pub Vec<Spanned<toml::Value>>);

impl<'de> Deserialize<'de> for UidList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UidVisitor;
        impl<'de> Visitor<'de> for UidVisitor {
            type Value = UidList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of uids such as [1000, 1001]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UidList, A::Error> {
                let mut uids = Vec::new();
                while let Some(uid) = seq.next_element()? {
                    uids.push(uid);
                }
                Ok(UidList(uids))
            }
        }
        deserializer.deserialize_seq(UidVisitor)
    }
}

/// The elements of `allowed_groups` (names or gids), each with its own position.
#[derive(Debug, Default)]
pub(super) struct GroupList(pub Vec<Spanned<toml::Value>>);

impl<'de> Deserialize<'de> for GroupList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GroupVisitor;
        impl<'de> Visitor<'de> for GroupVisitor {
            type Value = GroupList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of group names or gids such as [\"wsvisor\", 1000]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GroupList, A::Error> {
                let mut groups = Vec::new();
                while let Some(group) = seq.next_element()? {
                    groups.push(group);
                }
                Ok(GroupList(groups))
            }
        }
        deserializer.deserialize_seq(GroupVisitor)
    }
}

/// `[defaults]`: the keys every session inherits and may override.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [defaults] table")]
pub(super) struct RawDefaults {
    pub ping_interval: Leaf,
    pub ping_timeout: Leaf,
    pub connect_timeout: Leaf,
    pub hello_timeout: Leaf,
    pub app_ping_interval: Leaf,
    pub keep: Leaf,
    pub queue_limit: Leaf,
    pub queue_bytes: Leaf,
    pub queue_ttl: Leaf,
    pub max_message: Leaf,
    pub outbound_buffer: Leaf,
    pub reconnect: Option<RawReconnect>,
    pub audio_params: Option<RawAudioParams>,
    pub mcp: Leaf,
}

/// `[defaults.reconnect]` or `[session.reconnect]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of reconnect settings")]
pub(super) struct RawReconnect {
    pub initial_delay: Leaf,
    pub max_delay: Leaf,
    pub multiplier: Leaf,
    pub jitter: Leaf,
    pub max_attempts: Leaf,
    pub stable_after: Leaf,
    pub revive_after: Leaf,
}

/// `[defaults.audio_params]` or `[session.audio_params]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table like { format = \"opus\", sample_rate = 16000, channels = 1, frame_duration = 60 }"
)]
pub(super) struct RawAudioParams {
    pub format: Leaf,
    pub sample_rate: Leaf,
    pub channels: Leaf,
    pub frame_duration: Leaf,
}

/// All `[[session]]` tables, each with the span of its header.
#[derive(Debug, Default)]
pub(super) struct SessionList(pub Vec<Spanned<RawSession>>);

impl<'de> Deserialize<'de> for SessionList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SessionsVisitor;
        impl<'de> Visitor<'de> for SessionsVisitor {
            type Value = SessionList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of [[session]] tables")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SessionList, A::Error> {
                let mut sessions = Vec::new();
                while let Some(session) = seq.next_element()? {
                    sessions.push(session);
                }
                Ok(SessionList(sessions))
            }
            // `[session]` with single brackets is the likeliest slip; say how to fix it.
            fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<SessionList, A::Error> {
                Err(A::Error::custom(
                    "sessions are written [[session]] with double brackets, one table per session",
                ))
            }
        }
        deserializer.deserialize_seq(SessionsVisitor)
    }
}

/// One `[[session]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[session]] table")]
pub(super) struct RawSession {
    pub name: Leaf,
    pub url: Leaf,
    pub token: Leaf,
    pub token_file: Leaf,
    pub ota_url: Leaf,
    pub ca_file: Leaf,
    pub tls_insecure: Leaf,
    pub device_id: Leaf,
    pub client_id: Leaf,
    pub protocol_version: Leaf,
    pub autostart: Leaf,

    pub ping_interval: Leaf,
    pub ping_timeout: Leaf,
    pub connect_timeout: Leaf,
    pub hello_timeout: Leaf,
    pub app_ping_interval: Leaf,
    pub keep: Leaf,
    pub queue_limit: Leaf,
    pub queue_bytes: Leaf,
    pub queue_ttl: Leaf,
    pub max_message: Leaf,
    pub outbound_buffer: Leaf,
    pub reconnect: Option<RawReconnect>,
    pub audio_params: Option<RawAudioParams>,
    pub mcp: Leaf,
}

impl RawSession {
    /// The keys of this session that override `[defaults]`.
    pub fn tunables(&self) -> RawDefaults {
        RawDefaults {
            ping_interval: self.ping_interval.clone(),
            ping_timeout: self.ping_timeout.clone(),
            connect_timeout: self.connect_timeout.clone(),
            hello_timeout: self.hello_timeout.clone(),
            app_ping_interval: self.app_ping_interval.clone(),
            keep: self.keep.clone(),
            queue_limit: self.queue_limit.clone(),
            queue_bytes: self.queue_bytes.clone(),
            queue_ttl: self.queue_ttl.clone(),
            max_message: self.max_message.clone(),
            outbound_buffer: self.outbound_buffer.clone(),
            reconnect: self.reconnect.clone(),
            audio_params: self.audio_params.clone(),
            mcp: self.mcp.clone(),
        }
    }
}

/// All `[[tool]]` tables, each with the span of its header.
#[derive(Debug, Default)]
pub(super) struct ToolList(pub Vec<Spanned<RawTool>>);

impl<'de> Deserialize<'de> for ToolList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ToolsVisitor;
        impl<'de> Visitor<'de> for ToolsVisitor {
            type Value = ToolList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of [[tool]] tables")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ToolList, A::Error> {
                let mut tools = Vec::new();
                while let Some(tool) = seq.next_element()? {
                    tools.push(tool);
                }
                Ok(ToolList(tools))
            }
            fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<ToolList, A::Error> {
                Err(A::Error::custom(
                    "tools are written [[tool]] with double brackets, one table per tool",
                ))
            }
        }
        deserializer.deserialize_seq(ToolsVisitor)
    }
}

/// One `[[tool]]`: an MCP tool run as a command.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[tool]] table")]
pub(super) struct RawTool {
    pub name: Leaf,
    pub description: Leaf,
    pub command: Leaf,
    pub sessions: Leaf,
    pub timeout: Leaf,
    pub max_output: Leaf,
    pub max_concurrent: Leaf,
    pub input_schema: Leaf,
}
