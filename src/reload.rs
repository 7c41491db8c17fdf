//! Applying a new config to a running tree: sessions are added, removed
//! and replaced; an unchanged session keeps its connection and session_id.
//! SIGHUP and the control socket's `reload` share one `Reloader`, so two
//! reloads never interleave. New sessions start only while the open-file
//! limit has room for them (`limits::admit`); the rest are refused, said
//! in the result (`failed`) and the log, and count as new at the next reload.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tokio::sync::Mutex;
use wsvisor_actors::messages::{AddSession, CommandError, RemoveSession, ReplaceSession};
use wsvisor_actors::Tree;

use wsvisor_actors::settings::SessionSettings;

use crate::config::{self, Config, ConfigError, IdentityNeed};
use crate::identity::{self, IdentityStore};
use crate::protocol::ReloadSummary;
use crate::{limits, systemd};

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
        let summary = apply(&self.tree, current, &mut new).await;
        log::info!(
            "reloaded added={:?} removed={:?} changed={:?} unchanged={} failed={:?}",
            summary.added,
            summary.removed,
            summary.changed,
            summary.unchanged,
            summary.failed.keys().collect::<Vec<_>>()
        );
        *current = new;
        Ok(summary)
    }
}

/// Bring the tree from `old` to `new`. What the tree refuses is said in
/// the summary and the log, and taken back out of `new` (or left as it
/// was in `old`), so the running config is what runs.
async fn apply(tree: &Tree, old: &Config, new: &mut Config) -> ReloadSummary {
    let mut summary = ReloadSummary::default();
    let new_names: HashSet<String> = new.sessions.iter().map(|s| s.name.clone()).collect();
    let mut kept_old = Vec::new();
    for gone in old.sessions.iter().filter(|s| !new_names.contains(&s.name)) {
        match outcome(tree.supervisor.send(RemoveSession(gone.name.clone())).await) {
            Ok(()) => summary.removed.push(gone.name.clone()),
            Err(why) => {
                refused(&mut summary, &gone.name, "remove", why);
                kept_old.push(gone.clone());
            }
        }
    }
    let mut refused_new = HashSet::new();
    // New sessions start only while the open-file limit has room for them
    // next to the ones that stay; the rest are refused in one log line.
    let kept = new.sessions.iter().filter(|s| old.session(&s.name).is_some()).count();
    let admission = limits::admit(kept, new.sessions.len() - kept);
    let mut no_room = Vec::new();
    let mut adding = 0;
    for settings in &new.sessions {
        let (verb, result) = match old.session(&settings.name) {
            Some(previous) if previous == &**settings => {
                summary.unchanged += 1;
                continue;
            }
            Some(_) => (
                "change",
                outcome(tree.supervisor.send(ReplaceSession(settings.clone())).await),
            ),
            None if adding >= admission.admitted => {
                let why = admission.why_not.clone().unwrap_or_default();
                summary
                    .failed
                    .insert(settings.name.clone(), format!("add: not started: {why}"));
                refused_new.insert(settings.name.clone());
                no_room.push(settings.name.as_str());
                continue;
            }
            None => {
                adding += 1;
                ("add", outcome(tree.supervisor.send(AddSession(settings.clone())).await))
            }
        };
        match (verb, result) {
            ("change", Ok(())) => summary.changed.push(settings.name.clone()),
            (_, Ok(())) => summary.added.push(settings.name.clone()),
            (verb, Err(why)) => {
                refused(&mut summary, &settings.name, verb, why);
                refused_new.insert(settings.name.clone());
            }
        }
    }
    if let Some(why) = admission.why_not.as_deref().filter(|_| !no_room.is_empty()) {
        log::error!(
            "reload: not starting {} new sessions: {why}: {}",
            no_room.len(),
            limits::some_names(no_room.iter().copied(), 10)
        );
    }
    // A refused change keeps the old settings running; a refused add is not there.
    new.sessions.retain(|s| !refused_new.contains(&s.name));
    new.sessions
        .extend(old.sessions.iter().filter(|s| refused_new.contains(&s.name)).cloned());
    new.sessions.extend(kept_old);
    if old.daemon != new.daemon {
        log::warn!("reload: [daemon] settings changed; they take effect at the next restart");
    }
    summary
}

fn outcome(sent: Result<Result<(), CommandError>, actix::MailboxError>) -> Result<(), String> {
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(err) => Err(format!("the supervisor did not answer: {err}")),
    }
}

fn refused(summary: &mut ReloadSummary, name: &str, verb: &str, why: String) {
    log::error!("session={name} reload could not {verb} it: {why}");
    summary.failed.insert(name.to_owned(), format!("{verb}: {why}"));
}
