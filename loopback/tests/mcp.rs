//! The server's side of MCP as a device sees it: `initialize`, the
//! automatic tool listing that follows every `nextCursor`, the requests a
//! test sends, and the replies recorded with their ids.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use wsvisor_loopback::{McpOptions, Server, ServerOptions, MCP_FIRST_TEST_ID};

fn server_with(mcp: McpOptions) -> Server {
    Server::start(ServerOptions {
        mcp,
        ..Default::default()
    })
    .unwrap()
}

fn listing_after(ms: u64) -> McpOptions {
    McpOptions {
        list_tools_after: Some(Duration::from_millis(ms)),
        ..McpOptions::default()
    }
}

/// The next message, which must be an `mcp` one; its payload.
async fn read_mcp(ws: &mut Client) -> Value {
    let message = next_json(ws).await;
    assert_eq!(message["type"], "mcp", "{message}");
    message["payload"].clone()
}

/// Answers as the firmware does (`session_id` first, then type, payload).
async fn answer(ws: &mut Client, session_id: &str, payload: Value) {
    let text = json!({"session_id": session_id, "type": "mcp", "payload": payload}).to_string();
    ws.send(Message::Text(text)).await.unwrap();
}

fn tool(name: &str) -> Value {
    json!({"name": name, "description": format!("the {name}"), "inputSchema": {"type": "object", "properties": {}}})
}

