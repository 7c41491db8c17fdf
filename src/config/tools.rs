//! `[[tool]]`: MCP tools run as commands, and which sessions offer them.
//!
//! Each tool is checked whole when the config is read: its name, its
//! description, its command (argv, never a shell; a path must name an
//! executable file), its limits, and its input schema, written in TOML and
//! compiled as JSON Schema. A schema that does not compile is a config
//! error here, never a surprise at the first call.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use toml::{Spanned, Value};
use wsvisor_actors::mcp::responder::MAX_CALLS_IN_FLIGHT;
use wsvisor_actors::mcp::tool::{empty_object_schema, is_valid_name, MAX_TOOL_NAME};
use wsvisor_actors::mcp::{CommandTool, McpMode, ToolSpec};
use wsvisor_actors::settings::SessionSettings;

use super::position::{ConfigError, Source};
use super::raw::{RawTool, ToolList};
use super::value;

/// Built-in values of a `[[tool]]`.
pub(super) mod builtin {
    use std::time::Duration;

    /// The real server waits 30 s for a device's tool; a tool should answer
    /// well before.
    pub const TIMEOUT: Duration = Duration::from_secs(10);
    pub const MAX_OUTPUT: usize = 16 << 10;
    pub const MAX_CONCURRENT: usize = 4;
}

/// How long the real server waits for a tool call (`call_mcp_tool`).
const SERVER_PATIENCE: Duration = Duration::from_secs(30);

/// Longest timeout accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// `max_output` bounds: the reply must fit the server's 1 MiB messages
/// even when every byte needs a 6-byte JSON escape.
const MIN_OUTPUT: u64 = 1 << 10;
const MAX_OUTPUT: u64 = 128 << 10;

/// Reads every `[[tool]]` and gives each session the tools it offers.
pub(super) fn attach(
    src: &Source,
    raw: Option<&ToolList>,
    sessions: &mut [SessionSettings],
    base_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let Some(list) = raw else { return Ok(()) };
    let names: Vec<&str> = sessions.iter().map(|s| s.name.as_str()).collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut tools = Vec::new();
    for (i, raw_tool) in list.0.iter().enumerate() {
        let (tool, offered_to) = build(src, raw_tool, i + 1, &seen, &names, base_dir, warnings)?;
        seen.insert(tool.spec.name().to_owned(), raw_tool.span().start);
        tools.push((Arc::new(tool), offered_to));
    }
    for session in sessions.iter_mut() {
        for (tool, offered_to) in &tools {
            let listed = offered_to.as_ref().map(|names| names.contains(&session.name));
            match (session.mcp.mode, listed) {
                (McpMode::Builtin, None | Some(true)) => session.mcp.tools.push(tool.clone()),
                (mode @ (McpMode::Off | McpMode::External), Some(true)) => warnings.push(format!(
                    "session={} has mcp = \"{mode}\": tool {} listed for it is not offered",
                    session.name,
                    tool.spec.name()
                )),
                _ => {}
            }
        }
    }
    Ok(())
}

