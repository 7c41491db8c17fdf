//! What a tool is, wherever it comes from: its name, description and input
//! schema (compiled once, when the tool is declared), and the checks that
//! make every declared tool listable and callable. A tool that would not
//! fit one `tools/list` page, or whose schema does not compile, is refused
//! when it is declared (config load, `offer_tools`), never at call time.
//!
//! Running a tool is not done here: `command` runs config tools, the
//! broker forwards calls to local programs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::listing::MAX_TOOL_LISTING_BYTES;

/// Longest tool name; the MCP spec allows 128, the language models that
/// end up choosing tools by name are happier with short ones.
pub const MAX_TOOL_NAME: usize = 64;

/// Validation errors quoted back to the server per rejected call.
const MAX_REPORTED_ERRORS: usize = 3;

/// Why a tool cannot be declared.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ToolSpecError {
    /// The name is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    #[error("tool name {0:?} is not valid; expected 1 to {MAX_TOOL_NAME} characters from A-Z, a-z, 0-9, _, . and -")]
    Name(String),
    /// The description is empty.
    #[error("tool {0}: the description must not be empty (the assistant chooses tools by it)")]
    EmptyDescription(String),
    /// The schema's top level is not `{"type": "object", ...}`.
    #[error("tool {0}: the input schema must be an object schema with type = \"object\" (MCP passes arguments as an object)")]
    NotObjectSchema(String),
    /// The schema does not compile.
    #[error("tool {name}: invalid input schema: {why}")]
    Schema {
        /// The tool.
        name: String,
        /// What the validator said.
        why: String,
    },
    /// Listed, the tool would not fit one `tools/list` page.
    #[error("tool {name}: its name, description and input schema take {bytes} bytes as JSON; one tools/list page holds at most {MAX_TOOL_LISTING_BYTES}")]
    TooLarge {
        /// The tool.
        name: String,
        /// Its listing's size.
        bytes: usize,
    },
}

/// Whether `name` is a valid tool name: `[A-Za-z0-9_.-]{1,64}`. Safe as a
/// log value and a Prometheus label value as it is.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_TOOL_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The schema of a tool that takes no arguments.
pub fn empty_object_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

/// A declared tool: what the server is shown, and its compiled schema.
#[derive(Clone)]
pub struct ToolSpec {
    name: String,
    description: String,
    input_schema: Value,
    timeout: Duration,
    validator: Arc<jsonschema::Validator>,
    listing: Arc<str>,
}