#[tokio::test]
async fn initialize_then_every_page_of_tools() {
    let server = server_with(listing_after(100));
    let (mut ws, id) = ready(&server, "dev").await;
    let answered = Instant::now();
    answer(
        &mut ws,
        &id,
        json!({"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}}, "serverInfo": {"name": "wsvisor", "version": "0"}}}),
    )
    .await;
    let list = read_mcp(&mut ws).await;
    let waited = answered.elapsed();
    assert!(waited >= Duration::from_millis(90), "listed after {waited:?}");
    assert_eq!(list, json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));

    answer(
        &mut ws,
        &id,
        json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": [tool("a"), tool("b")], "nextCursor": "p2"}}),
    )
    .await;
    let next = read_mcp(&mut ws).await;
    assert_eq!(
        next,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"cursor": "p2"}})
    );
    answer(
        &mut ws,
        &id,
        json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": [tool("c")], "nextCursor": ""}}),
    )
    .await;

    let tools = server.wait_for_mcp_tools("dev", SOON).expect("tools recorded");
    assert!(tools.complete);
    assert_eq!(tools.names(), ["a", "b", "c"]);
    assert_eq!((tools.pages, tools.cursors.clone()), (2, vec!["p2".to_owned()]));
    assert_eq!(tools.session_id.as_deref(), Some(id.as_str()));
    assert!(
        next_within(&mut ws, Duration::from_millis(200)).await.is_none(),
        "no page after the last"
    );

    let replies = server.mcp_replies();
    let answers: Vec<Option<&str>> = replies.iter().map(|r| r.answers.as_deref()).collect();
    assert_eq!(answers, [Some("initialize"), Some("tools/list"), Some("tools/list")]);
    assert_eq!(replies[0].id_u64(), Some(1));
    assert_eq!(replies[0].result.as_ref().unwrap()["serverInfo"]["name"], "wsvisor");
    assert_eq!(replies[0].device_id, "dev");
    assert_eq!(replies[0].session_id.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn calls_from_a_test_get_fresh_ids_and_their_replies_are_kept() {
    let server = server_with(McpOptions {
        list_tools_after: None,
        ..McpOptions::default()
    });
    let (mut ws, id) = ready(&server, "dev").await;

    let sent = server.mcp_call_tool(Some("dev"), "lamp", json!({"on": true}));
    assert_eq!(sent.connections, 1);
    assert!(sent.id >= MCP_FIRST_TEST_ID);
    let call = read_mcp(&mut ws).await;
    assert_eq!(
        call,
        json!({"jsonrpc": "2.0", "id": sent.id, "method": "tools/call", "params": {"name": "lamp", "arguments": {"on": true}}})
    );
    answer(&mut ws, &id, json!({"jsonrpc": "2.0", "id": sent.id, "result": {"content": [{"type": "text", "text": "on"}], "isError": false}})).await;
    let reply = server.wait_for_mcp_reply(sent.id, SOON).expect("reply recorded");
    assert_eq!(reply.answers.as_deref(), Some("tools/call"));
    assert_eq!(reply.result.as_ref().unwrap()["content"][0]["text"], "on");
    assert!(!reply.is_error());

    let unknown = server.mcp_call_tool(Some("dev"), "nope", json!({}));
    assert!(unknown.id > sent.id);
    let call = read_mcp(&mut ws).await;
    answer(
        &mut ws,
        &id,
        json!({"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32601, "message": "Unknown tool: nope"}}),
    )
    .await;
    let error = server.wait_for_mcp_reply(unknown.id, SOON).unwrap();
    assert!(error.is_error());
    assert_eq!(error.error.unwrap()["code"], -32601);

    // Something the client says on its own is recorded too, answering nothing.
    answer(
        &mut ws,
        &id,
        json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
    )
    .await;
    assert!(server.wait_until(SOON, |s| s.mcp_replies().len() == 3));
    let note = server.mcp_replies().pop().unwrap();
    assert_eq!((note.id, note.answers), (None, None));
    assert_eq!(note.payload["method"], "notifications/tools/list_changed");

    // Generic requests, and raw payloads sent as given.
    let ping = server.mcp_request(Some("dev"), "ping", None);
    assert_eq!(
        read_mcp(&mut ws).await,
        json!({"jsonrpc": "2.0", "id": ping.id, "method": "ping"})
    );
    let raw = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(server.mcp_send(Some("dev"), raw.clone()), 1);
    assert_eq!(read_mcp(&mut ws).await, raw);
}

#[tokio::test]
async fn only_clients_that_announced_mcp_are_sent_any() {
    let server = server_with(McpOptions::default());
    let (mut a, _) = ready(&server, "a").await;
    let (mut b, _) = ready(&server, "b").await;
    let mut quiet = connect(&server, "quiet").await;
    quiet
        .send(Message::Text(r#"{"type":"hello","transport":"websocket"}"#.into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut quiet).await["type"], "hello");

    let sent = server.mcp_request(None, "tools/list", None);
    assert_eq!(sent.connections, 2);
    assert_eq!(read_mcp(&mut a).await["id"], sent.id);
    assert_eq!(read_mcp(&mut b).await["id"], sent.id);
    assert!(next_within(&mut quiet, Duration::from_millis(200)).await.is_none());
    assert_eq!(server.mcp_call_tool(Some("quiet"), "x", json!({})).connections, 0);
    assert_eq!(server.mcp_call_tool(Some("nobody"), "x", json!({})).connections, 0);
}

#[tokio::test]
async fn listing_on_demand_and_with_session_ids() {
    let server = server_with(McpOptions {
        list_tools_after: None,
        include_session_id: true,
        ..McpOptions::default()
    });
    let mut ws = connect(&server, "dev").await;
    send_hello(&mut ws).await;
    let id = next_json(&mut ws).await["session_id"].as_str().unwrap().to_owned();
    let init = next_json(&mut ws).await;
    assert_eq!(init["session_id"], id.as_str(), "{init}");
    answer(&mut ws, &id, json!({"jsonrpc": "2.0", "id": 1, "result": {}})).await;
    assert!(
        next_within(&mut ws, Duration::from_millis(300)).await.is_none(),
        "no automatic listing"
    );

    let listing = server.mcp_list_tools(Some("dev"));
    let first = read_mcp(&mut ws).await;
    assert_eq!(first["id"], listing.id);
    answer(
        &mut ws,
        &id,
        json!({"id": listing.id, "result": {"tools": [tool("x")], "nextCursor": "more"}}),
    )
    .await;
    let second = read_mcp(&mut ws).await;
    assert_eq!(
        (second["id"].clone(), second["params"]["cursor"].clone()),
        (json!(listing.id), json!("more"))
    );
    answer(
        &mut ws,
        &id,
        json!({"id": listing.id, "result": {"tools": [tool("y")]}}),
    )
    .await;
    let tools = server.wait_for_mcp_tools("dev", SOON).unwrap();
    assert_eq!(tools.names(), ["x", "y"]);
}

#[tokio::test]
async fn a_cursor_that_never_ends_is_followed_only_so_far() {
    let server = server_with(McpOptions {
        list_tools_after: Some(Duration::ZERO),
        max_pages: 3,
        ..McpOptions::default()
    });
    let (mut ws, id) = ready(&server, "dev").await;
    answer(&mut ws, &id, json!({"jsonrpc": "2.0", "id": 1, "result": {}})).await;
    let mut requests = 0;
    while let Some(Some(Ok(Message::Text(text)))) = next_within(&mut ws, Duration::from_millis(300)).await {
        let message: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(message["payload"]["method"], "tools/list");
        requests += 1;
        assert!(requests <= 10, "still asking");
        answer(
            &mut ws,
            &id,
            json!({"id": 2, "result": {"tools": [tool("t")], "nextCursor": "again"}}),
        )
        .await;
    }
    assert_eq!(requests, 3);
    let tools = server.wait_for_mcp_tools("dev", Duration::from_millis(100)).unwrap();
    assert!(!tools.complete);
    assert_eq!(tools.pages, 3);
}