/// One `[[tool]]`, and the sessions it names (`None`: all).
fn build(
    src: &Source,
    raw: &Spanned<RawTool>,
    number: usize,
    taken: &HashMap<String, usize>,
    sessions: &[&str],
    base_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<(CommandTool, Option<Vec<String>>), ConfigError> {
    let header = raw.span();
    let t = raw.get_ref();
    let name = match &t.name {
        Some(v) => value::string(src, "name", v)?,
        None => {
            return Err(src.error(
                &header,
                format!("tool #{number} has no `name`; every [[tool]] needs a unique name"),
            ))
        }
    };
    if !is_valid_name(&name.value) {
        return Err(src.error(
            &name.span,
            format!(
                "name: {:?} is not a valid tool name; expected 1 to {MAX_TOOL_NAME} characters from A-Z, a-z, 0-9, _, . and -",
                name.value
            ),
        ));
    }
    if let Some(first) = taken.get(&name.value) {
        let line = src.line_of(*first);
        return Err(src.error(
            &name.span,
            format!(
                "name: duplicate tool name {:?}; the tool at line {line} already uses it",
                name.value
            ),
        ));
    }
    let n = name.value.as_str();
    let missing = |key: &str, hint: &str| src.error(&header, format!("tool {n:?}: missing `{key}`{hint}"));

    let description = match &t.description {
        Some(v) => value::string(src, "description", v)?,
        None => return Err(missing("description", " (the assistant chooses tools by it)")),
    };
    let argv = match &t.command {
        Some(v) => command(src, v, base_dir)?,
        None => {
            return Err(missing(
                "command",
                ", the program and its arguments, such as command = [\"/usr/local/bin/lamp\", \"--on\"]",
            ))
        }
    };
    let offered_to = match &t.sessions {
        Some(v) => Some(session_names(src, v, sessions)?),
        None => None,
    };
    let timeout = match &t.timeout {
        Some(v) => {
            let d = value::positive_duration(src, "timeout", v)?;
            if d.value > MAX_TIMEOUT {
                return Err(src.error(&d.span, "timeout: at most \"10m\""));
            }
            d.value
        }
        None => builtin::TIMEOUT,
    };
    if timeout > SERVER_PATIENCE {
        warnings.push(format!(
            "tool {n} has timeout = {}: xiaozhi-esp32-server gives up on a tool call after 30s",
            humantime::format_duration(timeout)
        ));
    }
    let max_output = match &t.max_output {
        Some(v) => value::byte_size(src, "max_output", v, MIN_OUTPUT, MAX_OUTPUT)?.value,
        None => builtin::MAX_OUTPUT,
    };
    let max_concurrent = match &t.max_concurrent {
        Some(v) => value::integer(src, "max_concurrent", v, 1, MAX_CALLS_IN_FLIGHT as i64)?.value as usize,
        None => builtin::MAX_CONCURRENT,
    };
    let (schema, schema_span) = match &t.input_schema {
        Some(v) => (schema_json(src, v)?, v.span()),
        None => (empty_object_schema(), header.clone()),
    };
    let spec = ToolSpec::new(n, &description.value, schema, timeout).map_err(|err| {
        use wsvisor_actors::mcp::ToolSpecError::*;
        let span = match err {
            EmptyDescription(_) => &description.span,
            NotObjectSchema(_) | Schema { .. } => &schema_span,
            Name(_) | TooLarge { .. } => &header,
        };
        src.error(span, err.to_string())
    })?;
    let tool = CommandTool {
        spec,
        argv,
        max_output,
        max_concurrent,
    };
    Ok((tool, offered_to))
}

/// `command = ["program", "arg", ...]`: a program named by a path must be
/// an executable file (relative paths are taken from the config's
/// directory); a bare name is looked up in `PATH` at each call.
fn command(src: &Source, v: &Spanned<Value>, base_dir: &Path) -> Result<Vec<String>, ConfigError> {
    const EXPECTED: &str = "command: expected a non-empty array of strings, the program and its arguments \
                            (it is run without a shell)";
    let Value::Array(items) = v.get_ref() else {
        return Err(src.error(&v.span(), format!("{EXPECTED}, found {}", value::kind(v.get_ref()))));
    };
    let mut argv = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) if !s.contains('\0') => argv.push(s.clone()),
            Value::String(_) => return Err(src.error(&v.span(), "command: an argument contains a NUL byte")),
            other => return Err(src.error(&v.span(), format!("{EXPECTED}; found {}", value::kind(other)))),
        }
    }
    let Some(program) = argv.first_mut() else {
        return Err(src.error(&v.span(), EXPECTED));
    };
    if program.trim().is_empty() {
        return Err(src.error(&v.span(), "command: the program name is empty"));
    }
    if program.contains('/') {
        let path = base_dir.join(&*program);
        let executable = std::fs::metadata(&path)
            .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
            .map_err(|e| src.error(&v.span(), format!("command: cannot use {}: {e}", path.display())))?;
        if !executable {
            return Err(src.error(
                &v.span(),
                format!("command: {} is not an executable file", path.display()),
            ));
        }
        *program = path.display().to_string();
    }
    Ok(argv)
}

