//! JSON from peers, handled within a budget. A 1 MiB text of tiny numbers
//! becomes tens of MB once parsed into `serde_json::Value`, so nothing a
//! peer sends is built into a tree before its number of values is known to
//! be small ([`parse_bounded`]); messages that are only passed on are
//! validated without building anything and kept as compact text
//! ([`compact`]), one shared copy for every subscriber.

use serde::de::IgnoredAny;
use serde_json::Value;

/// Values a peer's JSON may hold before it is refused; parsed, the worst
/// case is a few MB, whatever the text.
pub const MAX_JSON_VALUES: usize = 65_536;

/// Why a peer's JSON was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON.
    #[error("invalid JSON: {0}")]
    Invalid(String),
    /// More values than the budget.
    #[error("JSON with more than {limit} values")]
    TooManyValues {
        /// The budget it exceeded.
        limit: usize,
    },
}

/// An upper bound of the number of values in `text`, counted without
/// parsing: every container opens one, every `,` and `:` outside strings
/// separates one more. Stops counting past `limit`.
pub fn count_values(text: &str, limit: usize) -> usize {
    let mut count = 1;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' | b',' | b':' => {
                count += 1;
                if count > limit {
                    return count;
                }
            }
            _ => {}
        }
    }
    count
}

/// Parse `text` into a tree, unless it holds more than `max_values` values.
pub fn parse_bounded(text: &[u8], max_values: usize) -> Result<Value, JsonError> {
    let as_text = std::str::from_utf8(text).map_err(|e| JsonError::Invalid(e.to_string()))?;
    if count_values(as_text, max_values) > max_values {
        return Err(JsonError::TooManyValues { limit: max_values });
    }
    serde_json::from_str(as_text).map_err(|e| JsonError::Invalid(e.to_string()))
}

/// "a string", "an object", ...: how an error names the JSON type it found.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Check that `text` is JSON (building nothing) and give it back without
/// insignificant whitespace, so it fits on one line of the control socket.
pub fn compact(text: &str) -> Result<String, JsonError> {
    serde_json::from_str::<IgnoredAny>(text).map_err(|e| JsonError::Invalid(e.to_string()))?;
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            out.push(c);
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_values_outside_strings_only() {
        assert_eq!(count_values("1", 100), 1);
        assert_eq!(count_values("[0,0,0]", 100), 4);
        assert_eq!(count_values(r#"{"a":1,"b":[1,2]}"#, 100), 7);
        assert_eq!(count_values(r#"{"a":"x,y:[{"}"#, 100), 3, "separators inside strings");
        assert_eq!(
            count_values(r#"["a\",b", 1]"#, 100),
            3,
            "escaped quotes do not end a string"
        );
        assert_eq!(
            count_values(r#"["\"", 1]"#, 100),
            3,
            "a string that is only an escaped quote"
        );
        let zeros = format!("[{}0]", "0,".repeat(1000));
        assert_eq!(count_values(&zeros, 10), 11, "stops past the limit");
    }

    #[test]
    fn refuses_big_trees_before_building_them() {
        let zeros = format!("{{\"n\":[{}0]}}", "0,".repeat(MAX_JSON_VALUES));
        assert_eq!(
            parse_bounded(zeros.as_bytes(), MAX_JSON_VALUES),
            Err(JsonError::TooManyValues { limit: MAX_JSON_VALUES })
        );
        assert_eq!(
            parse_bounded(b"[0,0]", 3),
            Ok(serde_json::json!([0, 0])),
            "exactly the budget"
        );
        assert_eq!(parse_bounded(b"[0,0,0]", 3), Err(JsonError::TooManyValues { limit: 3 }));
        let small = parse_bounded(br#"{"type":"stt","text":"hi"}"#, 8).unwrap();
        assert_eq!(small["text"], "hi");
        assert!(matches!(parse_bounded(b"{", 8), Err(JsonError::Invalid(_))));
        assert!(matches!(parse_bounded(b"\xff", 8), Err(JsonError::Invalid(_))));
    }

    #[test]
    fn compact_keeps_strings_and_drops_layout() {
        let text = "{\n  \"type\": \"tts\",\n  \"text\": \"a  b\\\" \\n c\"\n}\n";
        assert_eq!(compact(text).unwrap(), r#"{"type":"tts","text":"a  b\" \n c"}"#);
        assert!(compact("{\"a\":1} x").is_err());
        let round: Value = serde_json::from_str(&compact(text).unwrap()).unwrap();
        assert_eq!(round, serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn kinds_are_named_as_an_error_message_says_them() {
        let named: Vec<&str> = [
            serde_json::json!(null),
            serde_json::json!(true),
            serde_json::json!(1.5),
            serde_json::json!("x"),
            serde_json::json!([]),
            serde_json::json!({}),
        ]
        .iter()
        .map(kind)
        .collect();
        assert_eq!(
            named,
            ["null", "a boolean", "a number", "a string", "an array", "an object"]
        );
    }
}
