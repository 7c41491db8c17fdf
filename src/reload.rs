//! Applying a new config to a running tree: sessions are added, removed
//! and replaced; an unchanged session keeps its connection and session_id.

use std::collections::HashSet;

use wsvisor_actors::messages::{AddSession, RemoveSession, ReplaceSession};
use wsvisor_actors::Tree;

use crate::config::Config;

/// What a reload changed, for the log and the caller.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Sessions that are new.
    pub added: Vec<String>,
    /// Sessions that are gone.
    pub removed: Vec<String>,
    /// Sessions whose settings changed (they reconnect).
    pub changed: Vec<String>,
    /// Sessions left untouched.
    pub unchanged: usize,
}

/// Bring the tree from `old` to `new`.
pub async fn apply(tree: &Tree, old: &Config, new: &Config) -> ReloadSummary {
    let mut summary = ReloadSummary::default();
    let new_names: HashSet<&str> = new.sessions.iter().map(|s| s.name.as_str()).collect();
    for gone in old.sessions.iter().filter(|s| !new_names.contains(s.name.as_str())) {
        let _ = tree.supervisor.send(RemoveSession(gone.name.clone())).await;
        summary.removed.push(gone.name.clone());
    }
    for settings in &new.sessions {
        match old.session(&settings.name) {
            Some(previous) if previous == settings => summary.unchanged += 1,
            Some(_) => {
                let _ = tree.supervisor.send(ReplaceSession(settings.clone())).await;
                summary.changed.push(settings.name.clone());
            }
            None => {
                let _ = tree.supervisor.send(AddSession(settings.clone())).await;
                summary.added.push(settings.name.clone());
            }
        }
    }
    if old.daemon != new.daemon {
        log::warn!("reload: [daemon] settings changed; they take effect at the next restart");
    }
    summary
}
