//! `wsvisor ctl ask`: the real binary asks through the real daemon a
//! loopback server that answers typed text as xiaozhi-esp32-server does
//! (stt, tts start, llm, sentence_start with audio, tts stop), and one that
//! loses the session mid-answer or never answers.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::process::{config_toml, control, socket_of, wait_sessions, wait_with_timeout, wsvisor, Daemon, Scratch};
use wsvisor::protocol::{EventLine, SessionState};
use wsvisor_loopback::{AnswerCut, AnswerScript, CutAction, Server, ServerOptions, TextAnswer};

/// Bound of every `ctl ask` run here.
const LIMIT: Duration = Duration::from_secs(20);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn server(answer: TextAnswer) -> Server {
    Server::start(ServerOptions {
        text_answer: answer,
        ..ServerOptions::default()
    })
    .unwrap()
}

fn quick() -> AnswerScript {
    AnswerScript {
        step_delay: Duration::from_millis(2),
        ..AnswerScript::default()
    }
}

/// A daemon with session `kitchen` on `server`, ready.
fn daemon(scratch: &Scratch, server: &Server) -> Daemon {
    let config = scratch.write("config.toml", &config_toml(scratch, "", &[("kitchen", &server.url())]));
    let daemon = Daemon::run(&config, &scratch.path("stderr.log"));
    let mut control = control(&socket_of(scratch));
    wait_sessions(&mut control, "kitchen ready", |s| {
        s.iter().any(|s| s.name == "kitchen" && s.state == SessionState::Ready)
    });
    daemon
}

fn ask(socket: &Path, args: &[&str]) -> Run {
    let mut all = vec!["ctl", "--socket", socket.to_str().unwrap(), "ask"];
    all.extend_from_slice(args);
    let started = Instant::now();
    let mut child = wsvisor(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = wait_with_timeout(&mut child, LIMIT).and_then(|status| status.code());
    let took = started.elapsed();
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    Run {
        code,
        stdout,
        stderr,
        took,
    }
}

#[test]
fn ask_prints_each_sentence_and_ends_at_the_tts_stop() {
    let server = server(TextAnswer::Script(quick()));
    let scratch = Scratch::new("ask");
    let daemon = daemon(&scratch, &server);
    let run = ask(&socket_of(&scratch), &["kitchen", "今天天气怎么样？"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "好的，我来回答你。\n这是第二句话。\n");
    assert_eq!(run.stderr, "heard: 今天天气怎么样？\nemotion: happy 🙂\n");
    let sent = server.received_texts();
    let listen: serde_json::Value = serde_json::from_str(&sent.last().unwrap().text).unwrap();
    assert_eq!(listen["type"], "listen");
    assert_eq!(listen["state"], "detect");
    assert_eq!(listen["text"], "今天天气怎么样？");
    assert!(listen["session_id"].is_string(), "as the firmware sends it: {listen}");

    // A wake word gets the greeting, without the language model.
    let run = ask(&socket_of(&scratch), &["kitchen", "你好，小智"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "我在这里哦！\n"),
        "{}",
        run.stderr
    );

    // --json: the event lines as the daemon sent them, up to the tts stop.
    let run = ask(&socket_of(&scratch), &["kitchen", "hello", "--json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stderr, "");
    let lines: Vec<EventLine> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not an event: {line}")))
        .collect();
    let types: Vec<String> = lines
        .iter()
        .map(|event| match event {
            EventLine::Message { message, .. } => match message["state"].as_str() {
                Some(state) => format!("tts/{state}"),
                None => message["type"].as_str().unwrap().to_owned(),
            },
            other => panic!("only messages: {other:?}"),
        })
        .collect();
    assert_eq!(
        types,
        [
            "stt",
            "tts/start",
            "llm",
            "tts/sentence_start",
            "tts/sentence_start",
            "tts/stop"
        ]
    );
    daemon.stop();
}

#[test]
fn ask_fails_when_the_session_is_lost_mid_answer() {
    let script = AnswerScript {
        // stt, tts start, llm, the first sentence, then Close 1011.
        cut: Some(AnswerCut {
            after: 4,
            then: CutAction::Close(1011, "boom".into()),
        }),
        ..quick()
    };
    let server = server(TextAnswer::Script(script));
    let scratch = Scratch::new("ask-lost");
    let daemon = daemon(&scratch, &server);
    let run = ask(&socket_of(&scratch), &["kitchen", "hello"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(
        run.stdout, "好的，我来回答你。\n",
        "what came before the loss is printed"
    );
    assert!(
        run.stderr
            .contains("wsvisor ctl: session kitchen was lost before the answer ended: it is "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("cause server_close, code 1011"), "{}", run.stderr);
    daemon.stop();
}

#[test]
fn ask_gives_up_when_no_answer_comes() {
    let server = server(TextAnswer::Ignore);
    let scratch = Scratch::new("ask-silent");
    let daemon = daemon(&scratch, &server);
    let run = ask(&socket_of(&scratch), &["kitchen", "hello", "--timeout", "400ms"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "wsvisor ctl: no answer from session kitchen: it said nothing for 400ms\n"
    );
    assert!(
        run.took >= Duration::from_millis(400) && run.took < Duration::from_secs(5),
        "{:?}",
        run.took
    );

    // An answer that stalls halfway times out the same way.
    server.update_options(|o| {
        o.text_answer = TextAnswer::Script(AnswerScript {
            cut: Some(AnswerCut {
                after: 2,
                then: CutAction::Stall,
            }),
            ..quick()
        })
    });
    let mut control = control(&socket_of(&scratch));
    let before = control.session("kitchen").unwrap().session_id;
    server.inject(wsvisor_loopback::Fault::Close(1012, "restart".into()));
    wait_sessions(&mut control, "kitchen back on a new connection", |s| {
        s.iter()
            .any(|s| s.state == SessionState::Ready && s.session_id.is_some() && s.session_id != before)
    });
    let run = ask(&socket_of(&scratch), &["kitchen", "hello", "--timeout", "300ms"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.starts_with("heard: hello\n"), "{}", run.stderr);
    assert!(run.stderr.ends_with("it said nothing for 300ms\n"), "{}", run.stderr);

    // No such session; a bad duration; no daemon at all.
    let run = ask(&socket_of(&scratch), &["attic", "hello"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("no session named 'attic'"), "{}", run.stderr);
    let run = ask(&socket_of(&scratch), &["kitchen", "hello", "--timeout", "soon"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    daemon.stop();
    let run = ask(&scratch.path("gone.sock"), &["kitchen", "hello"]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
}
