//! Running a config tool's command for one call: the argv as configured
//! (never through a shell), the call's arguments as one line of JSON on
//! standard input, the session's name in `WSVISOR_SESSION`, standard
//! output as the answer. Every buffer is bounded while it fills: standard
//! output to `max_output` bytes (one byte more stops the tool), standard
//! error to its last [`STDERR_TAIL`] bytes.
//!
//! The command runs in a process group of its own. A timeout, an output
//! over the cap, or the call being dropped (its session removed) kills the
//! whole group, so a script's children do not outlive it; a command that
//! ends by itself leaves the group alone. The call ends when the command
//! has exited and closed its output.

use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::outcome::ToolOutcome;
use super::tool::CommandTool;

/// Bytes of standard error kept: its end says what went wrong.
pub const STDERR_TAIL: usize = 2048;

/// Variables a tool sees besides `WSVISOR_SESSION` and `WSVISOR_TOOL`,
/// when the daemon has them. Everything else (systemd's `NOTIFY_SOCKET`
/// and `WATCHDOG_*` among them) is left out.
const PASSED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ"];

/// `PATH` when the daemon runs without one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs `tool` once for `session` with `arguments` (already checked
/// against its schema).
pub async fn run(tool: &CommandTool, session: &str, arguments: &Value) -> ToolOutcome {
    let Some((program, args)) = tool.argv.split_first() else {
        return ToolOutcome::NotStarted("the command is empty".to_owned());
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .envs(PASSED_ENV.iter().filter_map(|key| Some((*key, std::env::var_os(key)?))))
        .env("WSVISOR_SESSION", session)
        .env("WSVISOR_TOOL", tool.spec.name())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return ToolOutcome::NotStarted(err.to_string()),
    };
    let group = child.id().and_then(|pid| i32::try_from(pid).ok());
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let input = format!("{arguments}\n");
    let max_output = tool.max_output;
    let work = async move {
        let feed = async {
            if let Some(mut stdin) = stdin {
                // A tool that does not read its input closes the pipe: fine.
                let _ = stdin.write_all(input.as_bytes()).await;
            }
        };
        let output = async {
            let read = read_capped(stdout, max_output).await;
            if read.is_none() {
                // Stop it now, or its standard error would never end.
                kill_group(group);
            }
            read
        };
        let (_, output, errors) = tokio::join!(feed, output, read_tail(stderr, STDERR_TAIL));
        let Some(output) = output else {
            return ToolOutcome::OutputTooLarge(max_output);
        };
        match child.wait().await {
            Ok(status) if status.success() => {
                ToolOutcome::Answered(String::from_utf8_lossy(&output).trim_end().to_owned())
            }
            Ok(status) => {
                let how = match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                    (Some(code), _) => format!("exit status {code}"),
                    (None, Some(signal)) => format!("killed by signal {signal}"),
                    (None, None) => status.to_string(),
                };
                let errors = String::from_utf8_lossy(&errors);
                let errors = errors.trim();
                ToolOutcome::Failed(if errors.is_empty() {
                    how
                } else {
                    format!("{how}: {errors}")
                })
            }
            Err(err) => ToolOutcome::Failed(format!("lost the command: {err}")),
        }
    };
    tokio::pin!(work);
    // Declared after `work`, so dropped before it: a call dropped halfway
    // kills the group while its leader is still unreaped.
    let mut guard = GroupGuard(group);
    match tokio::time::timeout(tool.spec.timeout(), &mut work).await {
        Ok(outcome) => {
            guard.0 = None;
            outcome
        }
        Err(_) => {
            kill_group(group);
            guard.0 = None;
            ToolOutcome::TimedOut(tool.spec.timeout())
        }
    }
}

/// Kills the group when dropped while armed.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

