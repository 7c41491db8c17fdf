//! How the server answers typed text (`{"type":"listen","state":"detect",
//! "text":T}`): the options a test chooses, and the pure planning of the
//! messages an answer consists of. The connection task only plays the plan
//! (with its delays); nothing here touches a socket.
//!
//! What the real server (xiaozhi-esp32-server v0.9.6) does with such a text,
//! read from `core/handle/textHandler/listenMessageHandler.py`,
//! `core/handle/intentHandler.py`, `core/handle/helloHandle.py`
//! (`checkWakeupWords`) and `core/handle/sendAudioHandle.py`:
//!
//! - The text is compared with the wake words after removing every ASCII and
//!   full-width punctuation mark and space (`remove_punctuation_and_length`).
//! - A wake word, with `enable_greeting: true` (default): the text is
//!   replaced by `嘿，你好呀`, itself a wake word, so the cached greeting is
//!   played: `tts start`, `tts sentence_start` with the greeting's text,
//!   audio, `tts stop`. No `stt`, no `llm`.
//! - A wake word with `enable_greeting: false`: `stt` (the text), `tts
//!   start`, `tts stop`.
//! - An exit command (`退出`, `关闭`): `stt` (the punctuation-free text),
//!   `tts start`, then Close 1000 with an empty reason.
//! - Anything else goes to the language model: `stt` (the text with leading
//!   and trailing spaces, punctuation and emoji removed), `tts start`, one
//!   `llm` message with the emotion (unless the client's hello said
//!   `features.emoji: false`), then per sentence `tts sentence_start` with
//!   its text (emoji and newlines removed) followed by its audio frames, and
//!   finally `tts stop`. The real server never sends `sentence_end`.
//!
//! Every message carries the connection's `session_id`.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::json;

/// How a `listen` `detect` carrying `text` is answered. A `detect` without
/// `text` is never answered (the real server only resets its audio state).
// Boxing the script would only make every test's options noisier: options
// are cloned once per accepted connection, never per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TextAnswer {
    /// One `stt` message echoing the text verbatim, nothing else: the
    /// loopback's historical answer (the real server says much more).
    #[default]
    SttEcho,
    /// What the real server sends, played with the script's delays.
    Script(AnswerScript),
    /// Nothing at all: the text is recorded and never answered, as a server
    /// that stalls.
    Ignore,
}

/// The answer the real server gives to typed text, with the knobs a test
/// needs. See the module documentation for the sequences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerScript {
    /// What the "language model" says, one `sentence_start` each.
    pub sentences: Vec<String>,
    /// The `llm` message sent before the first sentence (`None`: none).
    pub emotion: Option<Emotion>,
    /// Binary audio frames after each sentence's `sentence_start`.
    pub frames_per_sentence: usize,
    /// Bytes in each audio frame.
    pub frame_bytes: usize,
    /// Pause between two consecutive messages of an answer (the first goes
    /// out at once). The real server paces audio at 60 ms per frame.
    pub step_delay: Duration,
    /// Send a `tts` `sentence_end` after each sentence's audio. The real
    /// server never does (and the firmware ignores it); off by default.
    pub sentence_end: bool,
    /// Texts answered with the greeting (after punctuation and spaces are
    /// removed); the real server's `wakeup_words` by default.
    pub wake_words: Vec<String>,
    /// The real server's `enable_greeting` (default on): a wake word gets
    /// the greeting; off: just `stt`, `tts start`, `tts stop`.
    pub greeting: bool,
    /// The greeting's text (the real server's fallback `我在这里哦！`).
    pub greeting_reply: String,
    /// Texts that end the session: `stt`, `tts start`, Close 1000 (the real
    /// server's `exit_commands`).
    pub exit_commands: Vec<String>,
    /// Cut every answer short, to test a client waiting for one.
    pub cut: Option<AnswerCut>,
}

impl Default for AnswerScript {
    fn default() -> Self {
        AnswerScript {
            sentences: vec!["好的，我来回答你。".to_owned(), "这是第二句话。".to_owned()],
            emotion: Some(Emotion::default()),
            frames_per_sentence: 3,
            frame_bytes: 120,
            step_delay: Duration::from_millis(5),
            sentence_end: false,
            wake_words: [
                "你好小智",
                "嘿你好呀",
                "你好小志",
                "小爱同学",
                "你好小鑫",
                "你好小新",
                "小美同学",
                "小龙小龙",
                "喵喵同学",
                "小滨小滨",
                "小冰小冰",
            ]
            .map(str::to_owned)
            .to_vec(),
            greeting: true,
            greeting_reply: "我在这里哦！".to_owned(),
            exit_commands: vec!["退出".to_owned(), "关闭".to_owned()],
            cut: None,
        }
    }
}

