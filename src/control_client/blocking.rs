//! The control client for callers without an async runtime (`wsvisor
//! ctl`, tests, benchmarks): each [`Client`] runs the async one on a
//! small runtime of its own, on the calling thread.

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::runtime::Runtime;

use super::{ClientError, Response};
use crate::protocol::{Command, EventLine, SessionSummary};

/// A blocking connection to the daemon's control socket; see
/// [`super::Client`] for what each method does.
pub struct Client {
    runtime: Runtime,
    inner: super::Client,
}

fn runtime(path: &Path) -> Result<Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|source| ClientError::Unreachable {
            path: path.to_path_buf(),
            source,
        })
}

impl Client {
    /// Connects to `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let runtime = runtime(path)?;
        let inner = runtime.block_on(super::Client::connect(path))?;
        Ok(Client { runtime, inner })
    }

    /// Connects, trying again for up to `within` while the daemon starts.
    pub fn connect_within(path: &Path, within: Duration) -> Result<Client, ClientError> {
        let runtime = runtime(path)?;
        let inner = runtime.block_on(super::Client::connect_within(path, within))?;
        Ok(Client { runtime, inner })
    }

    /// How long to wait for each answer from now on; `None` waits for ever.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.inner.set_timeout(timeout);
    }

    /// Sends `command` and reads its response.
    pub fn call(&mut self, command: &Command) -> Result<Response, ClientError> {
        self.runtime.block_on(self.inner.call(command))
    }

    /// Sends `command` and reads its result as `T`.
    pub fn result<T: DeserializeOwned>(&mut self, command: &Command) -> Result<T, ClientError> {
        self.runtime.block_on(self.inner.result(command))
    }

    /// Every session's summary.
    pub fn sessions(&mut self) -> Result<Vec<SessionSummary>, ClientError> {
        self.runtime.block_on(self.inner.sessions())
    }

    /// One session's summary, with its counters.
    pub fn session(&mut self, name: &str) -> Result<SessionSummary, ClientError> {
        self.runtime.block_on(self.inner.session(name))
    }

    /// Writes `command` without waiting for its answer; returns its id.
    pub fn send(&mut self, command: &Command) -> Result<u64, ClientError> {
        self.runtime.block_on(self.inner.send(command))
    }

    /// Writes several requests in one write; returns the first id.
    pub fn send_batch(&mut self, commands: &[Command]) -> Result<u64, ClientError> {
        self.runtime.block_on(self.inner.send_batch(commands))
    }

    /// The next line from the daemon; `None` once it has closed.
    pub fn next_line(&mut self) -> Result<Option<String>, ClientError> {
        self.runtime.block_on(self.inner.next_line())
    }

    /// Subscribes; see [`super::Client::subscribe`].
    pub fn subscribe(self, sessions: Option<Vec<String>>, audio: bool) -> Result<Subscription, ClientError> {
        let subscription = self.runtime.block_on(self.inner.subscribe(sessions, audio))?;
        Ok(Subscription {
            runtime: self.runtime,
            inner: subscription,
        })
    }

    /// Subscribes and hands back the response as received; see
    /// [`super::Client::subscribe_raw`].
    pub fn subscribe_raw(
        self,
        sessions: Option<Vec<String>>,
        audio: bool,
    ) -> Result<(Subscription, Response), ClientError> {
        let (subscription, response) = self.runtime.block_on(self.inner.subscribe_raw(sessions, audio))?;
        let subscription = Subscription {
            runtime: self.runtime,
            inner: subscription,
        };
        Ok((subscription, response))
    }
}

/// A blocking subscription.
pub struct Subscription {
    runtime: Runtime,
    inner: super::Subscription,
}

impl Subscription {
    /// How long to wait for each event; see [`super::Subscription::set_timeout`].
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.inner.set_timeout(timeout);
    }

    /// The next event line as received; `None` once the daemon has closed.
    pub fn next_line(&mut self) -> Result<Option<String>, ClientError> {
        self.runtime.block_on(self.inner.next_line())
    }

    /// The next event; `None` once the daemon has closed.
    pub fn next_event(&mut self) -> Result<Option<EventLine>, ClientError> {
        self.runtime.block_on(self.inner.next_event())
    }
}
