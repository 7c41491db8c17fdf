//! The OTA + activation endpoint over real HTTP: the answer of the real
//! server's simple OTA endpoint, activation v2 with the HMAC key registered
//! in `application.elf_sha256`, expiry, refusals, and a device following
//! the answer to a WebSocket that needs no token.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wsvisor_loopback::{
    hmac_sha256_hex, ActivationOptions, OtaOptions, OtaRequestKind, OtaServer, Server, ServerOptions, HOSTILE_TEXT,
};

const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const DEVICE: &str = "02:00:00:00:00:01";

struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP request with the headers the firmware and py-xiaozhi send.
fn request(ota: &OtaServer, method: &str, path: &str, device: Option<&str>, body: &str) -> Answer {
    let mut stream = TcpStream::connect(ota.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", ota.addr());
    if let Some(device) = device {
        head.push_str(&format!(
            "Device-Id: {device}\r\nClient-Id: 6f1c0b8e-0000-4000-8000-000000000001\r\nActivation-Version: 2\r\n\
             Serial-Number: SN-TEST\r\nUser-Agent: wsvisor/0.1.0\r\nAccept-Language: zh-CN\r\n"
        ));
    }
    head.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    Answer {
        status,
        body: body.to_owned(),
    }
}

fn device_body(key: &str) -> String {
    json!({
        "version": 2,
        "mac_address": DEVICE,
        "uuid": "6f1c0b8e-0000-4000-8000-000000000001",
        "application": {"name": "wsvisor", "version": "0.1.0", "elf_sha256": key},
        "board": {"type": "wsvisor", "name": "wsvisor", "mac": DEVICE},
    })
    .to_string()
}

fn ota_post(ota: &OtaServer, device: &str, key: &str) -> Value {
    let answer = request(ota, "POST", "/xiaozhi/ota/", Some(device), &device_body(key));
    assert_eq!(answer.status, 200);
    answer.json()
}

fn signed(challenge: &str, key: &str, wrapped: bool) -> String {
    let payload = json!({"algorithm": "hmac-sha256", "serial_number": "SN-TEST", "challenge": challenge, "hmac": hmac_sha256_hex(key, challenge)});
    if wrapped {
        json!({ "Payload": payload }).to_string()
    } else {
        payload.to_string()
    }
}

fn activating(options: ActivationOptions) -> OtaServer {
    OtaServer::start(OtaOptions {
        activation: Some(options),
        ..OtaOptions::for_url("ws://127.0.0.1:9/xiaozhi/v1/", "")
    })
    .unwrap()
}

#[test]
fn the_real_servers_answer_with_auth_disabled() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let ota = OtaServer::start(OtaOptions::for_url(&server.url(), "")).unwrap();
    assert_eq!(ota.url(), format!("http://{}/xiaozhi/ota/", ota.addr()));
    assert_eq!(
        ota.activate_url(),
        format!("http://{}/xiaozhi/ota/activate", ota.addr())
    );
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let answer = ota_post(&ota, DEVICE, KEY);
    assert_eq!(answer["websocket"], json!({"url": server.url(), "token": ""}));
    assert_eq!(answer["firmware"], json!({"version": "0.1.0", "url": ""}));
    let stamp = answer["server_time"]["timestamp"].as_u64().unwrap();
    assert!(stamp >= before && stamp < before + 5_000, "{stamp} vs {before}");
    assert_eq!(answer["server_time"]["timezone_offset"], 480);
    assert!(answer.get("activation").is_none() && answer.get("mqtt").is_none());

    let recorded = ota.ota_requests();
    assert_eq!(recorded.len(), 1);
    let seen = &recorded[0];
    assert_eq!((seen.kind, seen.method.as_str()), (OtaRequestKind::Ota, "POST"));
    assert_eq!(seen.header("Device-Id"), Some(DEVICE));
    assert_eq!(seen.header("activation-version"), Some("2"));
    assert_eq!(seen.header("user-agent"), Some("wsvisor/0.1.0"));
    assert_eq!(seen.payload.as_ref().unwrap()["application"]["elf_sha256"], KEY);
    assert_eq!(seen.status, 200);
    assert_eq!(seen.answer_json().unwrap(), answer);
    assert_eq!(ota.device(DEVICE).unwrap().key.as_deref(), Some(KEY));

    let nameless = request_without_device(&ota);
    assert_eq!(nameless.json(), json!({"success": false, "message": "request error."}));
    let get = request(&ota, "GET", "/xiaozhi/ota/", None, "");
    assert_eq!(get.status, 200);
    assert!(get.body.contains(&server.url()), "{}", get.body);
    assert_eq!(request(&ota, "POST", "/elsewhere", Some(DEVICE), "{}").status, 404);
    assert_eq!(ota.requests().len(), 4);
}

