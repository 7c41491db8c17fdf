//! Tests of the whole module through `parse` and `load`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wsvisor_actors::settings::{
    BufferLimits, Credential, Keep, LivenessSettings, QueueSettings, ReconnectSettings, SessionSettings, TlsSettings,
};
use wsvisor_actors::wire::AudioParams;

use super::*;

const FILE: &str = "/etc/wsvisor/config.toml";
const TOKEN: &str = "s3cr3t-T0KEN-do-not-print";

fn parse_ok(text: &str) -> Config {
    match parse(Path::new(FILE), text) {
        Ok(config) => config,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn parse_err(text: &str) -> String {
    match parse(Path::new(FILE), text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// A session with every required key, and `extra` lines appended to its table.
fn session(name: &str, extra: &str) -> String {
    format!(
        "[[session]]\nname = \"{name}\"\nurl = \"ws://127.0.0.1:8000/xiaozhi/v1/\"\ntoken = \"{TOKEN}\"\n\
         device_id = \"aa:bb:cc:dd:ee:ff\"\nclient_id = \"6f1c0b8e-0000-4000-8000-000000000001\"\n{extra}"
    )
}

fn builtin_reconnect() -> ReconnectSettings {
    ReconnectSettings {
        initial_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(60),
        multiplier: 2.0,
        jitter: 0.5,
        max_attempts: 10,
        stable_after: Duration::from_secs(10),
        revive_after: Some(Duration::from_secs(60)),
    }
}

fn builtin_session(name: &str, credential: Credential) -> SessionSettings {
    SessionSettings {
        name: name.into(),
        url: Some("ws://127.0.0.1:8000/xiaozhi/v1/".into()),
        credential: Some(credential),
        ota: None,
        tls: TlsSettings::default(),
        device_id: "aa:bb:cc:dd:ee:ff".into(),
        client_id: "6f1c0b8e-0000-4000-8000-000000000001".into(),
        protocol_version: 1,
        activation: Default::default(),
        autostart: true,
        audio_params: AudioParams {
            format: "opus".into(),
            sample_rate: 16000,
            channels: 1,
            frame_duration: 60,
        },
        liveness: LivenessSettings {
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(10),
            app_ping_interval: None,
        },
        connect_timeout: Duration::from_secs(10),
        hello_timeout: Duration::from_secs(10),
        keep: Keep::Always,
        queue: QueueSettings {
            limit: 64,
            bytes: 1 << 20,
            ttl: Duration::from_secs(30),
        },
        limits: BufferLimits::default(),
        reconnect: builtin_reconnect(),
        mcp: Default::default(),
    }
}

/// The example of CONTRACT section 2, verbatim.
const CONTRACT_EXAMPLE: &str = r#"[daemon]
control_socket = "/run/wsvisor/control.sock"
socket_mode = "0660"          # file mode of the socket
allowed_uids = []             # peers allowed besides root and the daemon's own uid
log_level = "info"            # RUST_LOG, when set, wins
on_give_up = "park"           # "park" | "exit" (exit 75 once every session has failed)

[defaults]
ping_interval = "15s"         # WebSocket Ping when nothing was received for this long
ping_timeout = "10s"          # dead when no frame at all arrives this long after a Ping
connect_timeout = "10s"       # TCP + TLS + HTTP upgrade
hello_timeout = "10s"         # server hello after our hello
app_ping_interval = "0s"      # >0: send {"type":"ping"} this often (xiaozhi-esp32-server enable_websocket_ping)
keep = "always"               # "always": reconnect after any loss; "on_demand": after a clean close stay down until a client sends
queue_limit = 64              # text messages held per session while it is not ready
queue_ttl = "30s"             # held messages older than this are dropped (and counted, and reported)

[defaults.reconnect]
initial_delay = "500ms"
max_delay = "60s"
multiplier = 2.0
jitter = 0.5                  # randomization factor; must stay in effect at max_delay
max_attempts = 10             # consecutive failed attempts before the session is parked as `failed`
stable_after = "10s"          # a session ready this long resets its attempt count
revive_after = "1m"           # after the burst, a failed session probes once every revive_after (jittered); "0s" = never

[[session]]
name = "kitchen"              # [a-z0-9_-]{1,32}, unique
url = "ws://127.0.0.1:8000/xiaozhi/v1/"
token = "..."                 # or token_file = "/etc/wsvisor/kitchen.token" (never both; re-read at every attempt)
# ota_url = "http://127.0.0.1:8003/xiaozhi/ota/"   # learn url and token from the server's OTA endpoint
# ca_file = "/etc/wsvisor/ca.pem"                  # extra CA for wss:// to a self-hosted server
# tls_insecure = false                             # true only on purpose; logged loudly
device_id = "aa:bb:cc:dd:ee:ff"
client_id = "6f1c0b8e-0000-4000-8000-000000000001"
protocol_version = 1
autostart = true
# [session.audio_params] format = "opus", sample_rate = 16000, channels = 1, frame_duration = 60
"#;

#[test]
fn contract_example_parses_into_the_documented_settings() {
    let config = parse_ok(CONTRACT_EXAMPLE);
    assert_eq!(config.path, PathBuf::from(FILE));
    assert_eq!(config.daemon, DaemonConfig::default());
    assert_eq!(
        config.daemon,
        DaemonConfig {
            control_socket: "/run/wsvisor/control.sock".into(),
            socket_mode: 0o660,
            allowed_uids: vec![],
            allowed_groups: vec![],
            metrics_listen: None,
            log_level: log::LevelFilter::Info,
            on_give_up: OnGiveUp::Park,
            subscriber_buffer: 8 << 20,
            state_dir: None,
        }
    );
    assert_eq!(
        config.sessions,
        vec![Arc::new(builtin_session("kitchen", Credential::Token("...".into())))]
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert!(config.session("kitchen").is_some());
}

#[test]
fn empty_file_is_a_daemon_without_sessions() {
    let config = parse_ok("");
    assert_eq!(config.daemon, DaemonConfig::default());
    assert!(config.sessions.is_empty());
    assert!(config.warnings.is_empty());
    assert_eq!(parse_ok("[daemon]\n[defaults]\n").sessions, vec![]);
}

#[test]
fn builtin_defaults_apply_when_keys_are_absent() {
    let config = parse_ok(&session("kitchen", ""));
    assert_eq!(
        config.sessions,
        vec![Arc::new(builtin_session("kitchen", Credential::Token(TOKEN.into())))]
    );
}

#[test]
fn sessions_override_defaults_key_by_key() {
    let text = format!(
        "[defaults]\nping_interval = \"20s\"\nkeep = \"on_demand\"\napp_ping_interval = \"30s\"\n\
         [defaults.reconnect]\nmax_attempts = 3\ninitial_delay = \"1s\"\nrevive_after = \"0s\"\n\
         [defaults.audio_params]\nsample_rate = 24000\n\n{}\n{}",
        session("a", "ping_interval = \"5s\"\nqueue_limit = 0\n[session.reconnect]\nmax_attempts = 7\n[session.audio_params]\nframe_duration = 20\n"),
        session("b", "protocol_version = 3\nautostart = false\n"),
    );
    let config = parse_ok(&text);
    let (a, b) = (&config.sessions[0], &config.sessions[1]);

    assert_eq!(a.liveness.ping_interval, Duration::from_secs(5));
    assert_eq!(a.liveness.app_ping_interval, Some(Duration::from_secs(30)));
    assert_eq!(a.keep, Keep::OnDemand);
    assert_eq!(
        a.queue,
        QueueSettings {
            limit: 0,
            bytes: 1 << 20,
            ttl: Duration::from_secs(30)
        }
    );
    assert_eq!(
        a.reconnect,
        ReconnectSettings {
            max_attempts: 7,
            initial_delay: Duration::from_secs(1),
            revive_after: None,
            ..builtin_reconnect()
        }
    );
    assert_eq!(
        a.audio_params,
        AudioParams {
            format: "opus".into(),
            sample_rate: 24000,
            channels: 1,
            frame_duration: 20
        }
    );

    assert_eq!(b.liveness.ping_interval, Duration::from_secs(20));
    assert_eq!(b.keep, Keep::OnDemand);
    assert_eq!(b.queue.limit, 64);
    assert_eq!(b.reconnect.max_attempts, 3);
    assert_eq!(b.reconnect.initial_delay, Duration::from_secs(1));
    assert_eq!(b.audio_params.sample_rate, 24000);
    assert_eq!(b.audio_params.frame_duration, 60);
    assert_eq!(b.protocol_version, 3);
    assert!(!b.autostart);
}

#[test]
fn allowed_groups_and_metrics_listen_refuse_what_they_cannot_use() {
    for (text, expected) in [
        (
            "allowed_groups = \"wsvisor\"",
            "1:18: invalid type: string \"wsvisor\", expected an array of group names",
        ),
        (
            "allowed_groups = [\"bad name\"]",
            "1:19: allowed_groups: \"bad name\" is not a group name",
        ),
        (
            "allowed_groups = [\"\"]",
            "1:19: allowed_groups: \"\" is not a group name",
        ),
        (
            "allowed_groups = [-1]",
            "1:19: allowed_groups: expected an integer from 0 to 4294967295, found -1",
        ),
        (
            "allowed_groups = [true]",
            "1:19: allowed_groups: expected a group name or a gid, found a boolean",
        ),
        (
            "metrics_listen = \"localhost:9464\"",
            "1:18: metrics_listen: expected an IP address and port",
        ),
        (
            "metrics_listen = 9464",
            "1:18: metrics_listen: expected a string, found an integer",
        ),
    ] {
        let text = format!("{text}\n");
        let err = parse(Path::new("c.toml"), &format!("[daemon]\n{text}")).unwrap_err();
        let shown = err.to_string();
        let expected = format!("c.toml:2:{}", &expected[2..]);
        assert!(shown.starts_with(&expected), "{text}: {shown}");
    }
}

#[test]
fn daemon_keys() {
    let config = parse_ok(
        "[daemon]\ncontrol_socket = \"ctl.sock\"\nsocket_mode = \"600\"\nallowed_uids = [1000, 1001]\n\
         allowed_groups = [\"wsvisor\", 1002]\nmetrics_listen = \"127.0.0.1:9464\"\n\
         log_level = \"DEBUG\"\non_give_up = \"exit\"\n",
    );
    assert_eq!(
        config.daemon,
        DaemonConfig {
            control_socket: "/etc/wsvisor/ctl.sock".into(),
            socket_mode: 0o600,
            allowed_uids: vec![1000, 1001],
            allowed_groups: vec![GroupRef::Name("wsvisor".into()), GroupRef::Gid(1002)],
            metrics_listen: Some("127.0.0.1:9464".parse().unwrap()),
            log_level: log::LevelFilter::Debug,
            on_give_up: OnGiveUp::Exit,
            subscriber_buffer: 8 << 20,
            state_dir: None,
        }
    );
    for (text, mode) in [
        ("0660", 0o660),
        ("660", 0o660),
        ("0o700", 0o700),
        ("0777", 0o777),
        ("0", 0),
    ] {
        assert_eq!(
            parse_ok(&format!("[daemon]\nsocket_mode = \"{text}\"\n"))
                .daemon
                .socket_mode,
            mode
        );
    }
}

#[test]
fn exact_error_messages_and_positions() {
    let cases: &[(&str, &str)] = &[
        (
            "[defaults]\nping_interval = \"15x\"\n",
            "2:17: ping_interval: invalid duration \"15x\": expected a number with a unit such as \"250ms\", \"20s\" or \"5m\"",
        ),
        (
            "[defaults]\nping_interval = 15\n",
            "2:17: ping_interval: expected a duration string such as \"250ms\", \"20s\" or \"5m\", found an integer",
        ),
        ("[defaults]\nqueue_ttl = \"0s\"\n", "2:13: queue_ttl: must be greater than 0s"),
        ("[defaults]\nqueue_ttl = \"400d\"\n", "2:13: queue_ttl: \"400d\" is too long; at most 365d"),
        (
            "[defaults.reconnect]\ninitial_delay = \"5s\"\nmax_delay = \"1s\"\n",
            "3:13: max_delay (1s) must be at least initial_delay (5s)",
        ),
        (
            "[defaults.reconnect]\ninitial_delay = \"2m\"\n",
            "2:17: max_delay (1m) must be at least initial_delay (2m)",
        ),
        ("[defaults.reconnect]\nmultiplier = 0.5\n", "2:14: multiplier: must be at least 1.0, found 0.5"),
        ("[defaults.reconnect]\nmultiplier = nan\n", "2:14: multiplier: expected a finite number, found NaN"),
        ("[defaults.reconnect]\njitter = 1.0\n", "2:10: jitter: must be at least 0.0 and less than 1.0, found 1"),
        ("[defaults.reconnect]\nmax_attempts = 0\n", "2:16: max_attempts: expected an integer from 1 to 4294967295, found 0"),
        ("[defaults]\nqueue_limit = 100001\n", "2:15: queue_limit: expected an integer from 0 to 100000, found 100001"),
        ("[defaults]\nqueue_limit = \"10\"\n", "2:15: queue_limit: expected an integer from 0 to 100000, found a string"),
        ("[defaults]\nkeep = \"never\"\n", "2:8: keep: expected \"always\" or \"on_demand\", found \"never\""),
        (
            "[daemon]\nlog_level = \"loud\"\n",
            "2:13: log_level: expected \"off\", \"error\", \"warn\", \"info\", \"debug\" or \"trace\", found \"loud\"",
        ),
        ("[daemon]\non_give_up = \"retry\"\n", "2:14: on_give_up: expected \"park\" or \"exit\", found \"retry\""),
        (
            "[daemon]\nsocket_mode = \"0999\"\n",
            "2:15: socket_mode: expected an octal mode string such as \"0660\", found \"0999\"",
        ),
        (
            "[daemon]\nsocket_mode = 660\n",
            "2:15: socket_mode: expected an octal mode string such as \"0660\", found an integer (write it in quotes)",
        ),
        (
            "[daemon]\nsocket_mode = \"4755\"\n",
            "2:15: socket_mode: \"4755\" sets special bits; expected permission bits only, at most \"0777\"",
        ),
        (
            "[daemon]\nallowed_uids = [1000, -1]\n",
            "2:23: allowed_uids: expected an integer from 0 to 4294967295, found -1",
        ),
        (
            "[daemon]\nallowed_uids = \"root\"\n",
            "2:16: invalid type: string \"root\", expected an array of uids such as [1000, 1001]",
        ),
        (
            "[session]\nname = \"a\"\n",
            "1:1: sessions are written [[session]] with double brackets, one table per session",
        ),
        (
            "[[session]]\nurl = \"ws://h/\"\n",
            "1:1: session #1 has no `name`; every [[session]] needs a unique name matching [a-z0-9_-]{1,32}",
        ),
        (
            "[[session]]\nname = \"Kitchen\"\n",
            "2:8: name: \"Kitchen\" is not a valid session name; expected 1 to 32 characters from a-z, 0-9, _ and -",
        ),
        (
            "[[session]]\nname = \"kitchen\"\n",
            "1:1: session \"kitchen\": missing `url`, such as url = \"ws://127.0.0.1:8000/xiaozhi/v1/\" (or ota_url to learn it)",
        ),
        (
            "[[session]]\nname = \"kitchen\"\nurl = \"http://127.0.0.1:8000/\"\n",
            "3:7: url: expected a ws:// or wss:// URL such as \"ws://127.0.0.1:8000/xiaozhi/v1/\", found \"http://127.0.0.1:8000/\"",
        ),
        (
            "[[session]]\nname = \"kitchen\"\nurl = \"ws:///xiaozhi/v1/\"\n",
            "3:7: url: \"ws:///xiaozhi/v1/\" has no host; expected a ws:// or wss:// URL such as \"ws://127.0.0.1:8000/xiaozhi/v1/\", found \"ws:///xiaozhi/v1/\"",
        ),
        (
            "[[session]]\nname = \"kitchen\"\nurl = \"ws://h/\"\ntoken = \"x\"\ntoken_file = \"/k.token\"\n",
            "5:14: `token` and `token_file` are exclusive; set only one of them",
        ),
        (
            "[[session]]\nname = \"kitchen\"\nurl = \"ws://h/\"\ntoken = \"\"\n",
            "4:9: token: must not be empty",
        ),
        (
            "[[session]]\nname = \"kitchen\"\nurl = \"ws://h/\"\ntoken = \"x\"\ndevice_id = \"a\\nb\"\n",
            "5:13: device_id: must not contain control characters such as newlines or tabs",
        ),
        (
            "[[session]]\nname = \"kitchen\"\nurl = \"ws://h/\"\ntoken = \"x\"\ndevice_id = \"d\"\nclient_id = \" \"\n",
            "6:13: client_id: must not be empty",
        ),
        (
            "[daemon]\nlog_level = \"info\n",
            "2:18: invalid basic string",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_err(text), format!("{FILE}:{expected}"), "for {text:?}");
    }
}

#[test]
fn positive_durations_refuse_zero() {
    for key in [
        "ping_interval",
        "ping_timeout",
        "connect_timeout",
        "hello_timeout",
        "queue_ttl",
    ] {
        let e = parse_err(&format!("[defaults]\n{key} = \"0s\"\n"));
        assert!(e.ends_with(&format!("{key}: must be greater than 0s")), "{e}");
    }
    for key in ["initial_delay", "max_delay"] {
        let e = parse_err(&format!("[defaults.reconnect]\n{key} = \"0ms\"\n"));
        assert!(e.ends_with(&format!("{key}: must be greater than 0s")), "{e}");
    }
    // Where zero has a meaning it is accepted.
    let config = parse_ok(&session(
        "a",
        "app_ping_interval = \"0s\"\n[session.reconnect]\nstable_after = \"0s\"\nrevive_after = \"0s\"\n",
    ));
    assert_eq!(config.sessions[0].reconnect.stable_after, Duration::ZERO);
    assert_eq!(config.sessions[0].reconnect.revive_after, None);
}

#[test]
fn reconnect_edge_values() {
    let r = parse_ok(&session(
        "a",
        "[session.reconnect]\nmultiplier = 1\njitter = 0\nmax_delay = \"500ms\"\n",
    ))
    .sessions[0]
        .reconnect;
    assert_eq!(
        (r.multiplier, r.jitter, r.max_delay),
        (1.0, 0.0, Duration::from_millis(500))
    );
    assert!(parse_err("[defaults.reconnect]\njitter = -0.1\n").ends_with("found -0.1"));
    assert!(parse_err("[defaults.reconnect]\nmultiplier = inf\n").contains("expected a finite number"));
    // The relation is checked after merging: the session's max_delay under the default's initial_delay.
    let text = format!(
        "[defaults.reconnect]\ninitial_delay = \"10s\"\n\n{}",
        session("a", "[session.reconnect]\nmax_delay = \"5s\"\n")
    );
    assert_eq!(
        parse_err(&text),
        format!("{FILE}:11:13: max_delay (5s) must be at least initial_delay (10s)")
    );
}

#[test]
fn duplicate_session_names_point_at_the_second_and_name_the_first() {
    let text = format!("{}\n{}", session("kitchen", ""), session("kitchen", ""));
    assert_eq!(
        parse_err(&text),
        format!("{FILE}:9:8: name: duplicate session name \"kitchen\"; the session at line 1 already uses it")
    );
}

#[test]
fn unknown_keys_are_errors_in_every_table() {
    let cases = [
        ("bogus = 1\n", 1, 1),
        ("[daemon]\nbogus = 1\n", 2, 1),
        ("[defaults]\nbogus = 1\n", 2, 1),
        ("[defaults.reconnect]\nbogus = 1\n", 2, 1),
        ("[defaults.audio_params]\nbogus = 1\n", 2, 1),
        ("[[session]]\nbogus = 1\n", 2, 1),
        ("[[session]]\n[session.reconnect]\n  bogus = 1\n", 3, 3),
        ("[[session]]\n[session.audio_params]\nbogus = 1\n", 3, 1),
        ("[defaults]\nreconnect = { initial_delay = \"1s\", bogus = 1 }\n", 2, 37),
        ("[bogus]\n", 1, 2),
    ];
    for (text, line, col) in cases {
        let e = parse_err(text);
        let prefix = format!("{FILE}:{line}:{col}: unknown key `bogus`, expected ");
        assert!(e.starts_with(&prefix), "{e} (for {text:?})");
    }
    assert_eq!(
        parse_err("[daemon]\nlog = \"info\"\n"),
        format!(
            "{FILE}:2:1: unknown key `log`, expected one of `control_socket`, `socket_mode`, `allowed_uids`, `allowed_groups`, `metrics_listen`, `log_level`, `on_give_up`, `subscriber_buffer`, `state_dir`"
        )
    );
}

#[test]
fn syntax_errors_have_a_position_and_one_line() {
    for (text, pos) in [
        ("[daemon\nlog_level = \"info\"\n", "1:8:"),
        ("[daemon]\nlog_level = loud\n", "2:13:"),
        ("[daemon]\nlog_level = \"info\"\nlog_level = \"info\"\n", "3:1:"),
        ("[daemon]\n[daemon]\n", "2:1:"),
    ] {
        let e = parse_err(text);
        assert!(e.starts_with(&format!("{FILE}:{pos} ")), "{e} (for {text:?})");
        assert!(!e.contains('\n'), "{e:?}");
    }
}

#[test]
fn tokens_never_appear_in_debug_or_errors() {
    let config = parse_ok(&session("kitchen", ""));
    let debug = format!("{config:?} {config:#?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("Token(<redacted>)"));

    // Errors on the token line itself and near it.
    let broken = [
        session("kitchen", "token_file = \"/x\"\n"),
        session("kitchen", "bogus = 1\n"),
        format!("[[session]]\nname = \"a\"\ntoken = {TOKEN}\n"),
        format!("[[session]]\nname = \"a\"\ntoken = \"{TOKEN}\n"),
        format!("[[session]]\nname = \"a\"\ntoken = \"{TOKEN}\" x\n"),
        format!("[[session]]\nname = \"a\"\nurl = \"ws://h/\"\ntoken = \"{TOKEN}\\u0007\"\n"),
        format!("[[session]]\nname = \"a\"\nurl = \"ws://h/\"\ntoken = [\"{TOKEN}\"]\n"),
        format!("[[session]]\nname = \"a\"\nurl = \"ws://h/\"\ntoken = {{ t = \"{TOKEN}\" }}\n"),
        format!("[[session]]\nname = \"a\"\nurl = \"ws://h/\"\ntoken = \"{TOKEN}\"\ntoken = \"{TOKEN}\"\n"),
        format!("{}\n{}", session("a", ""), session("a", "")),
    ];
    for text in &broken {
        let e = parse_err(text);
        assert!(!e.contains(TOKEN), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wsvisor-config-{label}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn token_file_session(path: &str) -> String {
    format!(
        "[[session]]\nname = \"kitchen\"\nurl = \"ws://h/\"\ntoken_file = \"{path}\"\ndevice_id = \"d\"\nclient_id = \"c\"\n"
    )
}

#[test]
fn missing_token_file_is_an_error_naming_it() {
    let dir = TempDir::new("missing");
    let config_path = dir.0.join("config.toml");
    let e = parse(&config_path, &token_file_session("nope.token")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:4:14: token_file: cannot read {}: no such file",
            config_path.display(),
            dir.0.join("nope.token").display()
        )
    );
    let e = parse(&config_path, &token_file_session(&dir.0.display().to_string())).unwrap_err();
    assert!(e.message.ends_with("is a directory, expected a file"), "{e}");
}

#[test]
fn a_token_file_of_more_than_one_line_is_refused_where_it_is_named() {
    let dir = TempDir::new("multiline");
    let config_path = dir.0.join("config.toml");
    let two = dir.write("two.token", "first\n\nsecond\n", 0o600);
    let e = parse(&config_path, &token_file_session("two.token")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:4:14: token_file: cannot read {}: holds more than one line (line 3 is the second); a token file holds the token alone",
            config_path.display(),
            two.display()
        )
    );
    // Blank lines and surrounding whitespace are not a second line.
    dir.write("padded.token", "\n  tok  \n\n", 0o600);
    assert!(parse(&config_path, &token_file_session("padded.token")).is_ok());
}

#[test]
fn no_token_at_all_is_a_warning_not_an_error() {
    let config = parse_ok("[[session]]\nname = \"kitchen\"\nurl = \"ws://h/\"\ndevice_id = \"d\"\nclient_id = \"c\"\n");
    assert_eq!(config.sessions[0].credential, None);
    assert_eq!(
        config.warnings,
        vec![
            "session=kitchen has no token, token_file or ota_url: it connects without an Authorization header, \
              which only a server with authentication off accepts"
                .to_owned()
        ]
    );
}

#[test]
fn byte_sizes() {
    let config = parse_ok(
        "[daemon]\nsubscriber_buffer = \"64KiB\"\n[defaults]\nqueue_bytes = 2048\nmax_message = \"2MiB\"\n\
         outbound_buffer = \"1.5 MiB\"\n[[session]]\nname = \"k\"\nurl = \"ws://h/\"\ntoken = \"t\"\n\
         device_id = \"d\"\nclient_id = \"c\"\nqueue_bytes = \"4 KiB\"\n",
    );
    assert_eq!(config.daemon.subscriber_buffer, 64 << 10);
    let session = &config.sessions[0];
    assert_eq!(session.queue.bytes, 4096, "the session's own value wins");
    assert_eq!(session.limits.max_message, 2 << 20);
    assert_eq!(session.limits.outbound, 3 << 19);
    assert_eq!(
        parse_err("[defaults]\nmax_message = \"lots\"\n"),
        format!("{FILE}:2:15: max_message: invalid size: expected a number with a unit such as \"64KiB\" or \"1MiB\"")
    );
    assert_eq!(
        parse_err("[defaults]\nqueue_bytes = 10\n"),
        format!("{FILE}:2:15: queue_bytes: must be between 1.0 KiB and 256.0 MiB")
    );
    assert_eq!(
        parse_err("[defaults]\noutbound_buffer = true\n"),
        format!("{FILE}:2:19: outbound_buffer: expected a size such as \"64KiB\" or \"1MiB\", found a boolean")
    );
}

#[cfg(unix)]
#[test]
fn token_file_permissions_are_checked() {
    let dir = TempDir::new("modes");
    let config_path = dir.0.join("config.toml");
    let private = dir.write("private.token", TOKEN, 0o600);
    let shared = dir.write("shared.token", TOKEN, 0o644);
    let group_writable = dir.write("gw.token", TOKEN, 0o620);
    let empty = dir.write("empty.token", "\n", 0o600);

    // Relative paths are resolved against the config file's directory.
    let config = parse(&config_path, &token_file_session("private.token")).unwrap();
    assert_eq!(
        config.sessions[0].credential,
        Some(Credential::TokenFile(private.clone()))
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    let config = parse(&config_path, &token_file_session(&shared.display().to_string())).unwrap();
    assert_eq!(
        config.warnings,
        vec![format!(
            "session=kitchen token_file {} is readable by other users (mode 0644); chmod 600 it",
            shared.display()
        )]
    );
    assert!(!format!("{config:?}").contains(TOKEN));

    let config = parse(&config_path, &token_file_session("gw.token")).unwrap();
    assert_eq!(
        config.warnings,
        vec![format!(
            "session=kitchen token_file {} is writable by other users (mode 0620); chmod 600 it",
            group_writable.display()
        )]
    );

    let config = parse(&config_path, &token_file_session("empty.token")).unwrap();
    assert_eq!(
        config.warnings,
        vec![format!(
            "session=kitchen token_file {} is empty; connections will fail until it holds a token",
            empty.display()
        )]
    );
    for w in &config.warnings {
        assert!(!w.contains(TOKEN));
    }
}

#[test]
fn ota_and_tls_keys() {
    let dir = TempDir::new("ota-tls");
    let config_path = dir.0.join("config.toml");
    let session = "[[session]]\nname = \"a\"\ndevice_id = \"d\"\nclient_id = \"c\"\n";

    // With an OTA endpoint, url and token may be learnt there.
    let text = format!("{session}ota_url = \"http://127.0.0.1:8003/xiaozhi/ota/\"\n");
    let config = parse(&config_path, &text).unwrap();
    let a = &config.sessions[0];
    assert_eq!((a.url.as_deref(), a.credential.is_none()), (None, true));
    assert_eq!(
        a.ota.as_ref().map(|o| o.url.as_str()),
        Some("http://127.0.0.1:8003/xiaozhi/ota/")
    );
    let e = parse(&config_path, &format!("{session}ota_url = \"ftp://x/\"\n")).unwrap_err();
    assert!(e.to_string().contains(":5:11: ota_url: "), "{e}");
    let e = parse(&config_path, &format!("{session}token = \"t\"\n")).unwrap_err();
    assert!(e.to_string().contains("missing `url`"), "{e}");

    // A CA file must hold certificates; a readable one is used as given.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])
        .unwrap()
        .cert
        .pem();
    let ca = dir.write("ca.pem", &cert, 0o644);
    let wss = format!("{session}url = \"wss://localhost/xiaozhi/v1/\"\ntoken = \"t\"\n");
    let config = parse(&config_path, &format!("{wss}ca_file = \"ca.pem\"\n")).unwrap();
    assert_eq!(
        config.sessions[0].tls,
        TlsSettings {
            ca_file: Some(ca),
            insecure: false
        }
    );
    let e = parse(&config_path, &format!("{wss}ca_file = \"missing.pem\"\n")).unwrap_err();
    assert!(
        e.to_string().contains(":7:11: ca_file ") && e.to_string().contains("missing.pem"),
        "{e}"
    );
    dir.write("junk.pem", "not a certificate\n", 0o644);
    let e = parse(&config_path, &format!("{wss}ca_file = \"junk.pem\"\n")).unwrap_err();
    assert!(e.to_string().contains("no certificate"), "{e}");

    // Turning verification off is allowed, and said out loud.
    let config = parse(&config_path, &format!("{wss}tls_insecure = true\n")).unwrap();
    assert!(config.sessions[0].tls.insecure);
    assert_eq!(
        config.warnings,
        vec!["session=a tls_insecure = true: the server's TLS certificate is NOT verified"]
    );
}

#[test]
fn control_socket_path_must_fit_a_unix_socket() {
    let long = format!("/run/{}/control.sock", "x".repeat(100));
    let e = parse_err(&format!("[daemon]\ncontrol_socket = \"{long}\"\n"));
    assert!(
        e.contains(":2:18: control_socket: ") && e.contains("must be at most 107 bytes"),
        "{e}"
    );
}

#[test]
fn load_reports_unreadable_files_at_1_1() {
    let dir = TempDir::new("load");
    let missing = dir.0.join("absent.toml");
    assert_eq!(
        load(&missing).unwrap_err().to_string(),
        format!("{}:1:1: cannot read config: no such file", missing.display())
    );
    let latin1 = dir.0.join("latin1.toml");
    std::fs::write(&latin1, b"[daemon]\nlog_level = \"caf\xe9\"\n").unwrap();
    assert_eq!(
        load(&latin1).unwrap_err().to_string(),
        format!("{}:2:17: the file is not valid UTF-8", latin1.display())
    );
}

#[test]
fn example_config_in_the_repository_loads() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"));
    let config = load(path).unwrap_or_else(|e| panic!("{e}"));
    // Every key at its default but one: the service's group may use `ctl`.
    assert_eq!(
        config.daemon,
        DaemonConfig {
            allowed_groups: vec![GroupRef::Name("wsvisor".into())],
            ..DaemonConfig::default()
        }
    );
    assert_eq!(
        config.sessions,
        vec![Arc::new(builtin_session(
            "kitchen",
            Credential::Token("replace-me-with-your-token".into())
        ))]
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    // The commented-out second session is valid too once uncommented (with its token file present).
    let dir = TempDir::new("example");
    let token = dir.write("living-room.token", "t", 0o600);
    let text = std::fs::read_to_string(path).unwrap();
    let (first, second) = text
        .split_once("# [[session]]")
        .expect("a commented-out second session");
    let uncommented: Vec<&str> = second.lines().map(|l| l.strip_prefix("# ").unwrap_or(l)).collect();
    let text = format!("{first}[[session]]{}\n", uncommented.join("\n"))
        .replace("/etc/wsvisor/living-room.token", &token.display().to_string());
    let config = parse(path, &text).unwrap_or_else(|e| panic!("{e}"));
    let second = &config.sessions[1];
    assert_eq!(second.name, "living-room");
    assert_eq!(second.credential, Some(Credential::TokenFile(token)));
    assert_eq!((second.keep, second.autostart), (Keep::OnDemand, false));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn token_files_must_be_regular_and_small() {
    let dir = TempDir::new("token-kinds");
    let config_path = dir.0.join("config.toml");
    let session = |file: &str| {
        format!(
            "[[session]]\nname = \"a\"\nurl = \"ws://h/\"\ndevice_id = \"d\"\nclient_id = \"c\"\ntoken_file = \"{file}\"\n"
        )
    };
    let e = parse(&config_path, &session("/dev/zero")).unwrap_err();
    assert!(e.to_string().contains("is not a regular file"), "{e}");
    let big = dir.write("big.token", &"x".repeat(100 * 1024), 0o600);
    let e = parse(&config_path, &session(&big.display().to_string())).unwrap_err();
    assert!(e.to_string().contains("is larger than 65536 bytes"), "{e}");
}

#[test]
fn sessions_without_ids_get_theirs_from_the_state_dir() {
    let config = parse_ok(
        "[daemon]\nstate_dir = \"state\"\n\
         [[session]]\nname = \"cloud\"\nota_url = \"https://api.tenclass.net/xiaozhi/ota/\"\n\
         [[session]]\nname = \"half\"\nurl = \"ws://h/\"\nclient_id = \"c\"\n\
         [[session]]\nname = \"mine\"\nurl = \"ws://h/\"\ndevice_id = \"d\"\nclient_id = \"c\"\n",
    );
    assert_eq!(config.daemon.state_dir, Some(PathBuf::from("/etc/wsvisor/state")));
    let needs: Vec<(&str, bool, bool)> = config
        .identities
        .iter()
        .map(|n| (n.session.as_str(), n.device_id_configured, n.client_id_configured))
        .collect();
    assert_eq!(needs, [("cloud", false, false), ("half", false, true)]);
    assert_eq!(config.session("cloud").unwrap().device_id, "", "settled later");
    assert_eq!(config.session("half").unwrap().client_id, "c");
    assert!(config.sessions.iter().all(|s| s.activation.key.is_none()));
    assert_eq!(parse_ok("").daemon.state_dir, None);
}
