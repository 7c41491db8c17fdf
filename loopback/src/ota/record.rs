//! What the OTA endpoint observed and what it knows of each device, as
//! tests read it.

use std::time::Instant;

use serde_json::Value;

/// Which endpoint a request addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtaRequestKind {
    /// `POST <path>`: the version check that hands out the sections.
    Ota,
    /// `POST <path>/activate`.
    Activate,
    /// Anything else (a `GET`, another path).
    Other,
}

/// One HTTP request as the endpoint read it, with the answer it gave.
/// Recorded before the answer is written.
#[derive(Clone, Debug, PartialEq)]
pub struct OtaRequest {
    /// When it was read.
    pub at: Instant,
    /// Which endpoint.
    pub kind: OtaRequestKind,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, query included.
    pub path: String,
    /// Header names in lower case, with their values, in request order.
    pub headers: Vec<(String, String)>,
    /// The body, as text (invalid UTF-8 replaced).
    pub body: String,
    /// The body parsed as JSON, if it is JSON.
    pub json: Option<Value>,
    /// The JSON with a `{"Payload": {...}}` wrapper removed (py-xiaozhi's
    /// form), or the JSON itself.
    pub payload: Option<Value>,
    /// The status answered.
    pub status: u16,
    /// The body answered.
    pub answer: String,
}

impl OtaRequest {
    /// The value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The answer parsed as JSON, if it is JSON.
    pub fn answer_json(&self) -> Option<Value> {
        serde_json::from_str(&self.answer).ok()
    }
}

/// What the endpoint knows of one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtaDevice {
    /// The HMAC key it registered (`application.elf_sha256`), if any.
    pub key: Option<String>,
    /// Activation completed (or [`crate::OtaServer::bind`]).
    pub bound: bool,
    /// The code and challenge currently handed out, while unbound.
    pub activation: Option<OtaActivation>,
    /// How many codes were handed out to it (a fresh one after each expiry).
    pub codes_issued: u32,
}

/// A code and challenge handed out to an unbound device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtaActivation {
    /// The code the user would type in the console.
    pub code: String,
    /// The challenge the device signs.
    pub challenge: String,
    /// 202 answers given for it so far.
    pub polls: u32,
    /// Its time to live is over.
    pub expired: bool,
}