/// The `llm` message: `{"type":"llm","text":EMOJI,"emotion":NAME,...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emotion {
    /// The emoji (`text`).
    pub emoji: String,
    /// Its name (`emotion`).
    pub name: String,
}

impl Default for Emotion {
    /// The real server's default when the answer holds no known emoji.
    fn default() -> Self {
        Emotion {
            emoji: "🙂".to_owned(),
            name: "happy".to_owned(),
        }
    }
}

/// Cut an answer after `after` of its messages (text and binary frames
/// counted alike), then do `then`. An answer with fewer messages is not cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerCut {
    /// Messages sent before the cut (0: none at all).
    pub after: usize,
    /// What happens at the cut.
    pub then: CutAction,
}

/// What happens where an answer is cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CutAction {
    /// Nothing more is sent; the connection stays up (a stalled answer).
    Stall,
    /// A Close frame with this code and reason (a session lost mid-answer).
    Close(u16, String),
    /// The TCP connection ends without a Close frame.
    Drop,
}

/// Which branch of the real server's logic an answer took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// The loopback's `stt` echo ([`TextAnswer::SttEcho`]).
    Echo,
    /// A wake word.
    WakeWord,
    /// An exit command (the answer ends with Close 1000).
    Exit,
    /// Ordinary text, answered by the "language model".
    Chat,
}

/// One step of a planned answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Out {
    Text(String),
    /// Server audio: counts as activity, as in the real server.
    Audio(Vec<u8>),
    Close(u16, String),
    Drop,
}

/// An answer ready to be played.
pub(crate) struct Planned {
    pub(crate) kind: AnswerKind,
    pub(crate) steps: VecDeque<Out>,
    pub(crate) step_delay: Duration,
    /// The plan was cut short ([`AnswerScript::cut`]).
    pub(crate) cut: bool,
}

/// Plans the answer to `text`, or `None` when nothing is to be sent.
/// `emoji` is false when the client's hello said `features.emoji: false`.
pub(crate) fn plan(answer: &TextAnswer, text: &str, session_id: &str, emoji: bool) -> Option<Planned> {
    match answer {
        TextAnswer::Ignore => None,
        TextAnswer::SttEcho => Some(Planned {
            kind: AnswerKind::Echo,
            steps: VecDeque::from([Out::Text(stt(text, session_id))]),
            step_delay: Duration::ZERO,
            cut: false,
        }),
        TextAnswer::Script(script) => Some(plan_script(script, text, session_id, emoji)),
    }
}

fn plan_script(script: &AnswerScript, text: &str, session_id: &str, emoji: bool) -> Planned {
    let filtered = without_punctuation(text);
    let mut steps = VecDeque::new();
    let kind = if script.wake_words.contains(&filtered) {
        if script.greeting {
            steps.push_back(Out::Text(tts(session_id, "start", None)));
            speak(&mut steps, script, 0, &script.greeting_reply, session_id);
        } else {
            steps.push_back(Out::Text(stt(&trim_ends(text), session_id)));
            steps.push_back(Out::Text(tts(session_id, "start", None)));
        }
        steps.push_back(Out::Text(tts(session_id, "stop", None)));
        AnswerKind::WakeWord
    } else if script.exit_commands.contains(&filtered) {
        steps.push_back(Out::Text(stt(&filtered, session_id)));
        steps.push_back(Out::Text(tts(session_id, "start", None)));
        steps.push_back(Out::Close(1000, String::new()));
        AnswerKind::Exit
    } else {
        steps.push_back(Out::Text(stt(&trim_ends(text), session_id)));
        steps.push_back(Out::Text(tts(session_id, "start", None)));
        if let (Some(emotion), true) = (&script.emotion, emoji) {
            let llm = json!({"type": "llm", "text": emotion.emoji, "emotion": emotion.name, "session_id": session_id});
            steps.push_back(Out::Text(llm.to_string()));
        }
        for (index, sentence) in script.sentences.iter().enumerate() {
            speak(&mut steps, script, index, sentence, session_id);
        }
        steps.push_back(Out::Text(tts(session_id, "stop", None)));
        AnswerKind::Chat
    };
    let cut = script.cut.as_ref().is_some_and(|cut| apply_cut(&mut steps, cut));
    Planned {
        kind,
        steps,
        step_delay: script.step_delay,
        cut,
    }
}

