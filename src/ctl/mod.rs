//! `wsvisor ctl`: the command-line client of the control socket (CONTRACT
//! §1 and §3). This file owns the arguments, the order of the steps (build
//! the request, find the socket, ask, print) and the exit codes.
//!
//! It talks to the daemon through the one control client
//! ([`crate::control_client`]) and prints what a person should see of the
//! answer, or with `--json` the answer exactly as received.
//!
//! Layout of the module:
//! - `request`: the arguments turned into one command, checked before the
//!   daemon is contacted;
//! - `socket_path`: which socket path to use;
//! - `human`: what a person sees for each command's result;
//! - `sessions`, `identity`, `events`, `table`, `units`: the larger pieces of `human`;
//! - `ask`: `ctl ask`, a question and its answer as it arrives.

mod ask;
mod events;
mod human;
mod identity;
mod request;
mod sessions;
mod socket_path;
mod table;
mod units;

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use clap::{Args, Subcommand};

use crate::control_client::blocking::{Client, Subscription};
use crate::control_client::{ClientError, Response};
use crate::exit;
use crate::protocol::{Command, ListenMode, ListenState};

/// Exit code when no daemon answers on the socket (CONTRACT §1).
const UNREACHABLE: i32 = 3;

/// Arguments of `wsvisor ctl`.
#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 ok, 1 the daemon answered with an error, 2 bad usage, 3 no daemon reachable.")]
pub struct CtlArgs {
    /// The control socket [default: daemon.control_socket of --config, else $WSVISOR_SOCKET, else
    /// /run/wsvisor/control.sock]
    #[arg(long, short, value_name = "PATH", global = true)]
    pub socket: Option<PathBuf>,
    /// Take the socket path from this configuration file (only its
    /// `[daemon] control_socket` is read).
    #[arg(long, short, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
    /// Print the daemon's raw JSON lines instead of the human summary.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to ask the daemon.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// The commands of `wsvisor ctl`, one per control-socket command.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Check that the daemon answers.
    Ping,
    /// Daemon version, uptime, config and session counts by state.
    Status,
    /// A table of every session.
    Sessions,
    /// One session in detail, with its counters.
    Session {
        /// Session name.
        name: String,
    },
    /// Start a stopped or failed session.
    Connect {
        /// Session name.
        name: String,
    },
    /// Close a session with 1000 and keep it stopped.
    Disconnect {
        /// Session name.
        name: String,
    },
    /// Close a session and connect it again now.
    Reconnect {
        /// Session name.
        name: String,
    },
    /// Send a JSON object as a text frame.
    Send {
        /// Session name.
        name: String,
        /// The message, a JSON object; `-` reads it from stdin.
        #[arg(value_name = "JSON")]
        message: String,
    },
    /// Send a xiaozhi `listen` message.
    Listen {
        /// Session name.
        name: String,
        /// The listen state.
        state: ListenState,
        /// The listening mode.
        #[arg(long)]
        mode: Option<ListenMode>,
        /// Text of the message (the wake word with `detect`).
        #[arg(long)]
        text: Option<String>,
    },
    /// Send a xiaozhi `abort` message.
    Abort {
        /// Session name.
        name: String,
        /// Why, e.g. `wake_word_detected`.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Send one binary (audio) frame; the session must be ready.
    Audio {
        /// Session name.
        name: String,
        /// Where the frame comes from.
        #[command(flatten)]
        source: AudioSource,
    },
    /// Print events as they happen until the daemon closes or Ctrl-C.
    Subscribe {
        /// Only these sessions [default: all]
        names: Vec<String>,
        /// Include audio payloads (base64, shown with --json).
        #[arg(long)]
        audio: bool,
    },
    /// A session's device identity: device_id, client_id, serial number, activation.
    Identity {
        /// Session name.
        name: String,
    },
    /// Make the daemon re-read its config file.
    Reload,
    /// Print the Prometheus metrics.
    Metrics,
    /// The MCP tools a session offers its server (config and programs).
    Tools {
        /// Session name.
        name: String,
    },
    /// Ask the assistant: send TEXT as typed input and print the answer as
    /// it arrives; exit 0 when it has been said, 1 when it does not come.
    #[command(
        after_help = "The text goes to the server as the firmware sends typed input (listen, state detect). \
                      A wake word (\"你好小智\") gets the greeting; an exit word (\"退出\") ends the session; \
                      anything else is a question for the language model. The answer's sentences go to \
                      stdout, one per line; what the server heard and the emotion go to stderr."
    )]
    Ask {
        /// Session name.
        name: String,
        /// What to say.
        text: String,
        /// Give up when the session says nothing for this long.
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than 0s".to_owned()),
        Err(err) => Err(format!("{err}; write it like \"30s\" or \"2m\"")),
    }
}

/// The payload of `audio`: exactly one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct AudioSource {
    /// The frame, base64.
    #[arg(long, value_name = "BASE64")]
    pub data: Option<String>,
    /// A file holding the raw frame (`-` for stdin); it is base64-encoded here.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// Run `ctl`; the process exit code.
