//! MCP end to end: the real binary answers a loopback server that plays
//! xiaozhi-esp32-server's side (`initialize` at each hello, `tools/list`
//! paged with `nextCursor`, `tools/call` with the ids it chooses), with
//! tools from the config (scripts written here) and from a program on the
//! control socket. Every call gets the right JSON-RPC answer with its id,
//! nothing runs when the arguments fail the schema, the session stays
//! ready throughout, and a call in flight when the connection dies is
//! dropped rather than sent to the next connection.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::process::{config_toml, control, socket_of, wait_sessions, Control, Daemon, Scratch};
use wsvisor::protocol::{Command, EventLine, MetricsText, OfferedTool, SessionState, SessionToolList, ToolCallEvent};
use wsvisor_loopback::{Fault, McpOptions, McpReply, Server, ServerOptions};

const LIMIT: Duration = Duration::from_secs(10);
const DEVICE: &str = "dev-kitchen";

/// Padding that makes the config tools need more than one 8000-byte page.
const PADDING: usize = 900;
const PADDED_TOOLS: usize = 10;

/// The loopback server as the real one, except that tests list tools
/// when they want to (the initialize still comes at every hello).
fn server() -> Server {
    Server::start(ServerOptions {
        mcp: McpOptions {
            list_tools_after: None,
            ..McpOptions::default()
        },
        ..ServerOptions::default()
    })
    .unwrap()
}