fn request_without_device(ota: &OtaServer) -> Answer {
    request(ota, "POST", "/xiaozhi/ota/", None, "{}")
}

#[tokio::test]
async fn a_device_follows_an_empty_token_to_a_server_that_needs_none() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let ota = OtaServer::start(OtaOptions::for_url(&server.url(), "")).unwrap();
    let url = ota.url();
    let answer = tokio::task::spawn_blocking(move || {
        let ota_addr = url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
        let mut stream = TcpStream::connect(ota_addr).unwrap();
        let body = device_body(KEY);
        write!(
            stream,
            "POST /xiaozhi/ota/ HTTP/1.1\r\nDevice-Id: {DEVICE}\r\nClient-Id: c\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        serde_json::from_str::<Value>(raw.split_once("\r\n\r\n").unwrap().1).unwrap()
    })
    .await
    .unwrap();
    let ws_url = answer["websocket"]["url"].as_str().unwrap();
    assert_eq!(answer["websocket"]["token"], "");
    // The firmware sends no Authorization when its token is empty.
    let mut ws = common::try_connect(ws_url, DEVICE, None).await.unwrap();
    common::hello(&mut ws).await;
    assert_eq!(server.last_headers().unwrap().authorization, None);
    assert_eq!(server.hellos(), 1);
}

#[test]
fn activation_v2_answers_202_three_times_then_200() {
    let ota = activating(ActivationOptions::default());
    let answer = ota_post(&ota, DEVICE, KEY);
    let activation = &answer["activation"];
    let code = activation["code"].as_str().unwrap();
    let challenge = activation["challenge"].as_str().unwrap();
    assert_eq!(code.len(), 6);
    assert_eq!(activation["message"], format!("http://127.0.0.1:8001\n{code}"));
    let timeout = activation["timeout_ms"].as_u64().unwrap();
    assert!(timeout > 290_000 && timeout <= 300_000, "{timeout}");
    assert!(answer.get("websocket").is_some(), "sections stay while pending");
    assert_eq!(
        ota_post(&ota, DEVICE, KEY)["activation"]["code"],
        code,
        "same code until it expires"
    );

    // py-xiaozhi's wrapped form, the path joined with a doubled slash.
    for poll in 1..=3 {
        let answer = request(
            &ota,
            "POST",
            "/xiaozhi/ota//activate",
            Some(DEVICE),
            &signed(challenge, KEY, true),
        );
        assert_eq!((answer.status, answer.body.as_str()), (202, ""), "poll {poll}");
        assert_eq!(ota.device(DEVICE).unwrap().activation.unwrap().polls, poll);
    }
    let bound = request(
        &ota,
        "POST",
        "/xiaozhi/ota/activate",
        Some(DEVICE),
        &signed(challenge, KEY, true),
    );
    assert_eq!((bound.status, bound.body.as_str()), (200, "success"));
    assert!(ota.device(DEVICE).unwrap().bound);
    let after = ota_post(&ota, DEVICE, KEY);
    assert!(after.get("activation").is_none(), "{after}");
    assert!(after.get("websocket").is_some());

    let activations = ota.activate_requests();
    assert_eq!(activations.len(), 4);
    assert_eq!(activations[0].payload.as_ref().unwrap()["challenge"], challenge);
    assert!(activations[0].json.as_ref().unwrap().get("Payload").is_some());

    // The firmware's plain form works the same for another device.
    let other = "02:00:00:00:00:02";
    let answer = ota_post(&ota, other, "another-key");
    let challenge = answer["activation"]["challenge"].as_str().unwrap().to_owned();
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            request(
                &ota,
                "POST",
                "/xiaozhi/ota/activate",
                Some(other),
                &signed(&challenge, "another-key", false),
            )
            .status
        })
        .collect();
    assert_eq!(statuses, [202, 202, 202, 200]);
}