/// `sessions = ["kitchen", ...]`: names of sessions of this config.
fn session_names(src: &Source, v: &Spanned<Value>, sessions: &[&str]) -> Result<Vec<String>, ConfigError> {
    const EXPECTED: &str = "sessions: expected an array of session names such as [\"kitchen\"]";
    let Value::Array(items) = v.get_ref() else {
        return Err(src.error(&v.span(), format!("{EXPECTED}, found {}", value::kind(v.get_ref()))));
    };
    if items.is_empty() {
        return Err(src.error(
            &v.span(),
            "sessions: an empty list offers the tool nowhere; leave `sessions` out to offer it on every session",
        ));
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(name) if sessions.contains(&name.as_str()) => Ok(name.clone()),
            Value::String(name) => Err(src.error(&v.span(), format!("sessions: no [[session]] is named {name:?}"))),
            other => Err(src.error(&v.span(), format!("{EXPECTED}; found {}", value::kind(other)))),
        })
        .collect()
}

/// The TOML table as JSON. Dates have no JSON form: they are refused.
fn schema_json(src: &Source, v: &Spanned<Value>) -> Result<serde_json::Value, ConfigError> {
    if !v.get_ref().is_table() {
        return Err(src.error(
            &v.span(),
            format!(
                "input_schema: expected a table (a JSON Schema written in TOML), found {}",
                value::kind(v.get_ref())
            ),
        ));
    }
    to_json(v.get_ref()).map_err(|why| src.error(&v.span(), format!("input_schema: {why}")))
}

