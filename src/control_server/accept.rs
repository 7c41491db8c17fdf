//! Accepting control clients, also when the process is out of descriptors.
//!
//! A spare descriptor is held from the start: when `accept` fails for
//! lack of descriptors, the spare is closed, the waiting client accepted
//! and served in its place, and the spare taken again as soon as a
//! descriptor is free. So `wsvisor ctl status` still gets an answer from a
//! daemon whose sessions took every descriptor. Failures that remain back
//! off exponentially (bounded), so a listener that stays readable never
//! makes the daemon spin, and they are logged once, then summed up at
//! most once per `summary_every`.
//!
//! What this file must not do: read or write a client (that is `peer`'s).

use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};

/// Timing of the loop; parameters so that tests run in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct AcceptOptions {
    /// First pause after a failed accept.
    pub first_backoff: Duration,
    /// Longest pause: the delay a client may see while descriptors are out.
    pub max_backoff: Duration,
    /// At most one log line about failures per this.
    pub summary_every: Duration,
}

impl Default for AcceptOptions {
    fn default() -> Self {
        AcceptOptions {
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
            summary_every: Duration::from_secs(10),
        }
    }
}

/// A spare descriptor to give up when there is no other.
fn spare() -> Option<File> {
    File::open("/dev/null").ok()
}

fn out_of_descriptors(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Failed accepts, the pause they call for, and the log lines about them:
/// at most one per `summary_every`, however the failures come and go.
struct Failures {
    backoff: Duration,
    unlogged: u64,
    last_logged: Option<Instant>,
}

impl Failures {
    fn new() -> Self {
        Failures {
            backoff: Duration::ZERO,
            unlogged: 0,
            last_logged: None,
        }
    }

    /// Logs `line` (with the count of what went unsaid since) when the last
    /// line is `summary_every` old, else counts it.
    fn say(&mut self, options: &AcceptOptions, line: impl FnOnce() -> String) {
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|at| now.duration_since(at) < options.summary_every)
        {
            self.unlogged += 1;
            return;
        }
        let line = line();
        match self.unlogged {
            0 => log::error!("{line}"),
            more => log::error!("{line} ({more} similar events since the last line)"),
        }
        self.unlogged = 0;
        self.last_logged = Some(now);
    }

    /// Counts `err`, logs when it is time, and returns the pause to take.
    fn failed(&mut self, err: &io::Error, options: &AcceptOptions) -> Duration {
        self.say(options, || {
            let hint = if out_of_descriptors(err) {
                " (out of descriptors: raise LimitNOFILE or `ulimit -n`, or run fewer sessions)"
            } else {
                ""
            };
            format!("control socket accept failed: {err}; backing off{hint}")
        });
        self.backoff = (self.backoff * 2).clamp(options.first_backoff, options.max_backoff);
        self.backoff
    }

    /// The spare descriptor went to a client.
    fn used_spare(&mut self, options: &AcceptOptions) {
        self.say(options, || {
            "control socket: out of descriptors; serving clients one at a time with a spare one".to_owned()
        });
    }

    fn succeeded(&mut self) {
        self.backoff = Duration::ZERO;
    }
}

/// Accepts clients for ever, handing each to `serve`.
pub async fn run(listener: UnixListener, mut serve: impl FnMut(UnixStream), options: AcceptOptions) {
    let mut reserve = spare();
    if reserve.is_none() {
        log::warn!(
            "control socket: cannot hold a spare descriptor (/dev/null); clients may wait when descriptors run out"
        );
    }
    let mut failures = Failures::new();
    loop {
        if reserve.is_none() {
            reserve = spare();
        }
        match listener.accept().await {
            Ok((stream, _)) => {
                failures.succeeded();
                serve(stream);
            }
            Err(err) if out_of_descriptors(&err) && reserve.is_some() => {
                drop(reserve.take());
                // The client that could not be accepted is still waiting: it
                // gets the spare's slot, without a pause.
                match tokio::time::timeout(options.first_backoff, listener.accept()).await {
                    Ok(Ok((stream, _))) => {
                        failures.used_spare(&options);
                        serve(stream);
                    }
                    Ok(Err(err)) => tokio::time::sleep(failures.failed(&err, &options)).await,
                    Err(_) => {}
                }
            }
            Err(err) => tokio::time::sleep(failures.failed(&err, &options)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_its_bound_and_a_success_resets_it() {
        let options = AcceptOptions {
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            summary_every: Duration::from_secs(3600),
        };
        let err = io::Error::from_raw_os_error(libc::EMFILE);
        let mut failures = Failures::new();
        let pauses: Vec<u128> = (0..6).map(|_| failures.failed(&err, &options).as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 100, 100]);
        assert_eq!(failures.unlogged, 5, "only the first failure was logged");
        failures.succeeded();
        assert_eq!(failures.failed(&err, &options), Duration::from_millis(10));
        failures.used_spare(&options);
        assert_eq!(failures.unlogged, 7, "a success does not reopen the log");
    }
}
