//! Typed text (`listen` `detect` with `text`) answered as the real server
//! answers it, and the ways an answer can go wrong on purpose: no answer, an
//! answer that stalls, a session lost mid-answer.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use wsvisor_loopback::{AnswerCut, AnswerKind, AnswerScript, CutAction, EventKind, Server, ServerOptions, TextAnswer};

fn server_answering(script: AnswerScript) -> Server {
    Server::start(ServerOptions {
        text_answer: TextAnswer::Script(script),
        ..Default::default()
    })
    .unwrap()
}

fn quick() -> AnswerScript {
    AnswerScript {
        step_delay: Duration::from_millis(1),
        ..AnswerScript::default()
    }
}

async fn say(ws: &mut Client, text: &str) {
    let detect = serde_json::json!({"type": "listen", "state": "detect", "text": text, "mode": "auto"});
    ws.send(Message::Text(detect.to_string())).await.unwrap();
}

/// What a client saw: texts parsed, audio as its length.
#[derive(Debug)]
enum Seen {
    Json(Value),
    Audio(usize),
    Close(u16, String),
    End,
}

/// Reads until `tts stop`, a Close, the end of the stream, or `quiet` of
/// silence.
async fn read_answer(ws: &mut Client, quiet: Duration) -> Vec<Seen> {
    let mut seen = Vec::new();
    for _ in 0..1000 {
        match next_within(ws, quiet).await {
            None => return seen,
            Some(Some(Ok(Message::Text(text)))) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                let stop = value["type"] == "tts" && value["state"] == "stop";
                seen.push(Seen::Json(value));
                if stop {
                    return seen;
                }
            }
            Some(Some(Ok(Message::Binary(audio)))) => seen.push(Seen::Audio(audio.len())),
            Some(Some(Ok(Message::Close(frame)))) => {
                let frame = frame.unwrap();
                seen.push(Seen::Close(u16::from(frame.code), frame.reason.into_owned()));
                return seen;
            }
            Some(None | Some(Err(_))) => {
                seen.push(Seen::End);
                return seen;
            }
            Some(Some(Ok(_))) => {}
        }
    }
    panic!("an endless answer");
}

/// `type` or `type/state` of each message; `audio` for binary frames.
fn shape(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| match s {
            Seen::Json(v) if v["type"] == "tts" => format!("tts/{}", v["state"].as_str().unwrap()),
            Seen::Json(v) => v["type"].as_str().unwrap().to_owned(),
            Seen::Audio(_) => "audio".to_owned(),
            Seen::Close(code, _) => format!("close {code}"),
            Seen::End => "end".to_owned(),
        })
        .collect()
}

fn json_at(seen: &[Seen], i: usize) -> &Value {
    match &seen[i] {
        Seen::Json(v) => v,
        other => panic!("{other:?} at {i}"),
    }
}

#[tokio::test]
async fn ordinary_text_gets_stt_llm_sentences_audio_and_stop() {
    let server = server_answering(quick());
    let (mut ws, id) = ready(&server, "dev").await;
    say(&mut ws, "  今天天气怎么样？ ").await;
    let seen = read_answer(&mut ws, SOON).await;
    assert_eq!(
        shape(&seen),
        [
            "stt",
            "tts/start",
            "llm",
            "tts/sentence_start",
            "audio",
            "audio",
            "audio",
            "tts/sentence_start",
            "audio",
            "audio",
            "audio",
            "tts/stop"
        ]
    );
    assert_eq!(
        json_at(&seen, 0)["text"],
        "今天天气怎么样？",
        "ends trimmed as the real server does"
    );
    assert_eq!(
        (
            json_at(&seen, 2)["text"].as_str(),
            json_at(&seen, 2)["emotion"].as_str()
        ),
        (Some("🙂"), Some("happy"))
    );
    assert_eq!(json_at(&seen, 3)["text"], "好的，我来回答你。");
    assert_eq!(json_at(&seen, 7)["text"], "这是第二句话。");
    for message in seen.iter().filter_map(|s| match s {
        Seen::Json(v) => Some(v),
        _ => None,
    }) {
        assert_eq!(message["session_id"], id.as_str(), "{message}");
    }
    assert!(matches!(seen[4], Seen::Audio(120)));
    assert!(server.wait_until(SOON, |s| s.events().iter().any(|e| e.kind
        == EventKind::AnswerFinished {
            kind: AnswerKind::Chat,
            cut: false
        })));
    assert_eq!(server.sent_binary_frames(), 6);
    assert!(next_within(&mut ws, Duration::from_millis(100)).await.is_none());
}