fn kill_group(group: Option<i32>) {
    if let Some(pgid) = group {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// Everything `pipe` gives, or `None` as soon as it gives more than `max`
/// bytes (never holding more than `max + 1`).
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, max: usize) -> Option<Vec<u8>> {
    let Some(pipe) = pipe else { return Some(Vec::new()) };
    let mut taken = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    // A read error ends the output like its end would: the exit status tells the rest.
    let _ = pipe.take(limit).read_to_end(&mut taken).await;
    (taken.len() <= max).then_some(taken)
}

/// The last `keep` bytes `pipe` gives.
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>, keep: usize) -> Vec<u8> {
    let Some(mut pipe) = pipe else { return Vec::new() };
    let mut tail = Vec::with_capacity(keep.min(4096) * 2);
    let mut chunk = [0u8; 4096];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > 2 * keep {
                    tail.drain(..tail.len() - keep);
                }
            }
        }
    }
    if tail.len() > keep {
        tail.drain(..tail.len() - keep);
    }
    tail
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::*;
    use crate::mcp::tool::{empty_object_schema, ToolSpec};

    /// How long a test waits for its tool at most.
    const TEST_TIMEOUT: Duration = Duration::from_secs(5);

    fn sh(script: &str, timeout: Duration, max_output: usize) -> CommandTool {
        CommandTool {
            spec: ToolSpec::new("t", "a test tool", empty_object_schema(), timeout).unwrap(),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            max_output,
            max_concurrent: 1,
        }
    }

    #[tokio::test]
    async fn arguments_in_output_out_and_the_session_in_the_environment() {
        let tool = sh(
            r#"read -r args; printf '%s %s %s\n' "$WSVISOR_SESSION" "$WSVISOR_TOOL" "$args""#,
            TEST_TIMEOUT,
            1024,
        );
        let outcome = run(&tool, "kitchen", &json!({"room": "hall"})).await;
        assert_eq!(outcome, ToolOutcome::Answered(r#"kitchen t {"room":"hall"}"#.into()));
        let env = sh("env | grep -c NOTIFY_SOCKET || true", TEST_TIMEOUT, 1024);
        assert_eq!(run(&env, "k", &json!({})).await, ToolOutcome::Answered("0".into()));
    }

    #[tokio::test]
    async fn a_failure_says_its_status_and_the_end_of_stderr() {
        let tool = sh(
            "head -c 5000 /dev/zero | tr '\\0' x >&2; echo ' the end' >&2; exit 3",
            TEST_TIMEOUT,
            1024,
        );
        let ToolOutcome::Failed(why) = run(&tool, "k", &json!({})).await else {
            panic!("a failure")
        };
        assert!(why.starts_with("exit status 3: "), "{why:.80}");
        assert!(why.ends_with("the end"), "{why:.80}");
        assert!(why.len() <= STDERR_TAIL + 20, "only the tail: {} bytes", why.len());
        let missing = CommandTool {
            argv: vec!["/nonexistent/tool".into()],
            ..sh("", TEST_TIMEOUT, 1)
        };
        assert!(matches!(
            run(&missing, "k", &json!({})).await,
            ToolOutcome::NotStarted(_)
        ));
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let pid_file = std::env::temp_dir().join(format!("wsvisor-cmd-timeout-{}.pid", std::process::id()));
        let _ = std::fs::remove_file(&pid_file);
        // A child of the script that would outlive it unless its group is killed.
        let script = format!("sleep 10 & echo $! > {}; wait", pid_file.display());
        let tool = sh(&script, Duration::from_millis(200), 1024);
        let started = Instant::now();
        let outcome = run(&tool, "k", &json!({})).await;
        let took = started.elapsed();
        assert_eq!(outcome, ToolOutcome::TimedOut(Duration::from_millis(200)));
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(3),
            "{took:?}"
        );
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let _ = std::fs::remove_file(&pid_file);
        // Gone, or a zombie waiting for whoever inherited it to reap it.
        let alive = || {
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .is_ok_and(|stat| stat.rsplit(") ").next().is_some_and(|rest| !rest.starts_with('Z')))
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!alive(), "the script's child outlived the timeout");
    }

    #[tokio::test]
    async fn output_past_the_cap_stops_the_tool_at_once() {
        let tool = sh("yes hello", TEST_TIMEOUT, 4096);
        let started = Instant::now();
        assert_eq!(run(&tool, "k", &json!({})).await, ToolOutcome::OutputTooLarge(4096));
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        let exact = sh("head -c 4096 /dev/zero", TEST_TIMEOUT, 4096);
        assert!(matches!(run(&exact, "k", &json!({})).await, ToolOutcome::Answered(_)));
    }

    #[tokio::test]
    async fn a_tool_that_ignores_a_large_input_still_answers() {
        let tool = sh("echo ok", TEST_TIMEOUT, 64);
        let big = json!({"blob": "x".repeat(1 << 20)});
        assert_eq!(run(&tool, "k", &big).await, ToolOutcome::Answered("ok".into()));
    }
}
