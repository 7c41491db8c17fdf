//! The daemon's end of the control socket (CONTRACT §3): newline-delimited
//! JSON on a Unix stream socket, in the shapes of [`crate::protocol`].
//! Plain tasks rather than an actor: each connected peer is an independent
//! task on the actor system's thread, talking to the Supervisor (commands)
//! and the Monitor (reads, subscriptions).
//!
//! Layout of the module:
//! - `socket_file`: claiming, creating and removing the socket file;
//! - `peer`: one connected peer, from the access check to its last line;
//! - `dispatch`: carrying out one command against the tree;
//! - `metrics`, `tool_metrics`: the Prometheus text of `metrics`;
//! - `tools`: MCP tools offered by programs (`offer_tools`, `tool_result`, `tools`).

pub mod dispatch;
pub mod metrics;
pub mod peer;
pub mod socket_file;
pub mod tool_metrics;
pub mod tools;

#[cfg(test)]
mod tests;

use std::rc::Rc;
use std::time::Duration;

pub use self::dispatch::DaemonHandle;
pub use self::peer::Access;
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
}

impl Default for ControlOptions {
    fn default() -> Self {
        ControlOptions {
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Bind the control socket and serve it on the current actix thread until
/// the returned `SocketFile` is dropped (which also removes the file).
pub async fn start(
    config: &DaemonConfig,
    daemon: Rc<DaemonHandle>,
    options: ControlOptions,
) -> Result<SocketFile, ClaimError> {
    let (listener, file) = socket_file::bind(&config.control_socket, config.socket_mode).await?;
    let access = Rc::new(Access {
        own_uid: file.owner_uid(),
        allowed_uids: config.allowed_uids.clone(),
    });
    log::info!("control socket listening path={}", config.control_socket.display());
    actix_rt::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    actix_rt::spawn(peer::serve(stream, daemon.clone(), access.clone(), options));
                }
                Err(err) => {
                    // Out of descriptors, typically: pause rather than spin.
                    log::error!("control socket accept failed: {err}");
                    actix_rt::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(file)
}
