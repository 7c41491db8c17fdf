//! Applying a new config to a running tree: sessions are added, removed
//! and replaced; an unchanged session keeps its connection and session_id.
//! SIGHUP and the control socket's `reload` share one `Reloader`, so two
//! reloads never interleave.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tokio::sync::Mutex;
use wsvisor_actors::messages::{AddSession, RemoveSession, ReplaceSession};
use wsvisor_actors::Tree;

use wsvisor_actors::settings::SessionSettings;

use crate::config::{self, Config, ConfigError, IdentityNeed};
use crate::identity::{self, IdentityStore};
use crate::protocol::ReloadSummary;
use crate::systemd;

/// Owns the running config and applies new ones to the tree.
pub struct Reloader {
    tree: Tree,
    path: PathBuf,
    /// The identities of the state directory the daemon started with.
    identities: IdentityStore,
    current: Mutex<Config>,
}

impl Reloader {
    /// A reloader for a tree started with `config` (its identities settled).
    pub fn new(tree: Tree, config: Config) -> Self {
        Reloader {
            tree,
            path: config.path.clone(),
            identities: IdentityStore::for_daemon(&config.daemon),
            current: Mutex::new(config),
        }
    }

    /// The running settings of `session` and, when its identity comes from
    /// the state directory, what the config left to it.
    pub async fn session(&self, session: &str) -> Option<(SessionSettings, Option<IdentityNeed>)> {
        let current = self.current.lock().await;
        let settings = current.session(session)?.clone();
        let need = current.identities.iter().find(|n| n.session == session).cloned();
        Some((settings, need))
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
        let mut new =
            config::load(&self.path).inspect_err(|err| log::error!("reload failed, nothing changed: {err}"))?;
        // New sessions get their identities now; [daemon] state_dir changes
        // only at a restart, like the rest of [daemon].
        let settled = identity::settle(&mut new, &self.identities)
            .map_err(ConfigError::from)
            .inspect_err(|err| log::error!("reload failed, nothing changed: {err}"))?;
        let created: Vec<_> = settled.into_iter().filter(|s| s.created).collect();
        identity::log(&created);
        for warning in &new.warnings {
            log::warn!("{warning}");
        }
        let summary = apply(&self.tree, current, &new).await;
        log::info!(
            "reloaded added={:?} removed={:?} changed={:?} unchanged={}",
            summary.added,
            summary.removed,
            summary.changed,
            summary.unchanged
        );
        *current = new;
        Ok(summary)
    }
}

/// Bring the tree from `old` to `new`.
async fn apply(tree: &Tree, old: &Config, new: &Config) -> ReloadSummary {
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
