//! Applying a new config to a running tree: sessions are added, removed
//! and replaced; an unchanged session keeps its connection and session_id.
//! SIGHUP and the control socket's `reload` share one `Reloader`, so two
//! reloads never interleave. New sessions start only while the open-file
//! limit has room for them (`limits::admit`); the rest are refused, said
//! in the result and the log, and count as new at the next reload.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tokio::sync::Mutex;
use wsvisor_actors::messages::{AddSession, RemoveSession, ReplaceSession};
use wsvisor_actors::Tree;

use crate::config::{self, Config, ConfigError};
use crate::protocol::ReloadSummary;
use crate::{limits, systemd};

/// Owns the running config and applies new ones to the tree.
pub struct Reloader {
    tree: Tree,
    path: PathBuf,
    current: Mutex<Config>,
}

impl Reloader {
    /// A reloader for a tree started with `config`.
    pub fn new(tree: Tree, config: Config) -> Self {
        Reloader {
            tree,
            path: config.path.clone(),
            current: Mutex::new(config),
        }
    }

    /// The config file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-read the file and apply it; on any error nothing changes.
    /// systemd hears RELOADING=1 before and READY=1 after, either way.
    pub async fn reload(&self) -> Result<ReloadSummary, ConfigError> {
        let mut current = self.current.lock().await;
        systemd::reloading();
        let result = self.apply_file(&mut current).await;
        systemd::ready(&systemd::session_status(&self.tree).await);
        result
    }

    async fn apply_file(&self, current: &mut Config) -> Result<ReloadSummary, ConfigError> {
        let new = config::load(&self.path).inspect_err(|err| log::error!("reload failed, nothing changed: {err}"))?;
        for warning in &new.warnings {
            log::warn!("{warning}");
        }
        let (summary, running) = apply(&self.tree, current, new).await;
        log::info!(
            "reloaded added={:?} removed={:?} changed={:?} unchanged={}{}",
            summary.added,
            summary.removed,
            summary.changed,
            summary.unchanged,
            if summary.refused.is_empty() {
                String::new()
            } else {
                format!(" refused={}", summary.refused.len())
            }
        );
        // What runs, so that refused sessions count as new at the next reload.
        *current = running;
        Ok(summary)
    }
}

/// Bring the tree from `old` to `new`; the summary, and the config that
/// now runs: `new` without the sessions the open-file limit had no room for.
async fn apply(tree: &Tree, old: &Config, mut new: Config) -> (ReloadSummary, Config) {
    let mut summary = ReloadSummary::default();
    let new_names: HashSet<&str> = new.sessions.iter().map(|s| s.name.as_str()).collect();
    for gone in old.sessions.iter().filter(|s| !new_names.contains(s.name.as_str())) {
        let _ = tree.supervisor.send(RemoveSession(gone.name.clone())).await;
        summary.removed.push(gone.name.clone());
    }
    let kept = new.sessions.iter().filter(|s| old.session(&s.name).is_some()).count();
    let admission = limits::admit(kept, new.sessions.len() - kept);
    let mut running = Vec::with_capacity(new.sessions.len());
    for settings in std::mem::take(&mut new.sessions) {
        match old.session(&settings.name) {
            Some(previous) if *previous == settings => summary.unchanged += 1,
            Some(_) => {
                let _ = tree.supervisor.send(ReplaceSession(settings.clone())).await;
                summary.changed.push(settings.name.clone());
            }
            None if summary.added.len() < admission.admitted => {
                let _ = tree.supervisor.send(AddSession(settings.clone())).await;
                summary.added.push(settings.name.clone());
            }
            None => {
                summary.refused.push(settings.name);
                continue;
            }
        }
        running.push(settings);
    }
    new.sessions = running;
    if !summary.refused.is_empty() {
        summary.refused_because = admission.why_not;
        log::error!(
            "reload: not starting {} new sessions: {}: {}",
            summary.refused.len(),
            summary.refused_because.as_deref().unwrap_or("no room"),
            limits::some_names(summary.refused.iter().map(String::as_str), 10)
        );
    }
    if old.daemon != new.daemon {
        log::warn!("reload: [daemon] settings changed; they take effect at the next restart");
    }
    (summary, new)
}