#[test]
fn wrong_hmac_is_refused_and_expired_codes_are_replaced() {
    let ota = activating(ActivationOptions {
        pending_polls: 0,
        code_ttl: Duration::from_millis(300),
        ..ActivationOptions::default()
    });
    let first = ota_post(&ota, DEVICE, KEY);
    let challenge = first["activation"]["challenge"].as_str().unwrap().to_owned();
    let wrong = request(
        &ota,
        "POST",
        "/xiaozhi/ota/activate",
        Some(DEVICE),
        &signed(&challenge, "not-the-key", true),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"], "hmac mismatch");
    let stale = request(
        &ota,
        "POST",
        "/xiaozhi/ota/activate",
        Some(DEVICE),
        &signed("made-up", KEY, true),
    );
    assert_eq!(stale.status, 400);
    let garbage = request(&ota, "POST", "/xiaozhi/ota/activate", Some(DEVICE), "not json");
    assert_eq!(garbage.status, 400);
    assert!(!ota.device(DEVICE).unwrap().bound);

    // Expired by time: 410, and the next OTA hands out a fresh pair.
    std::thread::sleep(Duration::from_millis(350));
    let late = request(
        &ota,
        "POST",
        "/xiaozhi/ota/activate",
        Some(DEVICE),
        &signed(&challenge, KEY, true),
    );
    assert_eq!(late.status, 410);
    let second = ota_post(&ota, DEVICE, KEY);
    let fresh = second["activation"]["challenge"].as_str().unwrap().to_owned();
    assert_ne!(fresh, challenge);
    assert_eq!(ota.device(DEVICE).unwrap().codes_issued, 2);

    // Expired on demand.
    ota.expire_codes();
    assert!(ota.device(DEVICE).unwrap().activation.unwrap().expired);
    assert_eq!(
        request(
            &ota,
            "POST",
            "/xiaozhi/ota/activate",
            Some(DEVICE),
            &signed(&fresh, KEY, false)
        )
        .status,
        410
    );
    let third = ota_post(&ota, DEVICE, KEY);
    let newest = third["activation"]["challenge"].as_str().unwrap().to_owned();
    let ok = request(
        &ota,
        "POST",
        "/xiaozhi/ota/activate",
        Some(DEVICE),
        &signed(&newest, KEY, false),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn a_device_that_registered_no_key_cannot_activate() {
    let ota = activating(ActivationOptions::default());
    let body = json!({"application": {"version": "1.0"}}).to_string();
    let answer = request(&ota, "POST", "/xiaozhi/ota/", Some(DEVICE), &body).json();
    let challenge = answer["activation"]["challenge"].as_str().unwrap().to_owned();
    let refused = request(
        &ota,
        "POST",
        "/xiaozhi/ota/activate",
        Some(DEVICE),
        &signed(&challenge, KEY, true),
    );
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["error"], "no HMAC key registered for this device");
}

#[test]
fn fixed_codes_binding_failures_and_overrides() {
    let ota = activating(ActivationOptions {
        code: Some(HOSTILE_TEXT.into()),
        sections_while_pending: false,
        ..ActivationOptions::default()
    });
    let answer = ota_post(&ota, DEVICE, KEY);
    assert_eq!(answer["activation"]["code"], HOSTILE_TEXT);
    assert!(answer.get("websocket").is_none(), "{answer}");
    // A v1 device waits for the user: the console binds it.
    ota.bind(DEVICE);
    let bound = ota_post(&ota, DEVICE, KEY);
    assert!(bound.get("activation").is_none() && bound.get("websocket").is_some());
    ota.unbind(DEVICE);
    assert!(ota_post(&ota, DEVICE, KEY).get("activation").is_some());

    ota.update_options(|o| {
        o.mqtt = Some(json!({"endpoint": "mqtt.example:8883", "client_id": "GID@@@x", "username": "u", "password": "p", "publish_topic": "device-server", "subscribe_topic": "null"}));
        o.activation = None;
    });
    let with_mqtt = ota_post(&ota, DEVICE, KEY);
    assert_eq!(with_mqtt["mqtt"]["publish_topic"], "device-server");

    ota.update_options(|o| o.fail_status = Some(503));
    let failing = request(&ota, "POST", "/xiaozhi/ota/", Some(DEVICE), &device_body(KEY));
    assert_eq!(failing.status, 503);
    ota.update_options(|o| {
        o.fail_status = None;
        o.answer_override = Some(json!({"websocket": {"url": "ws://elsewhere/", "token": "t"}}));
    });
    assert_eq!(
        ota_post(&ota, DEVICE, KEY),
        json!({"websocket": {"url": "ws://elsewhere/", "token": "t"}})
    );
    ota.set_websocket("ws://new/", "tok");
    ota.update_options(|o| o.answer_override = None);
    assert_eq!(
        ota_post(&ota, DEVICE, KEY)["websocket"],
        json!({"url": "ws://new/", "token": "tok"})
    );
    assert!(ota.wait_for_requests(7, Duration::ZERO));
    assert_eq!(ota.requests().len(), 7);
}
