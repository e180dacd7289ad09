//! The ports every service of the daemon shares, and nothing else: the configuration, the state
//! store, the container engine, the metrics, the workers' status board, the catalogue as read
//! from disk (re-read only when a file changed), and the signal that wakes the reconciler. Also
//! the few lookups every service needs from these ports (a stack's definition — the file's, or
//! the one a deployed stack was deployed with —, a registry's login, whether a scheduled job is
//! due). The services' own state lives in the services.

use crate::catalogue::{Catalogue, StackDef};
use crate::config::Config;
use crate::error::AppError;
use hafen_engine::Engine;
use hafen_store::Store;
use std::sync::{Arc, Mutex};

pub struct Shared {
    pub cfg: Config,
    pub store: Store,
    pub engine: Arc<dyn Engine>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// What `hafen worker list` shows.
    pub workers: crate::worker_status::Registry,
    /// Wakes the reconciler early (an engine event, a service turned unhealthy, a restart due).
    pub wake_reconciler: tokio::sync::Notify,
    /// The wall clock against the boot clock: a jump holds removals (`Alerts::look_at_clock`).
    pub clock: Mutex<hafen_core::clock::Guard>,
    /// The catalogue as last read, with the newest modification time of its files.
    catalogue: Mutex<(Option<std::time::SystemTime>, Arc<Catalogue>)>,
    /// Deployed stacks' recorded definitions, parsed once per text (by stack, with its hash).
    deployed: Mutex<std::collections::BTreeMap<String, Arc<StackDef>>>,
}