fn to_json(value: &Value) -> Result<serde_json::Value, String> {
    Ok(match value {
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Integer(n) => serde_json::Value::from(*n),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| format!("{f} has no JSON form"))?,
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Datetime(_) => return Err("a date-time has no JSON form; write it as a string".to_owned()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Table(table) => serde_json::Value::Object(
            table
                .iter()
                .map(|(key, value)| Ok((key.clone(), to_json(value)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use serde_json::json;
    use wsvisor_actors::mcp::McpMode;

    use super::super::{parse, Config};

    /// A config directory with an executable `lamp.sh` and a plain `notes.txt`.
    struct Dir(tempfile::TempDir);

    impl Dir {
        fn new() -> Dir {
            let dir = tempfile::tempdir().unwrap();
            let lamp = dir.path().join("lamp.sh");
            std::fs::write(&lamp, "#!/bin/sh\necho on\n").unwrap();
            std::fs::set_permissions(&lamp, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::write(dir.path().join("notes.txt"), "").unwrap();
            Dir(dir)
        }

        fn config(&self) -> PathBuf {
            self.0.path().join("config.toml")
        }

        fn parse(&self, text: &str) -> Result<Config, String> {
            parse(&self.config(), text).map_err(|e| e.to_string())
        }

        /// The error, without the file name.
        fn error(&self, text: &str) -> String {
            let err = self.parse(text).unwrap_err();
            let prefix = format!("{}:", self.config().display());
            err.strip_prefix(&prefix).unwrap_or(&err).to_owned()
        }
    }

    fn session(name: &str, extra: &str) -> String {
        format!(
            "[[session]]\nname = \"{name}\"\nurl = \"ws://127.0.0.1:8000/xiaozhi/v1/\"\ntoken = \"t\"\n\
             device_id = \"aa:bb:cc:dd:ee:ff\"\nclient_id = \"6f1c0b8e-0000-4000-8000-000000000001\"\n{extra}"
        )
    }

    const LAMP: &str = r#"
[[tool]]
name = "lamp"
description = "Turns the hall lamp on"
command = ["./lamp.sh", "--hall"]
sessions = ["kitchen"]
timeout = "2s"
max_output = "4KiB"
max_concurrent = 2
[tool.input_schema]
type = "object"
required = ["on"]
[tool.input_schema.properties.on]
type = "boolean"
description = "on or off"
"#;

    #[test]
    fn a_tool_goes_to_the_sessions_it_names_with_its_schema_as_json() {
        let dir = Dir::new();
        let text = format!("{}{}{LAMP}", session("kitchen", ""), session("hall", ""));
        let config = dir.parse(&text).unwrap();
        let kitchen = &config.session("kitchen").unwrap().mcp;
        assert_eq!(kitchen.mode, McpMode::Builtin);
        assert_eq!(kitchen.tools.len(), 1);
        let lamp = &kitchen.tools[0];
        assert_eq!(lamp.spec.name(), "lamp");
        assert_eq!(
            lamp.argv,
            [
                dir.0.path().join("./lamp.sh").display().to_string(),
                "--hall".to_owned()
            ],
            "a relative program is taken from the config's directory"
        );
        assert_eq!(lamp.spec.timeout(), std::time::Duration::from_secs(2));
        assert_eq!((lamp.max_output, lamp.max_concurrent), (4096, 2));
        assert_eq!(
            lamp.spec.input_schema(),
            &json!({"type": "object", "required": ["on"], "properties": {"on": {"type": "boolean", "description": "on or off"}}})
        );
        assert!(config.session("hall").unwrap().mcp.tools.is_empty());
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn defaults_every_session_and_mcp_off() {
        let dir = Dir::new();
        let text = format!(
            "[defaults]\nmcp = \"off\"\n{}{}[[tool]]\nname = \"uptime\"\ndescription = \"Uptime\"\ncommand = [\"uptime\"]\n",
            session("kitchen", "mcp = \"builtin\"\n"),
            session("hall", "")
        );
        let config = dir.parse(&text).unwrap();
        let uptime = &config.session("kitchen").unwrap().mcp.tools[0];
        assert_eq!(uptime.argv, ["uptime"], "a bare name is looked up in PATH at each call");
        assert_eq!(uptime.spec.timeout(), super::builtin::TIMEOUT);
        assert_eq!(uptime.max_output, super::builtin::MAX_OUTPUT);
        assert_eq!(uptime.max_concurrent, super::builtin::MAX_CONCURRENT);
        assert_eq!(uptime.spec.input_schema(), &json!({"type": "object", "properties": {}}));
        let hall = &config.session("hall").unwrap().mcp;
        assert_eq!((hall.mode, hall.tools.len()), (McpMode::Off, 0));
        assert!(!hall.announced());
    }

    #[test]
    fn mistakes_are_reported_where_they_are() {
        let dir = Dir::new();
        let s = session("kitchen", "");
        let tool = |body: &str| format!("{s}[[tool]]\n{body}");
        let cases: &[(&str, &str)] = &[
            ("description = \"d\"\ncommand = [\"x\"]\n", "7:1: tool #1 has no `name`"),
            ("name = \"a b\"\n", "8:8: name: \"a b\" is not a valid tool name"),
            ("name = \"t\"\ncommand = [\"x\"]\n", "7:1: tool \"t\": missing `description`"),
            ("name = \"t\"\ndescription = \"d\"\n", "7:1: tool \"t\": missing `command`"),
            (
                "name = \"t\"\ndescription = \"d\"\ncommand = \"lamp.sh\"\n",
                "10:11: command: expected a non-empty array of strings",
            ),
            ("name = \"t\"\ndescription = \"d\"\ncommand = []\n", "10:11: command: expected a non-empty array"),
            (
                "name = \"t\"\ndescription = \"d\"\ncommand = [\"./notes.txt\"]\n",
                "is not an executable file",
            ),
            ("name = \"t\"\ndescription = \"d\"\ncommand = [\"./missing.sh\"]\n", "10:11: command: cannot use"),
            (
                "name = \"t\"\ndescription = \"d\"\ncommand = [\"x\"]\nsessions = [\"attic\"]\n",
                "11:12: sessions: no [[session]] is named \"attic\"",
            ),
            (
                "name = \"t\"\ndescription = \"d\"\ncommand = [\"x\"]\nsessions = []\n",
                "sessions: an empty list offers the tool nowhere",
            ),
            (
                "name = \"t\"\ndescription = \"d\"\ncommand = [\"x\"]\ntimeout = \"0s\"\n",
                "11:11: timeout: must be greater than 0s",
            ),
            (
                "name = \"t\"\ndescription = \"d\"\ncommand = [\"x\"]\nmax_output = \"1MiB\"\n",
                "11:14: max_output: must be between",
            ),
            (
                "name = \"t\"\ndescription = \"d\"\ncommand = [\"x\"]\nmax_concurrent = 0\n",
                "11:18: max_concurrent: expected an integer from 1 to 16",
            ),
            (
                "name = \"t\"\ndescription = \"d\"\ncommand = [\"x\"]\n[tool.input_schema]\ntype = \"string\"\n",
                "the input schema must be an object schema",
            ),
            (
                "name = \"t\"\ndescription = \"d\"\ncommand = [\"x\"]\n[tool.input_schema]\ntype = \"object\"\nproperties.a.type = 5\n",
                "tool t: invalid input schema",
            ),
            (
                "name = \"t\"\ndescription = \"d\"\ncommand = [\"x\"]\n[tool.input_schema]\ntype = \"object\"\nsince = 2026-01-01\n",
                "input_schema: a date-time has no JSON form",
            ),
            ("name = \"t\"\ndescription = \"d\"\ncommand = [\"x\"]\nshell = true\n", "unknown key `shell`"),
        ];
        for (body, expected) in cases {
            let err = dir.error(&tool(body));
            assert!(
                err.contains(expected),
                "{body}\n  gave {err:?}\n  expected {expected:?}"
            );
        }
        let twice =
            format!("{s}[[tool]]\nname = \"t\"\ndescription = \"d\"\ncommand = [\"x\"]\n[[tool]]\nname = \"t\"\n");
        assert!(dir
            .error(&twice)
            .contains("12:8: name: duplicate tool name \"t\"; the tool at line 7 already uses it"));
        assert!(dir
            .error(&format!("{s}[tool]\nname = \"t\"\n"))
            .contains("[[tool]] with double brackets"));
    }

    #[test]
    fn the_example_tool_of_config_toml_is_valid_once_uncommented() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let (before, rest) = text.split_once("# [[tool]]\n").expect("a commented-out [[tool]]");
        let (block, after) = rest.split_once("\n\n").expect("the block ends with a blank line");
        // Keys and tables are uncommented; the lines explaining them stay comments.
        let uncommented: Vec<String> = block
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[') || rest.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')) =>
                {
                    rest.to_owned()
                }
                _ => line.to_owned(),
            })
            .collect();
        let text = format!("{before}[[tool]]\n{}\n\n{after}", uncommented.join("\n"))
            .replace("/usr/local/bin/cpu-temperature", "/bin/sh");
        let config = parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        let tool = &config.session("kitchen").unwrap().mcp.tools[0];
        assert_eq!(tool.spec.name(), "server.cpu_temperature");
        assert_eq!(tool.argv, ["/bin/sh", "--celsius"]);
        assert_eq!(
            tool.spec.input_schema()["properties"]["unit"]["enum"],
            json!(["celsius", "fahrenheit"])
        );
    }

    #[test]
    fn slow_tools_and_tools_for_sessions_without_mcp_are_warned_about() {
        let dir = Dir::new();
        let text = format!(
            "{}[[tool]]\nname = \"t\"\ndescription = \"d\"\ncommand = [\"x\"]\nsessions = [\"kitchen\"]\ntimeout = \"45s\"\n",
            session("kitchen", "mcp = \"off\"\n")
        );
        let config = dir.parse(&text).unwrap();
        assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
        assert!(config.warnings[0].contains("gives up on a tool call after 30s"));
        assert!(config.warnings[1].starts_with("session=kitchen has mcp = \"off\""));
    }
}