/// One sentence: its `sentence_start`, its audio, and the optional end.
fn speak(steps: &mut VecDeque<Out>, script: &AnswerScript, index: usize, sentence: &str, session_id: &str) {
    let shown = without_emoji(sentence);
    steps.push_back(Out::Text(tts(session_id, "sentence_start", Some(&shown))));
    for frame in 0..script.frames_per_sentence {
        let mut audio = vec![0u8; script.frame_bytes];
        // Traceable frames: which sentence, which frame.
        if let Some(first) = audio.first_mut() {
            *first = index as u8;
        }
        if let Some(second) = audio.get_mut(1) {
            *second = frame as u8;
        }
        steps.push_back(Out::Audio(audio));
    }
    if script.sentence_end {
        steps.push_back(Out::Text(tts(session_id, "sentence_end", Some(&shown))));
    }
}

/// Truncates after `cut.after` messages and appends the cut's action;
/// returns whether anything was cut.
fn apply_cut(steps: &mut VecDeque<Out>, cut: &AnswerCut) -> bool {
    if steps.len() <= cut.after {
        return false;
    }
    steps.truncate(cut.after);
    match &cut.then {
        CutAction::Stall => {}
        CutAction::Close(code, reason) => steps.push_back(Out::Close(*code, reason.clone())),
        CutAction::Drop => steps.push_back(Out::Drop),
    }
    true
}

/// `{"type":"stt","text":T,"session_id":S}`.
pub(crate) fn stt(text: &str, session_id: &str) -> String {
    json!({"type": "stt", "text": text, "session_id": session_id}).to_string()
}

/// `{"type":"tts","state":STATE,"session_id":S[,"text":T]}`.
pub(crate) fn tts(session_id: &str, state: &str, text: Option<&str>) -> String {
    let mut message = json!({"type": "tts", "state": state, "session_id": session_id});
    if let Some(text) = text {
        message["text"] = json!(text);
    }
    message.to_string()
}

/// Full-width punctuation the real server strips before matching wake
/// words and exit commands (its `remove_punctuation_and_length`).
const FULL_WIDTH_PUNCTUATION: &str = "！＂＃＄％＆＇（）＊＋，－。／：；＜＝＞？＠［＼］＾＿｀｛｜｝～";

/// The text without any ASCII or full-width punctuation, ASCII space or
/// ideographic space (U+3000), as the real server compares it.
pub(crate) fn without_punctuation(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| !(c.is_ascii_punctuation() || *c == ' ' || *c == '\u{3000}' || FULL_WIDTH_PUNCTUATION.contains(*c)))
        .collect();
    // The real server's own quirk: "Yeah" counts as no text at all.
    if kept == "Yeah" {
        String::new()
    } else {
        kept
    }
}

/// Leading and trailing whitespace, the punctuation the real server's
/// `get_string_no_punctuation_or_emoji` knows, and emoji, removed.
pub(crate) fn trim_ends(text: &str) -> String {
    const ENDS: &str = "，,。.！!“”\"：:-－、[]【】";
    text.trim_matches(|c: char| c.is_whitespace() || ENDS.contains(c) || is_emoji(c))
        .to_owned()
}

/// The text without emoji and newlines (the real server's `check_emoji`).
fn without_emoji(text: &str) -> String {
    text.chars().filter(|c| !is_emoji(*c) && *c != '\n').collect()
}

