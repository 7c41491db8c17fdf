//! The supervision tree of wsvisor and the xiaozhi wire types.
//!
//! ```text
//! Monitor ◄── state, messages, counters ── Supervisor ──Decide──► ReconnectPolicy
//!                                              │ starts
//!                                              ▼
//!                                 Connection ◄── SendPing / PeerDead ── Heartbeat
//!                                     │ McpArrived        ▲ WriteText (replies)
//!                                     ▼                   │
//!                                 McpResponder (one per session) ──► ToolBroker (tools of programs)
//! ```
//!
//! This crate knows nothing of CLI flags, config files or socket paths.
#![deny(missing_docs)]

pub mod activation;
pub mod census;
pub mod client;
pub mod connection;
pub mod events;
pub mod heartbeat;
pub mod json;
pub mod logsafe;
pub mod loss;
pub mod mcp;
pub mod messages;
pub mod monitor;
pub mod ota;
pub mod policy;
pub mod ratelimit;
pub mod settings;
pub mod state;
pub mod subscription;
pub mod supervisor;
pub mod traffic;
pub mod wire;

use actix::prelude::*;

/// The running tree: what the daemon and tests talk to.
#[derive(Clone)]
pub struct Tree {
    /// Commands go here.
    pub supervisor: Addr<supervisor::Supervisor>,
    /// Queries and subscriptions go here.
    pub monitor: Addr<monitor::Monitor>,
    /// Tools offered by local programs, and tool-call counters.
    pub mcp: mcp::McpShared,
}

/// Start the tree on the current actix system thread.
pub fn start_tree(options: supervisor::SupervisorOptions) -> Tree {
    let monitor = monitor::Monitor::default().start();
    let policy = policy::ReconnectPolicy::default().start();
    let mcp = mcp::McpShared::start();
    let supervisor = supervisor::Supervisor::new(policy, monitor.clone(), options)
        .with_mcp(mcp.clone())
        .start();
    Tree {
        supervisor,
        monitor,
        mcp,
    }
}