pub fn run(args: CtlArgs) -> i32 {
    let command = match request::build(&args.command) {
        Ok(command) => command,
        Err(message) => return fail(exit::USAGE, &message),
    };
    let (path, warning) = socket_path::resolve(
        args.socket.as_deref(),
        args.config.as_deref(),
        std::env::var_os("WSVISOR_SOCKET"),
    );
    if let Some(warning) = warning {
        eprintln!("wsvisor ctl: {}", units::clean(&warning));
    }
    if let CtlCommand::Ask { name, timeout, .. } = &args.command {
        return ask::run(&path, name, command, *timeout, args.json);
    }
    let client = match Client::connect(&path) {
        Ok(client) => client,
        Err(err) => return client_failure(&err),
    };
    let mut out = Output::default();
    let (response, subscription) = match ask(client, command) {
        Ok(answer) => answer,
        Err(err) => return client_failure(&err),
    };
    if args.json {
        out.line(&response.raw);
    }
    let code = match &response.outcome {
        Ok(result) => {
            if !args.json {
                out.human(&human::render(&args.command, result, SystemTime::now()));
            }
            exit::OK
        }
        Err(error) => fail(exit::FAILURE, &error.to_string()),
    };
    match subscription {
        Some(subscription) if code == exit::OK => {
            let names = match &args.command {
                CtlCommand::Subscribe { names, .. } => names.as_slice(),
                _ => &[],
            };
            follow(subscription, names, args.json, out)
        }
        _ => out.finish(code),
    }
}

/// Sends `command`; a subscription comes back with its first response.
fn ask(mut client: Client, command: Command) -> Result<(Response, Option<Subscription>), ClientError> {
    match command {
        Command::Subscribe { sessions, audio } => {
            let (subscription, response) = client.subscribe_raw(sessions, audio)?;
            Ok((response, Some(subscription)))
        }
        command => Ok((client.call(&command)?, None)),
    }
}

/// Prints the event lines of a subscription until the daemon closes.
fn follow(mut subscription: Subscription, names: &[String], json: bool, mut out: Output) -> i32 {
    if !json {
        let which = if names.is_empty() {
            "all sessions".to_owned()
        } else {
            names.join(", ")
        };
        eprintln!("wsvisor ctl: subscribed to {}; Ctrl-C to stop", units::clean(&which));
    }
    while !out.broken() {
        match subscription.next_line() {
            Ok(Some(line)) if json => out.line(&line),
            Ok(Some(line)) => out.human(&(events::render(&line, SystemTime::now()) + "\n")),
            Ok(None) => {
                eprintln!("wsvisor ctl: the daemon closed the event stream");
                break;
            }
            Err(err) => return client_failure(&err),
        }
    }
    out.finish(exit::OK)
}

/// Says `message` on stderr, made safe for a terminal (it may quote the daemon).
fn fail(code: i32, message: &str) -> i32 {
    eprintln!("wsvisor ctl: {}", units::clean(message));
    code
}

fn client_failure(err: &ClientError) -> i32 {
    let code = if err.daemon_unreachable() {
        UNREACHABLE
    } else {
        exit::FAILURE
    };
    fail(code, &err.to_string())
}

/// Standard output, flushed line by line so `subscribe | grep` sees events
/// at once. A reader that went away (`| head`) ends the run quietly
/// instead of the panic `println!` would give.
#[derive(Default)]
struct Output {
    error: Option<io::Error>,
}

impl Output {
    /// One line exactly as given (`--json`: the daemon's JSON, byte for byte).
    fn line(&mut self, line: &str) {
        self.text(&format!("{line}\n"));
    }

    /// Text for a person. Every piece from the daemon was made safe where
    /// it was laid out; this is the last guard: no control character but
    /// the newlines of the layout reaches the terminal.
    fn human(&mut self, text: &str) {
        let safe: Vec<String> = text.split('\n').map(units::clean).collect();
        self.text(&safe.join("\n"));
    }

    fn text(&mut self, text: &str) {
        if self.error.is_some() || text.is_empty() {
            return;
        }
        let mut stdout = io::stdout().lock();
        if let Err(err) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
            self.error = Some(err);
        }
    }

    fn broken(&self) -> bool {
        self.error.is_some()
    }

    fn finish(self, code: i32) -> i32 {
        match self.error {
            None => code,
            Some(err) if err.kind() == io::ErrorKind::BrokenPipe => code,
            Some(err) => fail(exit::FAILURE, &format!("cannot write to stdout: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// `wsvisor ctl` as a parser of its own.
    #[derive(Debug, Parser)]
    struct Ctl {
        #[command(flatten)]
        args: CtlArgs,
    }

    fn parse(line: &[&str]) -> Result<CtlArgs, clap::Error> {
        Ctl::try_parse_from(std::iter::once("ctl").chain(line.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn ctl_arguments_are_consistent() {
        Ctl::command().debug_assert();
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let args = parse(&["send", "k", "{}", "--json", "-s", "/tmp/x.sock"]).unwrap();
        assert!(args.json);
        assert_eq!(args.socket.as_deref(), Some(std::path::Path::new("/tmp/x.sock")));
        assert!(matches!(args.command, CtlCommand::Send { ref message, .. } if message == "{}"));
        let args = parse(&["--config", "/etc/wsvisor/config.toml", "subscribe", "a", "b", "--audio"]).unwrap();
        assert!(matches!(args.command, CtlCommand::Subscribe { ref names, audio: true } if names.len() == 2));
    }

    #[test]
    fn usage_mistakes_are_refused_by_the_parser() {
        assert!(parse(&["listen", "k", "begin"]).is_err());
        assert!(parse(&["listen", "k", "start", "--mode", "loud"]).is_err());
        assert!(parse(&["audio", "k"]).is_err());
        assert!(parse(&["audio", "k", "--data", "AA==", "--file", "x"]).is_err());
        assert!(parse(&["session"]).is_err());
        let args = parse(&["listen", "k", "detect", "--text", "hi", "--mode", "manual"]).unwrap();
        assert!(matches!(
            args.command,
            CtlCommand::Listen {
                state: ListenState::Detect,
                mode: Some(ListenMode::Manual),
                ..
            }
        ));
    }
}