/// The code point ranges the real server treats as emoji.
fn is_emoji(c: char) -> bool {
    const RANGES: [(u32, u32); 7] = [
        (0x1F600, 0x1F64F),
        (0x1F300, 0x1F5FF),
        (0x1F680, 0x1F6FF),
        (0x1F900, 0x1F9FF),
        (0x1FA70, 0x1FAFF),
        (0x2600, 0x26FF),
        (0x2700, 0x27BF),
    ];
    let c = c as u32;
    RANGES.iter().any(|(low, high)| (*low..=*high).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn texts(planned: &Planned) -> Vec<Value> {
        planned
            .steps
            .iter()
            .filter_map(|s| match s {
                Out::Text(t) => Some(serde_json::from_str(t).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn script() -> TextAnswer {
        TextAnswer::Script(AnswerScript::default())
    }

    #[test]
    fn punctuation_is_removed_like_the_real_server() {
        assert_eq!(without_punctuation("你好，小智！"), "你好小智");
        assert_eq!(without_punctuation("Hi, there."), "Hithere");
        assert_eq!(without_punctuation("退出。"), "退出");
        assert_eq!(without_punctuation("Yeah!"), "");
        assert_eq!(trim_ends("  “你好，世界！”🙂 "), "你好，世界");
        assert_eq!(without_emoji("好😀的\n"), "好的");
    }

    #[test]
    fn ordinary_text_gets_stt_tts_llm_sentences_audio_stop() {
        let planned = plan(&script(), "天气怎么样？", "s1", true).unwrap();
        assert_eq!(planned.kind, AnswerKind::Chat);
        let t = texts(&planned);
        assert_eq!(t[0], json!({"type": "stt", "text": "天气怎么样？", "session_id": "s1"}));
        assert_eq!(t[1], json!({"type": "tts", "state": "start", "session_id": "s1"}));
        assert_eq!(
            t[2],
            json!({"type": "llm", "text": "🙂", "emotion": "happy", "session_id": "s1"})
        );
        assert_eq!(t[3]["state"], "sentence_start");
        assert_eq!(t[3]["text"], "好的，我来回答你。");
        assert_eq!(t.last().unwrap()["state"], "stop");
        let audio = planned.steps.iter().filter(|s| matches!(s, Out::Audio(_))).count();
        assert_eq!(audio, 6);
        assert!(!t.iter().any(|m| m["state"] == "sentence_end"));
    }

    #[test]
    fn no_emotion_when_the_client_turned_emoji_off() {
        let planned = plan(&script(), "hello", "s", false).unwrap();
        assert!(!texts(&planned).iter().any(|m| m["type"] == "llm"));
    }

    #[test]
    fn wake_word_gets_the_greeting_without_stt() {
        let planned = plan(&script(), "你好，小智", "s", true).unwrap();
        assert_eq!(planned.kind, AnswerKind::WakeWord);
        let t = texts(&planned);
        let states: Vec<&str> = t.iter().map(|m| m["state"].as_str().unwrap()).collect();
        assert_eq!(states, ["start", "sentence_start", "stop"]);
        assert_eq!(t[1]["text"], "我在这里哦！");
        let quiet = AnswerScript {
            greeting: false,
            ..AnswerScript::default()
        };
        let planned = plan(&TextAnswer::Script(quiet), "你好小智", "s", true).unwrap();
        let t = texts(&planned);
        assert_eq!(t[0]["type"], "stt");
        assert_eq!(t.len(), 3);
        assert_eq!(t[2]["state"], "stop");
    }

    #[test]
    fn exit_command_closes_after_stt() {
        let planned = plan(&script(), "退出！", "s", true).unwrap();
        assert_eq!(planned.kind, AnswerKind::Exit);
        assert_eq!(planned.steps.len(), 3);
        assert_eq!(planned.steps.back(), Some(&Out::Close(1000, String::new())));
        assert_eq!(texts(&planned)[0]["text"], "退出");
    }

    #[test]
    fn cuts_stall_close_or_drop() {
        let cut = |after, then| {
            let s = AnswerScript {
                cut: Some(AnswerCut { after, then }),
                ..AnswerScript::default()
            };
            plan(&TextAnswer::Script(s), "hi", "s", true).unwrap()
        };
        let stalled = cut(2, CutAction::Stall);
        assert!(stalled.cut);
        assert_eq!(stalled.steps.len(), 2);
        let closed = cut(4, CutAction::Close(1011, "boom".into()));
        assert_eq!(closed.steps.len(), 5);
        assert_eq!(closed.steps.back(), Some(&Out::Close(1011, "boom".into())));
        assert_eq!(cut(0, CutAction::Drop).steps, VecDeque::from([Out::Drop]));
        assert!(!cut(1000, CutAction::Stall).cut);
    }

    #[test]
    fn echo_and_ignore() {
        let echo = plan(&TextAnswer::SttEcho, "a,b!", "s", true).unwrap();
        assert_eq!(texts(&echo)[0]["text"], "a,b!");
        assert!(plan(&TextAnswer::Ignore, "x", "s", true).is_none());
    }

    #[test]
    fn sentence_end_is_optional() {
        let s = AnswerScript {
            sentence_end: true,
            ..AnswerScript::default()
        };
        let t = texts(&plan(&TextAnswer::Script(s), "hi", "s", true).unwrap());
        assert_eq!(t.iter().filter(|m| m["state"] == "sentence_end").count(), 2);
    }
}