fn script(scratch: &Scratch, name: &str, body: &str) -> PathBuf {
    let path = scratch.write(name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The tools every test's daemon has.
fn tools_toml(scratch: &Scratch) -> String {
    let echo = script(
        scratch,
        "echo.sh",
        r#"read -r args; printf 'session=%s tool=%s args=%s\n' "$WSVISOR_SESSION" "$WSVISOR_TOOL" "$args""#,
    );
    let marker = scratch.path("ran.marker");
    let guarded = script(scratch, "guarded.sh", &format!("touch {}; echo done", marker.display()));
    let slow = script(scratch, "slow.sh", "sleep 5; echo late");
    let chatty = script(scratch, "chatty.sh", "yes chatter");
    let failing = script(scratch, "failing.sh", "echo 'lamp bus unreachable' >&2; exit 4");
    let slowish = script(scratch, "slowish.sh", "sleep 0.6; echo finished");
    let mut text = format!(
        r#"
[[tool]]
name = "echo"
description = "Says what it was given"
command = ["{echo}"]
[tool.input_schema]
type = "object"
required = ["room"]
[tool.input_schema.properties.room]
type = "string"

[[tool]]
name = "guarded"
description = "Runs only with a level from 0 to 10"
command = ["{guarded}"]
[tool.input_schema]
type = "object"
required = ["level"]
[tool.input_schema.properties.level]
type = "integer"
minimum = 0
maximum = 10

[[tool]]
name = "slow"
description = "Never answers in time"
command = ["{slow}"]
timeout = "300ms"

[[tool]]
name = "chatty"
description = "Says far too much"
command = ["{chatty}"]
max_output = "1KiB"

[[tool]]
name = "failing"
description = "Fails"
command = ["{failing}"]

[[tool]]
name = "slowish"
description = "Answers after 600 ms"
command = ["{slowish}"]
"#,
        echo = echo.display(),
        guarded = guarded.display(),
        slow = slow.display(),
        chatty = chatty.display(),
        failing = failing.display(),
        slowish = slowish.display(),
    );
    for i in 0..PADDED_TOOLS {
        text.push_str(&format!(
            "\n[[tool]]\nname = \"pad{i:02}\"\ndescription = \"{}\"\ncommand = [\"{}\"]\n",
            "p".repeat(PADDING),
            echo.display()
        ));
    }
    text
}

/// A daemon with session `kitchen` (and the test tools) against `server`.
fn daemon(scratch: &Scratch, server: &Server, session_extra: &str) -> (Daemon, Control) {
    let mut text = config_toml(scratch, "", &[("kitchen", &server.url())]);
    text.push_str(session_extra);
    text.push_str(&tools_toml(scratch));
    let config = scratch.write("config.toml", &text);
    let daemon = Daemon::run(&config, &scratch.path("stderr.log"));
    let mut control = control(&socket_of(scratch));
    wait_ready(&mut control);
    (daemon, control)
}

fn wait_ready(control: &mut Control) -> Option<String> {
    let sessions = wait_sessions(control, "kitchen ready", |s| {
        s.iter().any(|s| s.name == "kitchen" && s.state == SessionState::Ready)
    });
    sessions[0].session_id.clone()
}

fn reply(server: &Server, id: u64) -> McpReply {
    server
        .wait_for_mcp_reply(id, LIMIT)
        .unwrap_or_else(|| panic!("no reply to request {id}; replies: {:#?}", server.mcp_replies()))
}

/// `tools/call` and its reply: (isError, text).
fn call(server: &Server, tool: &str, arguments: Value) -> (bool, String) {
    let sent = server.mcp_call_tool(Some(DEVICE), tool, arguments);
    assert_eq!(sent.connections, 1);
    let reply = reply(server, sent.id);
    assert_eq!(reply.id_u64(), Some(sent.id), "the id is echoed");
    assert_eq!(reply.answers.as_deref(), Some("tools/call"));
    let result = reply
        .result
        .unwrap_or_else(|| panic!("a result for {tool}: {:?}", reply.error));
    let text = result["content"][0]["text"].as_str().expect("a text").to_owned();
    assert_eq!(result["content"][0]["type"], "text");
    let is_error = result["isError"].as_bool().expect("isError");
    if is_error {
        assert_eq!(result["error"], text.as_str(), "the real server reads result.error");
    }
    (is_error, text)
}

/// `tools/call` answered with a JSON-RPC error: (code, message).
fn call_error(server: &Server, tool: &str, arguments: Value) -> (i64, String) {
    let sent = server.mcp_call_tool(Some(DEVICE), tool, arguments);
    let reply = reply(server, sent.id);
    let error = reply
        .error
        .unwrap_or_else(|| panic!("an error for {tool}: {:?}", reply.result));
    (
        error["code"].as_i64().expect("a code"),
        error["message"].as_str().unwrap().to_owned(),
    )
}

/// A program on the control socket offering tools.
struct Program {
    control: Control,
}

impl Program {
    fn offer(path: &std::path::Path, tools: Vec<OfferedTool>) -> Program {
        let mut control = control(path);
        let offered = control
            .call(&Command::OfferTools { sessions: None, tools })
            .unwrap()
            .outcome
            .expect("the offer is taken");
        assert!(offered["tools"].is_array(), "{offered}");
        Program { control }
    }

    fn next_call(&mut self) -> ToolCallEvent {
        let line = self.control.next_line().unwrap().expect("a tool_call line");
        match serde_json::from_str::<EventLine>(&line) {
            Ok(EventLine::ToolCall(call)) => call,
            other => panic!("expected a tool_call, got {line}: {other:?}"),
        }
    }

    fn answer(&mut self, call_id: &str, result: Value) {
        let answer = Command::ToolResult {
            call_id: call_id.to_owned(),
            result: Some(result),
            error: None,
        };
        let response = self.control.call(&answer).unwrap();
        assert_eq!(
            response.outcome.expect("the answer is taken"),
            json!({"answered": true})
        );
    }
}

fn lamp() -> OfferedTool {
    OfferedTool {
        name: "lamp".into(),
        description: "Turns the hall lamp on or off".into(),
        input_schema: Some(json!({"type": "object", "properties": {"on": {"type": "boolean"}}, "required": ["on"]})),
        timeout_ms: Some(2000),
    }
}

fn metrics(control: &mut Control) -> String {
    control.result::<MetricsText>(&Command::Metrics).unwrap().text
}

#[test]
fn a_server_initializes_lists_every_page_and_calls_config_and_program_tools() {
    let server = server();
    let scratch = Scratch::new("mcp");
    let (daemon, mut control) = daemon(&scratch, &server, "");
    let session_id = wait_ready(&mut control);

    // The initialize the server sends right after the hello.
    let init = reply(&server, 1);
    assert_eq!(init.answers.as_deref(), Some("initialize"));
    let result = init.result.expect("an initialize result");
    assert_eq!(result["protocolVersion"], "2024-11-05");
    assert_eq!(result["capabilities"], json!({"tools": {}}));
    assert_eq!(result["serverInfo"]["name"], "wsvisor");
    assert_eq!(server.client_hellos()[0]["features"]["mcp"], true);

    let mut program = Program::offer(&socket_of(&scratch), vec![lamp()]);

    // Every page, each within the firmware's 8000 bytes, cursors as it makes them.
    let listing = server.mcp_list_tools(Some(DEVICE));
    assert_eq!(listing.connections, 1);
    let tools = server.wait_for_mcp_tools(DEVICE, LIMIT).expect("a listing");
    assert!(tools.complete, "{tools:?}");
    assert!(tools.pages >= 2, "{} tools in {} pages", tools.tools.len(), tools.pages);
    let mut expected: Vec<String> = ["echo", "guarded", "slow", "chatty", "failing", "slowish"]
        .map(str::to_owned)
        .to_vec();
    expected.extend((0..PADDED_TOOLS).map(|i| format!("pad{i:02}")));
    expected.push("lamp".into());
    assert_eq!(tools.names(), expected);
    for cursor in &tools.cursors {
        assert!(
            expected.contains(cursor),
            "a cursor names the next page's first tool: {cursor}"
        );
    }
    let page_replies: Vec<McpReply> = server
        .mcp_replies()
        .into_iter()
        .filter(|r| r.id_u64() == Some(listing.id))
        .collect();
    assert_eq!(page_replies.len(), tools.pages);
    for page in &page_replies {
        let size = page.result.as_ref().unwrap().to_string().len();
        assert!(size <= 8000, "a page of {size} bytes");
    }
    let echo = &tools.tools[0];
    assert_eq!(echo["description"], "Says what it was given");
    assert_eq!(echo["inputSchema"]["required"], json!(["room"]));

    // A config tool: arguments on stdin, the session in the environment.
    let (is_error, text) = call(&server, "echo", json!({"room": "hall"}));
    assert!(!is_error);
    assert_eq!(text, r#"session=kitchen tool=echo args={"room":"hall"}"#);

    // A program's tool: the call reaches it as an event, its answer the server.
    let asked = server.mcp_call_tool(Some(DEVICE), "lamp", json!({"on": true}));
    let event = program.next_call();
    assert_eq!((event.session.as_str(), event.tool.as_str()), ("kitchen", "lamp"));
    assert_eq!(event.arguments, json!({"on": true}));
    assert_eq!(event.timeout_ms, 2000);
    program.answer(&event.call_id, json!("the hall lamp is on"));
    let answered = reply(&server, asked.id);
    assert_eq!(answered.result.unwrap()["content"][0]["text"], "the hall lamp is on");

    // A program's tool with arguments its schema refuses never reaches it.
    let (code, message) = call_error(&server, "lamp", json!({"on": "yes"}));
    assert_eq!(code, -32602, "{message}");
    assert!(message.contains("Invalid arguments for tool lamp"), "{message}");

    // No such tool; no such method; a notification gets nothing.
    let (code, message) = call_error(&server, "nope", json!({}));
    assert_eq!((code, message.as_str()), (-32602, "Unknown tool: nope"));
    let other = server.mcp_request(Some(DEVICE), "resources/list", None);
    let error = reply(&server, other.id).error.expect("an error");
    assert_eq!(error["code"], -32601);
    assert_eq!(error["message"], "Method not found: resources/list");
    let before = server.mcp_replies().len();
    server.mcp_send(
        Some(DEVICE),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    let ping = server.mcp_request(Some(DEVICE), "ping", None);
    assert_eq!(reply(&server, ping.id).result, Some(json!({})));
    assert_eq!(
        server.mcp_replies().len(),
        before + 1,
        "the notification was not answered; the ping after it was"
    );

    // A failing command: isError with its status and stderr.
    let (is_error, text) = call(&server, "failing", json!({}));
    assert!(is_error);
    assert_eq!(text, "exit status 4: lamp bus unreachable");

    // Still the same connection: nothing above cost the session anything.
    assert_eq!(wait_ready(&mut control), session_id);
    let tools: SessionToolList = control
        .result(&Command::Tools {
            session: "kitchen".into(),
        })
        .unwrap();
    assert_eq!(tools.mcp, "builtin");
    assert_eq!(tools.tools.len(), expected.len());
    assert_eq!(tools.tools.last().unwrap().source, "program");
    let text = metrics(&mut control);
    for line in [
        "wsvisor_tool_calls_total{tool=\"echo\",outcome=\"ok\"} 1\n",
        "wsvisor_tool_calls_total{tool=\"lamp\",outcome=\"ok\"} 1\n",
        "wsvisor_tool_calls_total{tool=\"lamp\",outcome=\"invalid_arguments\"} 1\n",
        "wsvisor_tool_calls_total{tool=\"_unknown\",outcome=\"unknown_tool\"} 1\n",
        "wsvisor_tool_calls_total{tool=\"failing\",outcome=\"error\"} 1\n",
        "wsvisor_tool_call_duration_seconds_count{tool=\"echo\"} 1\n",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    daemon.stop();
}

#[test]
fn schema_failures_run_nothing_and_timeouts_caps_and_departures_are_errors() {
    let server = server();
    let scratch = Scratch::new("mcp-errors");
    let (daemon, mut control) = daemon(&scratch, &server, "");
    let session_id = wait_ready(&mut control);
    let marker = scratch.path("ran.marker");

    for bad in [json!({}), json!({"level": 11}), json!({"level": "3"})] {
        let (code, message) = call_error(&server, "guarded", bad.clone());
        assert_eq!(code, -32602, "{bad}: {message}");
        assert!(message.starts_with("Invalid arguments for tool guarded: "), "{message}");
    }
    let (code, _) = call_error(&server, "guarded", json!(["not", "an", "object"]));
    assert_eq!(code, -32602);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "the command ran although its arguments were refused");
    let (is_error, text) = call(&server, "guarded", json!({"level": 3}));
    assert_eq!((is_error, text.as_str()), (false, "done"));
    assert!(marker.exists(), "valid arguments run it");

    let started = Instant::now();
    let (is_error, text) = call(&server, "slow", json!({}));
    let took = started.elapsed();
    assert!(is_error);
    assert_eq!(text, "tool slow did not answer within 300ms");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(4),
        "{took:?}"
    );

    let started = Instant::now();
    let (is_error, text) = call(&server, "chatty", json!({}));
    assert!(is_error);
    assert!(text.contains("more than 1024 bytes"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stopped at once, not at its timeout"
    );

    // The program goes away with a call in flight: the server hears so at once.
    let mut program = Program::offer(&socket_of(&scratch), vec![lamp()]);
    let asked = server.mcp_call_tool(Some(DEVICE), "lamp", json!({"on": false}));
    let event = program.next_call();
    assert_eq!(event.arguments, json!({"on": false}));
    let left = Instant::now();
    drop(program);
    let answered = reply(&server, asked.id);
    assert!(left.elapsed() < Duration::from_secs(1), "{:?}", left.elapsed());
    let result = answered.result.unwrap();
    assert_eq!(result["isError"], true);
    assert_eq!(
        result["content"][0]["text"],
        "the program offering tool lamp went away before answering"
    );
    // Its tools are gone with it.
    let (code, message) = call_error(&server, "lamp", json!({"on": true}));
    assert_eq!((code, message.as_str()), (-32602, "Unknown tool: lamp"));

    // A program that does not answer in time: an error for the server; its late answer is refused.
    let mut late = Program::offer(
        &socket_of(&scratch),
        vec![OfferedTool {
            timeout_ms: Some(200),
            ..lamp()
        }],
    );
    let (is_error, text) = call(&server, "lamp", json!({"on": true}));
    assert!(is_error);
    assert_eq!(text, "tool lamp did not answer within 200ms");
    let event = late.next_call();
    let refused = late
        .control
        .call(&Command::ToolResult {
            call_id: event.call_id,
            result: Some(json!("too late")),
            error: None,
        })
        .unwrap();
    let error = refused.outcome.unwrap_err();
    assert_eq!(error.code, "not_found", "{}", error.message);

    assert_eq!(wait_ready(&mut control), session_id, "the session stayed up");
    let text = metrics(&mut control);
    for line in [
        "wsvisor_tool_calls_total{tool=\"guarded\",outcome=\"invalid_arguments\"} 3\n",
        "wsvisor_tool_calls_total{tool=\"slow\",outcome=\"timeout\"} 1\n",
        "wsvisor_tool_calls_total{tool=\"chatty\",outcome=\"output_too_large\"} 1\n",
        "wsvisor_tool_calls_total{tool=\"lamp\",outcome=\"withdrawn\"} 1\n",
        "wsvisor_tool_calls_total{tool=\"lamp\",outcome=\"timeout\"} 1\n",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    daemon.stop();
}

#[test]
fn a_call_in_flight_when_the_connection_dies_is_dropped_and_the_next_connection_works() {
    let server = server();
    let scratch = Scratch::new("mcp-reconnect");
    let (daemon, mut control) = daemon(&scratch, &server, "");
    let first = wait_ready(&mut control);
    assert_eq!(reply(&server, 1).answers.as_deref(), Some("initialize"));

    let asked = server.mcp_call_tool(Some(DEVICE), "slowish", json!({}));
    // The call has started (its command takes 600 ms) when the line drops.
    std::thread::sleep(Duration::from_millis(150));
    server.inject(Fault::Drop);
    let second = wait_sessions(&mut control, "kitchen back with another session_id", |s| {
        s.iter()
            .any(|s| s.state == SessionState::Ready && s.session_id.is_some() && s.session_id != first)
    });
    assert!(server.wait_for_hellos(2, LIMIT));
    // The command finishes; its reply must not reach the new connection,
    // whose server never asked.
    std::thread::sleep(Duration::from_millis(900));
    assert!(
        server.mcp_reply(asked.id).is_none(),
        "a reply crossed to the next connection: {:?}",
        server.mcp_reply(asked.id)
    );
    let text = metrics(&mut control);
    assert!(
        text.contains("wsvisor_tool_calls_total{tool=\"slowish\",outcome=\"abandoned\"} 1\n"),
        "{text}"
    );

    // The new connection was initialized and can list and call again.
    let inits = server
        .mcp_replies()
        .into_iter()
        .filter(|r| r.answers.as_deref() == Some("initialize"))
        .count();
    assert_eq!(inits, 2);
    server.mcp_list_tools(Some(DEVICE));
    let tools = server.wait_for_mcp_tools(DEVICE, LIMIT).unwrap();
    assert!(tools.complete);
    assert_eq!(tools.session_id, second[0].session_id);
    let (is_error, text) = call(&server, "slowish", json!({}));
    assert_eq!((is_error, text.as_str()), (false, "finished"));
    daemon.stop();
}

#[test]
fn with_mcp_off_the_hello_announces_nothing_and_no_tool_is_offered() {
    let server = server();
    let scratch = Scratch::new("mcp-off");
    let (daemon, mut control) = daemon(&scratch, &server, "mcp = \"off\"\n");
    let hello = &server.client_hellos()[0];
    assert!(hello["features"].get("mcp").is_none(), "{hello}");
    assert_eq!(
        server.mcp_request(Some(DEVICE), "tools/list", None).connections,
        0,
        "the server sends MCP only to clients that announced it"
    );
    let tools: SessionToolList = control
        .result(&Command::Tools {
            session: "kitchen".into(),
        })
        .unwrap();
    assert_eq!((tools.mcp.as_str(), tools.tools.len()), ("off", 0));
    daemon.stop();
}

#[test]
fn subscribers_still_see_every_mcp_message() {
    let server = server();
    let scratch = Scratch::new("mcp-subscribe");
    let (daemon, _control) = daemon(&scratch, &server, "");
    let mut events = control(&socket_of(&scratch)).subscribe(None, false).unwrap();
    events.set_timeout(Some(LIMIT));
    let sent = server.mcp_request(Some(DEVICE), "ping", None);
    let deadline = Instant::now() + LIMIT;
    loop {
        assert!(Instant::now() < deadline, "no mcp message event");
        if let Some(EventLine::Message { message, .. }) = events.next_event().unwrap() {
            if message["type"] == "mcp" {
                assert_eq!(message["payload"]["id"], sent.id);
                assert_eq!(message["payload"]["method"], "ping");
                break;
            }
        }
    }
    assert!(
        reply(&server, sent.id).result.is_some(),
        "and the responder answered it"
    );
    daemon.stop();
}

#[test]
fn with_mcp_external_a_program_answers_through_send_and_wsvisor_stays_silent() {
    let server = server();
    let scratch = Scratch::new("mcp-external");
    let (daemon, mut control) = daemon(&scratch, &server, "mcp = \"external\"\n");
    assert_eq!(server.client_hellos()[0]["features"]["mcp"], true, "announced");
    let mut events = support::process::control(&socket_of(&scratch))
        .subscribe(Some(vec!["kitchen".into()]), false)
        .unwrap();
    events.set_timeout(Some(LIMIT));
    let asked = server.mcp_request(Some(DEVICE), "tools/list", None);
    let request = loop {
        if let Some(EventLine::Message { message, .. }) = events.next_event().unwrap() {
            if message["type"] == "mcp" {
                break message["payload"].clone();
            }
        }
    };
    assert_eq!(request["id"], asked.id);
    let answer = json!({"type": "mcp", "payload": {"jsonrpc": "2.0", "id": request["id"], "result": {"tools": []}}});
    let Value::Object(message) = answer else { unreachable!() };
    control
        .call(&Command::Send {
            session: "kitchen".into(),
            message,
        })
        .unwrap()
        .outcome
        .expect("sent");
    let replied = reply(&server, asked.id);
    assert_eq!(replied.result, Some(json!({"tools": []})));
    std::thread::sleep(Duration::from_millis(300));
    let replies: Vec<McpReply> = server.mcp_replies();
    assert_eq!(replies.len(), 1, "only the program answered: {replies:#?}");
    assert!(
        server.mcp_reply(1).is_none(),
        "wsvisor left the initialize to the program"
    );
    let tools: SessionToolList = control
        .result(&Command::Tools {
            session: "kitchen".into(),
        })
        .unwrap();
    assert_eq!((tools.mcp.as_str(), tools.tools.len()), ("external", 0));
    daemon.stop();
}
