//! The xiaozhi wire types: hello messages and audio parameters.
use serde::{Deserialize, Serialize};

/// Audio parameters announced in the client hello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioParams {
    /// Codec name, `opus` for every known server.
    pub format: String,
    /// Samples per second.
    pub sample_rate: u32,
    /// 1 for mono.
    pub channels: u32,
    /// Milliseconds of audio per frame.
    pub frame_duration: u32,
}

impl Default for AudioParams {
    fn default() -> Self {
        AudioParams { format: "opus".into(), sample_rate: 16000, channels: 1, frame_duration: 60 }
    }
}