/// A poisoned lock is still the data: a panic elsewhere must not stop every later caller.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(cfg: Config, store: Store, engine: Arc<dyn Engine>) -> Shared {
        Shared {
            cfg,
            store,
            engine,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            workers: Default::default(),
            wake_reconciler: tokio::sync::Notify::new(),
            clock: Mutex::new(Default::default()),
            catalogue: Mutex::new((None, Arc::new(Catalogue::default()))),
            deployed: Mutex::new(Default::default()),
        }
    }

    /// The stack definitions, re-read only when a file under the stacks directory changed.
    pub fn catalogue(&self) -> Arc<Catalogue> {
        let stamp = newest_mtime(&self.cfg.stacks_dir);
        let mut c = lock(&self.catalogue);
        if c.0.is_none() || c.0 != stamp {
            *c = (stamp, Arc::new(Catalogue::load(&self.cfg.stacks_dir)));
        }
        c.1.clone()
    }

    /// One stack's definition; a broken definition is `Definition` with its issues, an
    /// unknown id `NotFound` with the ids there are.
    pub(crate) fn stack_def(&self, id: &str) -> Result<StackDef, AppError> {
        let c = self.catalogue();
        if let Some(s) = c.stacks.get(id) {
            return Ok(s.clone());
        }
        let file = self.cfg.stacks_dir.join(id).join("stack.yaml").display().to_string();
        let issues: Vec<String> = c.issues.iter().filter(|i| i.file == file).map(|i| i.to_string()).collect();
        if !issues.is_empty() {
            return Err(AppError::Definition { id: id.into(), issues });
        }
        Err(AppError::NotFound {
            id: id.into(),
            dir: self.cfg.stacks_dir.display().to_string(),
            available: c.stacks.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The definition a recorded stack runs by: the text recorded at its deploy (a changed file
    /// waits for the next deploy, see `pending_change`), or — for a record from before hafen
    /// kept the text — the file's. `None` when neither gives a valid definition.
    pub(crate) fn deployed(&self, rec: &hafen_store::StackRecord) -> Option<Arc<StackDef>> {
        if rec.definition.is_empty() {
            let file = self.catalogue().stacks.get(&rec.id).cloned().map(Arc::new);
            // A record from before hafen kept the text, whose file is still the one deployed:
            // the text is recorded now, so later edits of the file wait for their deploy.
            if let Some(f) = file.as_ref().filter(|f| f.file_hash == rec.definition_hash) {
                if let Err(e) = self.store.put_stack(&rec.id, rec.enabled, &rec.settings, &rec.definition_hash, Some(&f.source)) {
                    tracing::warn!(stack = %rec.id, error = %e, "could not record the deployed definition");
                }
            }
            return file;
        }
        let mut cache = lock(&self.deployed);
        if let Some(d) = cache.get(&rec.id).filter(|d| d.file_hash == rec.definition_hash) {
            return Some(d.clone());
        }
        let file = self.cfg.stacks_dir.join(&rec.id).join("stack.yaml").display().to_string();
        match crate::catalogue::load::parse_stack(&file, &rec.definition, Some(&rec.id)) {
            Ok(d) => {
                let d = Arc::new(d);
                cache.insert(rec.id.clone(), d.clone());
                Some(d)
            }
            Err(issues) => {
                let issues: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
                tracing::error!(stack = %rec.id, issues = %issues.join("; "), "the recorded definition does not validate");
                None
            }
        }
    }

    /// A stack's definition for acting on it as it runs: the recorded one when it is recorded
    /// (`deployed`), else the file's (`stack_def`).
    pub(crate) fn deployed_def(&self, id: &str) -> Result<StackDef, AppError> {
        match self.store.stack(id)? {
            Some(rec) => match self.deployed(&rec) {
                Some(d) => Ok((*d).clone()),
                None => self.stack_def(id),
            },
            None => self.stack_def(id),
        }
    }

    /// The stack's file differs from the definition it was deployed with (and validates): a
    /// change waits for `hafen stack deploy`.
    pub(crate) fn pending_change(&self, rec: &hafen_store::StackRecord) -> bool {
        !rec.definition.is_empty() && self.catalogue().stacks.get(&rec.id).is_some_and(|d| d.file_hash != rec.definition_hash)
    }

    /// The configured login for the registry of `reference`, if any (an unreadable password
    /// file is logged; the pull then fails with the registry's own refusal).
    pub(crate) fn registry_login(&self, reference: &str) -> Option<(String, String)> {
        let host = crate::registry::ImageRef::parse(reference)?.host;
        crate::registry::login_for(&self.cfg.registries, &host).unwrap_or_else(|e| {
            tracing::error!(registry = %host, "{e}");
            None
        })
    }

    /// Now, when the scheduled job `job` is due by `expr` and its persisted last run (a first
    /// start records now and owes nothing; a last run in the future, after the clock went back,
    /// is replaced by now).
    pub(crate) fn job_due(&self, job: &str, expr: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let schedule = hafen_core::schedule::parse(expr).ok()?;
        let now = chrono::Utc::now();
        let last = self.store.job_last_run(job).ok().flatten().and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok()).map(|d| d.with_timezone(&chrono::Utc));
        if last.is_none() {
            let _ = self.store.set_job(job, &now.to_rfc3339(), None);
            return None;
        }
        match hafen_core::schedule::due(&schedule, last, now) {
            hafen_core::schedule::Due::Now { .. } => Some(now),
            hafen_core::schedule::Due::Wait { .. } => None,
            hafen_core::schedule::Due::ClockBack { next } => {
                tracing::warn!(job, last = ?last, next = %next, "the clock went back behind this job's last run; it runs next at its regular time");
                let _ = self.store.set_job(job, &now.to_rfc3339(), None);
                None
            }
        }
    }
}

fn newest_mtime(dir: &std::path::Path) -> Option<std::time::SystemTime> {
    let mut newest = std::fs::metadata(dir).and_then(|m| m.modified()).ok()?;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        for p in [e.path(), e.path().join("stack.yaml")] {
            if let Ok(t) = std::fs::metadata(&p).and_then(|m| m.modified()) {
                newest = newest.max(t);
            }
        }
    }
    Some(newest)
}