impl ToolSpec {
    /// Checks and compiles a tool. `timeout` bounds each call of it.
    pub fn new(name: &str, description: &str, input_schema: Value, timeout: Duration) -> Result<Self, ToolSpecError> {
        if !is_valid_name(name) {
            return Err(ToolSpecError::Name(name.to_owned()));
        }
        if description.trim().is_empty() {
            return Err(ToolSpecError::EmptyDescription(name.to_owned()));
        }
        if input_schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(ToolSpecError::NotObjectSchema(name.to_owned()));
        }
        let validator = jsonschema::options()
            // Linear-time patterns: arguments come from the server, and a
            // backtracking engine can be made to spin on a crafted string.
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&input_schema)
            .map_err(|err| ToolSpecError::Schema {
                name: name.to_owned(),
                why: err.to_string(),
            })?;
        let listing = json!({"name": name, "description": description, "inputSchema": input_schema}).to_string();
        if listing.len() > MAX_TOOL_LISTING_BYTES {
            return Err(ToolSpecError::TooLarge {
                name: name.to_owned(),
                bytes: listing.len(),
            });
        }
        Ok(ToolSpec {
            name: name.to_owned(),
            description: description.to_owned(),
            input_schema,
            timeout,
            validator: Arc::new(validator),
            listing: listing.into(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Its input schema, as declared.
    pub fn input_schema(&self) -> &Value {
        &self.input_schema
    }

    /// How long one call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `{"name","description","inputSchema"}` as compact JSON: one entry of
    /// a `tools/list` page, serialized once.
    pub fn listing(&self) -> &str {
        &self.listing
    }

    /// `Ok` when `arguments` satisfy the schema, else the first few
    /// problems in one line.
    pub fn check_arguments(&self, arguments: &Value) -> Result<(), String> {
        let problems: Vec<String> = self
            .validator
            .iter_errors(arguments)
            .take(MAX_REPORTED_ERRORS + 1)
            .map(|error| {
                let at = error.instance_path().to_string();
                if at.is_empty() {
                    error.to_string()
                } else {
                    format!("{at}: {error}")
                }
            })
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        let mut line = problems
            .iter()
            .take(MAX_REPORTED_ERRORS)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if problems.len() > MAX_REPORTED_ERRORS {
            line.push_str("; …");
        }
        Err(line)
    }
}

impl PartialEq for ToolSpec {
    /// Equal when declared alike (the compiled schema follows from the rest).
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.description == other.description
            && self.input_schema == other.input_schema
            && self.timeout == other.timeout
    }
}

impl fmt::Debug for ToolSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolSpec")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("input_schema", &self.input_schema)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A tool from the config: a command run once per call.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandTool {
    /// What the server is shown.
    pub spec: ToolSpec,
    /// The program and its arguments, run without a shell.
    pub argv: Vec<String>,
    /// Bytes of standard output taken; more stops the tool.
    pub max_output: usize,
    /// Calls of this tool running at once for one session.
    pub max_concurrent: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lamp() -> ToolSpec {
        let schema = json!({
            "type": "object",
            "properties": {"room": {"type": "string", "enum": ["hall", "kitchen"]}, "level": {"type": "integer", "minimum": 0, "maximum": 100}},
            "required": ["room"],
        });
        ToolSpec::new("home.lamp", "Turn a lamp on", schema, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let lamp = lamp();
        assert_eq!(lamp.check_arguments(&json!({"room": "hall"})), Ok(()));
        let missing = lamp.check_arguments(&json!({})).unwrap_err();
        assert!(missing.contains("room"), "{missing}");
        let wrong = lamp
            .check_arguments(&json!({"room": "attic", "level": 300}))
            .unwrap_err();
        assert!(wrong.contains("/room") && wrong.contains("/level"), "{wrong}");
        assert!(lamp.check_arguments(&json!([1])).is_err());
    }

    #[test]
    fn bad_declarations_are_refused() {
        let none = Duration::from_secs(1);
        for name in ["", "a b", "x\n", &"n".repeat(65), "été"] {
            assert!(matches!(
                ToolSpec::new(name, "d", empty_object_schema(), none),
                Err(ToolSpecError::Name(_))
            ));
        }
        assert!(ToolSpec::new("self.audio_speaker.set-volume_2", "d", empty_object_schema(), none).is_ok());
        assert!(matches!(
            ToolSpec::new("t", " ", empty_object_schema(), none),
            Err(ToolSpecError::EmptyDescription(_))
        ));
        assert!(matches!(
            ToolSpec::new("t", "d", json!({"type": "string"}), none),
            Err(ToolSpecError::NotObjectSchema(_))
        ));
        let broken = json!({"type": "object", "properties": {"a": {"type": 5}}});
        assert!(matches!(
            ToolSpec::new("t", "d", broken, none),
            Err(ToolSpecError::Schema { .. })
        ));
        let remote = json!({"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/schema.json"}}});
        assert!(
            matches!(ToolSpec::new("t", "d", remote, none), Err(ToolSpecError::Schema { .. })),
            "a remote $ref is never fetched"
        );
        let long = "x".repeat(MAX_TOOL_LISTING_BYTES);
        assert!(matches!(
            ToolSpec::new("t", &long, empty_object_schema(), none),
            Err(ToolSpecError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_listing_is_what_the_firmware_lists() {
        let listing: Value = serde_json::from_str(lamp().listing()).unwrap();
        assert_eq!(listing["name"], "home.lamp");
        assert_eq!(listing["inputSchema"]["required"], json!(["room"]));
        assert_eq!(listing.as_object().unwrap().len(), 3);
    }
}
