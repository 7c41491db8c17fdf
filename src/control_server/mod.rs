//! The daemon's end of the control socket (CONTRACT §3): newline-delimited
//! JSON on a Unix stream socket, in the shapes of [`crate::protocol`].
//! Plain tasks rather than an actor: each connected peer is an independent
//! task on the actor system's thread, talking to the Supervisor (commands)
//! and the Monitor (reads, subscriptions).
//!
//! Layout of the module:
//! - `socket_dir`: judging (and making) the socket's directory;
//! - `socket_file`: claiming, creating and removing the socket file;
//! - `accept`: taking clients in, also when descriptors run out;
//! - `access`: who may use the socket (uids, groups);
//! - `peer`: one connected peer, from the access check to its last line;
//! - `dispatch`: carrying out one command against the tree;
//! - `metrics`, `tool_metrics`: the Prometheus text of `metrics`;
//! - `tools`: MCP tools offered by programs (`offer_tools`, `tool_result`, `tools`).

pub mod accept;
pub mod access;
pub mod dispatch;
pub mod metrics;
pub mod peer;
pub mod socket_dir;
pub mod socket_file;
pub mod tool_metrics;
pub mod tools;

#[cfg(test)]
mod tests;

use std::rc::Rc;
use std::time::Duration;

pub use self::access::Access;
pub use self::dispatch::DaemonHandle;
pub use self::socket_file::{ClaimError, SocketFile};
use crate::config::DaemonConfig;

/// Patience with peers; parameters so tests run in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct ControlOptions {
    /// A peer must send its first request within this.
    pub first_request_timeout: Duration,
    /// A peer that is not subscribed must send again within this.
    pub idle_timeout: Duration,
    /// A line must be taken by the peer within this.
    pub write_timeout: Duration,
    /// Pauses after failed accepts.
    pub accept: accept::AcceptOptions,
}

impl Default for ControlOptions {
    fn default() -> Self {
        ControlOptions {
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(10),
            accept: accept::AcceptOptions::default(),
        }
    }
}

/// Bind the control socket and serve it on the current actix thread until
/// the returned `SocketFile` is dropped (which also removes the file).
///
/// The default path moves to `$XDG_RUNTIME_DIR` for a user who cannot
/// create it (see [`crate::socket_location`]); the file says where it is.
pub async fn start(
    config: &DaemonConfig,
    daemon: Rc<DaemonHandle>,
    options: ControlOptions,
) -> Result<SocketFile, ClaimError> {
    let chosen = crate::socket_location::for_daemon(&config.control_socket);
    if let Some(note) = &chosen.note {
        log::info!("{note}");
    }
    let (listener, file) = socket_file::bind(&chosen.path, config.socket_mode).await?;
    let (access, warnings) = Access::from_config(config, file.owner_uid());
    for warning in warnings {
        log::warn!("{warning}");
    }
    let access = Rc::new(access);
    log::info!("control socket listening path={}", chosen.path.display());
    let serve = move |stream| {
        actix_rt::spawn(peer::serve(stream, daemon.clone(), access.clone(), options));
    };
    actix_rt::spawn(accept::run(listener, serve, options.accept));
    Ok(file)
}