#[tokio::test]
async fn answers_are_paced_by_the_step_delay() {
    let server = server_answering(AnswerScript {
        step_delay: Duration::from_millis(30),
        sentence_end: true,
        ..AnswerScript::default()
    });
    let (mut ws, _) = ready(&server, "dev").await;
    let start = Instant::now();
    say(&mut ws, "hello").await;
    let seen = read_answer(&mut ws, SOON).await;
    let took = start.elapsed();
    // 14 messages: 13 pauses of 30 ms.
    assert_eq!(seen.len(), 14, "{:?}", shape(&seen));
    assert_eq!(shape(&seen).iter().filter(|s| *s == "tts/sentence_end").count(), 2);
    assert!(took >= Duration::from_millis(13 * 30), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn wake_words_get_the_greeting_and_exit_words_close() {
    let server = server_answering(quick());
    let (mut ws, _) = ready(&server, "dev").await;
    say(&mut ws, "你好，小智！").await;
    let seen = read_answer(&mut ws, SOON).await;
    assert_eq!(
        shape(&seen),
        ["tts/start", "tts/sentence_start", "audio", "audio", "audio", "tts/stop"]
    );
    assert_eq!(json_at(&seen, 1)["text"], "我在这里哦！");

    say(&mut ws, "退出。").await;
    let seen = read_answer(&mut ws, SOON).await;
    assert_eq!(shape(&seen), ["stt", "tts/start", "close 1000"]);
    assert_eq!(json_at(&seen, 0)["text"], "退出");
    assert!(matches!(&seen[2], Seen::Close(1000, reason) if reason.is_empty()));
    assert!(server.wait_for_open(0, SOON));
}

#[tokio::test]
async fn no_emotion_for_a_client_without_emoji() {
    let server = server_answering(quick());
    let mut ws = connect(&server, "dev").await;
    ws.send(Message::Text(r#"{"type":"hello","features":{"emoji":false}}"#.into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "hello");
    say(&mut ws, "hi").await;
    let seen = read_answer(&mut ws, SOON).await;
    assert!(!shape(&seen).contains(&"llm".to_owned()), "{:?}", shape(&seen));
    assert_eq!(shape(&seen).last().map(String::as_str), Some("tts/stop"));
}

#[tokio::test]
async fn a_server_that_never_answers() {
    let server = Server::start(ServerOptions {
        text_answer: TextAnswer::Ignore,
        ..Default::default()
    })
    .unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    say(&mut ws, "anyone?").await;
    assert!(server.wait_for_texts(1, SOON), "recorded all the same");
    assert!(next_within(&mut ws, Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn answers_cut_short_stall_close_or_drop() {
    let cut = |after, then| AnswerScript {
        cut: Some(AnswerCut { after, then }),
        ..quick()
    };
    let server = server_answering(cut(2, CutAction::Stall));
    let (mut ws, _) = ready(&server, "stall").await;
    say(&mut ws, "hi").await;
    let seen = read_answer(&mut ws, Duration::from_millis(300)).await;
    assert_eq!(shape(&seen), ["stt", "tts/start"]);
    assert_eq!(server.open_connections(), 1, "a stall keeps the session");

    server.update_options(|o| o.text_answer = TextAnswer::Script(cut(4, CutAction::Close(1011, "gone".into()))));
    let (mut ws, _) = ready(&server, "close").await;
    say(&mut ws, "hi").await;
    let seen = read_answer(&mut ws, SOON).await;
    assert_eq!(
        shape(&seen),
        ["stt", "tts/start", "llm", "tts/sentence_start", "close 1011"]
    );

    server.update_options(|o| o.text_answer = TextAnswer::Script(cut(5, CutAction::Drop)));
    let (mut ws, _) = ready(&server, "drop").await;
    say(&mut ws, "hi").await;
    let seen = read_answer(&mut ws, SOON).await;
    assert_eq!(
        shape(&seen),
        ["stt", "tts/start", "llm", "tts/sentence_start", "audio", "end"]
    );
    assert!(server.events().iter().any(|e| e.kind
        == EventKind::AnswerFinished {
            kind: AnswerKind::Chat,
            cut: true
        }));
}

#[tokio::test]
async fn abort_and_newer_texts_interrupt_with_tts_stop() {
    let server = server_answering(AnswerScript {
        step_delay: Duration::from_millis(100),
        ..AnswerScript::default()
    });
    let (mut ws, _) = ready(&server, "dev").await;
    say(&mut ws, "a long story").await;
    assert_eq!(next_json(&mut ws).await["type"], "stt");
    ws.send(Message::Text(
        r#"{"type":"abort","reason":"wake_word_detected"}"#.into(),
    ))
    .await
    .unwrap();
    let seen = read_answer(&mut ws, SOON).await;
    assert_eq!(shape(&seen).last().map(String::as_str), Some("tts/stop"));
    assert!(seen.len() <= 2, "{:?}", shape(&seen));
    assert!(
        next_within(&mut ws, Duration::from_millis(300)).await.is_none(),
        "the answer stopped"
    );

    say(&mut ws, "first").await;
    assert_eq!(next_json(&mut ws).await["text"], "first");
    say(&mut ws, "second").await;
    // Whatever of "first" was in flight, then its `tts stop`, then "second".
    let mut stopped = false;
    for _ in 0..50 {
        let message = match next(&mut ws).await {
            Some(Ok(Message::Text(text))) => serde_json::from_str::<Value>(&text).unwrap(),
            Some(Ok(Message::Binary(_))) => continue,
            other => panic!("unexpected {other:?}"),
        };
        if message["type"] == "tts" && message["state"] == "stop" {
            stopped = true;
        }
        if message["type"] == "stt" {
            assert_eq!(message["text"], "second");
            assert!(stopped, "the first answer was not stopped");
            return;
        }
    }
    panic!("no stt for the second text");
}

#[tokio::test]
async fn server_audio_keeps_an_idle_closing_session_open() {
    let server = Server::start(ServerOptions {
        idle_close: Some(Duration::from_millis(300)),
        enable_websocket_ping: false,
        text_answer: TextAnswer::Script(AnswerScript {
            sentences: vec!["one".into()],
            frames_per_sentence: 20,
            // Under the idle delay: the texts before the first frame are
            // no activity, in the real server as here.
            step_delay: Duration::from_millis(50),
            ..AnswerScript::default()
        }),
        ..Default::default()
    })
    .unwrap();
    let (mut ws, _) = ready(&server, "dev").await;
    let start = Instant::now();
    say(&mut ws, "talk to me").await;
    let seen = read_answer(&mut ws, SOON).await;
    let answered = start.elapsed();
    assert_eq!(shape(&seen).last().map(String::as_str), Some("tts/stop"));
    assert!(answered >= Duration::from_millis(1200), "{answered:?}");
    // The last audio frame counted: the close comes about 300 ms later.
    assert_eq!(expect_close(&mut ws).await, Some((1000, String::new())));
    let closed = start.elapsed();
    assert!(
        closed >= answered + Duration::from_millis(100),
        "{closed:?} vs {answered:?}"
    );
}
