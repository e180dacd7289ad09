//! The backup service, backup and restore in one place. One backup run of one stack is
//! app-consistent: pre-hooks (e.g. maintenance mode) → one snapshot holding the streamed dumps,
//! the stack's backed-up volumes, its definition, settings, image pins and secrets → post-hooks,
//! which always run → a structural check. A dump that fails (even after printing data) leaves no
//! snapshot. The repository key comes from the keyring; the wrapped key is also stored in the
//! target as `hafen-repo-key.age` for the recovery kit's path. On the daemon (`Backups` below):
//! backups of a stack and of hafen's own state, exports, prune, listing, checks, the in-place
//! restore (staging, swap, health, rollback), retention and the nightly schedule.

use crate::alerts::Alerts;
use crate::busy::Ops;
use crate::error::AppError;
use crate::health::Health;
use crate::shared::Shared;
use crate::stacks::Stacks;
use crate::catalogue::render::resolve_settings;
use crate::reconcile::{self, Action, Actual};
use hafen_api::{BackupCheckRequest, BackupCheckResponse, BackupExportRequest, BackupPruneRequest, BackupPruneResponse, BackupRepairRequest, BackupRunRequest, RepairReport, RestoreRequest};
use hafen_backup::keys::{KeyError, Keyring};
use hafen_core::events::Event;
use hafen_backup::repo::{Location, Part, Repo, RepoError};
use crate::catalogue::StackDef;
use crate::config::{BackupTarget, Config, TargetKind};
use hafen_engine::{container_name, Engine, EngineError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{}", rust_i18n::t!("err.run_notarget"))]
    NoTarget,
    #[error("{}", rust_i18n::t!("err.run_unknown", _0 = .0, _1 = .1))]
    UnknownTarget(String, String),
    #[error("{}", rust_i18n::t!("err.run_notmounted", target = .target, path = .path))]
    NotMounted { target: String, path: String },
    #[error("{}", rust_i18n::t!("err.run_busy", _0 = .0))]
    Busy(String),
    #[error("{}", rust_i18n::t!("err.run_quiesce", _0 = .0))]
    QuiesceLimit(u64),
    #[error("{}", rust_i18n::t!("err.run_appendonly", _0 = .0))]
    AppendOnly(String),
    #[error("{}", rust_i18n::t!("err.run_credentials", target = .target, path = .path, detail = .detail))]
    Credentials { target: String, path: String, detail: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Io(String),
}

impl BackupError {
    /// The error as code + arguments (`hafen_api::Message`), rendered by each reader's front end;
    /// errors from the repository, the keys or the system travel as their text (`app_backup`).
    pub fn message(&self) -> hafen_api::Message {
        use hafen_api::Message as M;
        match self {
            BackupError::NoTarget => M::new("run_notarget"),
            BackupError::UnknownTarget(a, b) => M::new("run_unknown").arg("_0", a).arg("_1", b),
            BackupError::NotMounted { target, path } => M::new("run_notmounted").arg("target", target).arg("path", path),
            BackupError::Busy(s) => M::new("run_busy").arg("_0", s),
            BackupError::QuiesceLimit(n) => M::new("run_quiesce").arg("_0", n),
            BackupError::AppendOnly(t) => M::new("run_appendonly").arg("_0", t),
            BackupError::Credentials { target, path, detail } => M::new("run_credentials").arg("target", target).arg("path", path).arg("detail", detail),
            BackupError::Engine(e) => e.message(),
            BackupError::Key(_) | BackupError::Repo(_) | BackupError::Io(_) => M::new("app_backup").arg("detail", self),
        }
    }
}

impl From<BackupError> for AppError {
    fn from(e: BackupError) -> AppError {
        AppError::Backup(e.message())
    }
}

/// A backup failure that arrives as text (the repository, the keys, a task that died).
fn backup_text(e: impl std::fmt::Display) -> AppError {
    AppError::Backup(hafen_api::Message::new("app_backup").arg("detail", e))
}

pub use hafen_api::RunReport;


pub use hafen_api::RunStep as Step;
use hafen_api::Message;

/// A step whose detail is a catalogue text (`run.…`): its English line and its code.
fn said(step: impl Into<String>, ok: bool, m: Message, seconds: f64) -> Step {
    Step { step: step.into(), ok, detail: hafen_core::i18n::render("en", &m), seconds, text: Some(m) }
}

/// A text that came from elsewhere (an engine's or a command's error), as it is, in every language.
fn quoted(e: impl ToString) -> Message {
    Message::new("run.quoted").arg("text", e.to_string())
}

/// A step whose detail came from elsewhere in either case (a migration's output or error).
/// A mark a killed daemon may have left (a restore's journal, a quiesced stack), read whole.
fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T, String> {
    let bytes = std::fs::read(p).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// Removes a directory when dropped (a restore's staging, also when it stops half-way).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An in-place restore's record of the volumes it moved aside (`<state>/restore/<stack>.journal`):
/// written before each volume is moved, and marked committed before the previous data is deleted.
/// A daemon killed in between finds it at its next start (`recover_interrupted_restores`) and puts
/// the previous data back — or, once committed, finishes deleting the old data.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct RestoreJournal {
    stack: String,
    /// (volume directory, where its previous content was moved)
    pairs: Vec<(std::path::PathBuf, std::path::PathBuf)>,
    committed: bool,
}

impl RestoreJournal {
    fn path(state_dir: &Path, stack: &str) -> std::path::PathBuf {
        state_dir.join("restore").join(format!("{stack}.journal"))
    }

    /// Written whole or not at all (a new file, synced, renamed over the old one).
    fn save(&self, state_dir: &Path) -> Result<(), String> {
        use std::io::Write;
        let path = Self::path(state_dir, &self.stack);
        let tmp = path.with_extension("journal.new");
        let json = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        f.write_all(&json).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Puts every volume's previous content back (what was restored into it is deleted).
    fn roll_back(&self, ts: &str) {
        for (path, aside) in &self.pairs {
            if !aside.exists() {
                continue;
            }
            let failed = path.with_file_name(format!("_data.failed-restore-{ts}"));
            let _ = std::fs::rename(path, &failed);
            let _ = std::fs::rename(aside, path);
            let _ = std::fs::remove_dir_all(&failed);
        }
    }
}

/// A run's failure, as an error code (`err.<code>`) or a text's key (`run.…`), with the
/// daemon's own rendering beside it.
trait Fail {
    fn fail(&mut self, m: Message);
}

impl Fail for RunReport {
    fn fail(&mut self, m: Message) {
        let lang = rust_i18n::locale();
        self.error = Some(hafen_core::i18n::render_error(&lang, &m).unwrap_or_else(|| hafen_core::i18n::render(&lang, &m)));
        self.error_text = Some(m);
    }
}

fn quoted_step(step: String, r: &Result<String, String>, seconds: f64) -> Step {
    let (ok, text) = match r {
        Ok(t) => (true, t),
        Err(t) => (false, t),
    };
    Step { step, ok, detail: text.clone(), seconds, text: None }
}

pub fn target<'a>(cfg: &'a Config, name: Option<&str>) -> Result<&'a BackupTarget, BackupError> {
    let names = || cfg.backup_targets.iter().map(|t| t.name.clone()).collect::<Vec<_>>().join(", ");
    match name {
        None => cfg.backup_targets.first().ok_or(BackupError::NoTarget),
        Some(n) => cfg.backup_targets.iter().find(|t| t.name == n).ok_or_else(|| BackupError::UnknownTarget(n.into(), names())),
    }
}

pub(crate) fn is_mount_point(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(m), Some(Ok(parent))) => m.dev() != parent.dev() || m.ino() == parent.ino(),
        _ => false,
    }
}

fn check_private(path: &Path, target: &str) -> Result<(), BackupError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| BackupError::Credentials { target: target.into(), path: path.display().to_string(), detail: e.to_string() })?;
    if !m.is_file() || m.mode() & 0o077 != 0 {
        return Err(BackupError::Credentials {
            target: target.into(),
            path: path.display().to_string(),
            detail: format!("mode {:o}; only its owner may read it (chmod 600 {})", m.mode() & 0o7777, path.display()),
        });
    }
    Ok(())
}

/// `KEY=value` lines (an env file): for S3, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
fn read_env_file(path: &Path, target: &str) -> Result<BTreeMap<String, String>, BackupError> {
    let text = std::fs::read_to_string(path).map_err(|e| BackupError::Credentials { target: target.into(), path: path.display().to_string(), detail: e.to_string() })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().trim_start_matches("export ").to_string(), v.trim().trim_matches('"').trim_matches('\'').to_string()))
        .collect())
}

/// How rustic_backend reaches a target: local directories directly, SFTP through rclone (which
/// pins the host key from the target's known_hosts file), S3 through OpenDAL, REST directly.
/// Credential files must be private (mode 0600); their contents never reach a log.
pub fn location(t: &BackupTarget) -> Result<Location, BackupError> {
    for f in t.credential_files() {
        check_private(f, &t.name)?;
    }
    let display = t.location();
    Ok(match &t.kind {
        TargetKind::Local { path, .. } => Location::local(path),
        TargetKind::Sftp { host, port, user, path, ssh_key, known_hosts } => {
            if !known_hosts.is_file() {
                return Err(BackupError::Credentials {
                    target: t.name.clone(),
                    path: known_hosts.display().to_string(),
                    detail: "missing; put the server's host key there (ssh-keyscan -p PORT HOST, checked against the server)".into(),
                });
            }
            let remote = format!(
                ":sftp,host={host},port={port},user={user},key_file={},known_hosts_file={},shell_type=none,disable_hashcheck=true:{path}",
                ssh_key.display(),
                known_hosts.display()
            );
            Location { backend: format!("rclone:{remote}"), options: Default::default(), display, secrets: vec![] }
        }
        TargetKind::S3 { endpoint, region, bucket, prefix, credentials } => {
            let env = read_env_file(credentials, &t.name)?;
            let get = |k: &str| {
                env.get(k).cloned().ok_or_else(|| BackupError::Credentials { target: t.name.clone(), path: credentials.display().to_string(), detail: format!("no {k}= line") })
            };
            let (id, secret) = (get("AWS_ACCESS_KEY_ID")?, get("AWS_SECRET_ACCESS_KEY")?);
            let mut options = BTreeMap::new();
            options.insert("bucket".to_string(), bucket.clone());
            options.insert("endpoint".to_string(), endpoint.clone());
            options.insert("region".to_string(), region.clone());
            options.insert("root".to_string(), format!("/{prefix}"));
            options.insert("access_key_id".to_string(), id);
            options.insert("secret_access_key".to_string(), secret.clone());
            options.insert("disable_config_load".to_string(), "true".to_string());
            Location { backend: "opendal:s3".into(), options, display, secrets: vec![secret] }
        }
        TargetKind::Rest { url, credentials } => match credentials {
            None => Location { backend: format!("rest:{url}"), options: Default::default(), display, secrets: vec![] },
            Some(f) => {
                let text = std::fs::read_to_string(f).map_err(|e| BackupError::Credentials { target: t.name.clone(), path: f.display().to_string(), detail: e.to_string() })?;
                let (user, pw) = text.trim().split_once(':').ok_or_else(|| BackupError::Credentials {
                    target: t.name.clone(),
                    path: f.display().to_string(),
                    detail: "expected one line user:password".into(),
                })?;
                let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
                Location { backend: format!("rest:{scheme}://{user}:{pw}@{rest}"), options: Default::default(), display, secrets: vec![pw.to_string()] }
            }
        },
    })
}

/// Opens (or creates) the repository of a target with its key; for a local target, stores the
/// wrapped key beside it (remote targets: the recovery kit carries it).
pub async fn open_target(cfg: &Config, t: &BackupTarget) -> Result<Repo, BackupError> {
    if let TargetKind::Local { path, require_mount: true } = &t.kind {
        if !is_mount_point(path) {
            return Err(BackupError::NotMounted { target: t.name.clone(), path: path.display().to_string() });
        }
    }
    let ring = Keyring::open(&cfg.keys_dir())?;
    let key = ring.repo_key(&t.name)?;
    let loc = location(t)?;
    // The repository cache (encrypted copies of index, snapshot and tree files, as restic keeps
    // them): a directory only hafen may enter.
    let cache = cfg.state_dir.join("cache");
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::create_dir_all(&cache).and_then(|_| std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)));
    }
    let repo = tokio::task::spawn_blocking(move || Repo::open_or_init(loc, key).map(|r| r.with_cache(cache))).await.map_err(|e| BackupError::Io(e.to_string()))??;
    if let (Some(wrapped), TargetKind::Local { path, .. }) = (ring.wrapped_repo_key(&t.name)?, &t.kind) {
        let p = path.join("hafen-repo-key.age");
        if std::fs::read(&p).ok().as_deref() != Some(wrapped.as_slice()) {
            std::fs::write(&p, wrapped).map_err(|e| BackupError::Io(format!("{}: {e}", p.display())))?;
        }
    }
    Ok(repo)
}

async fn run_hooks(engine: &dyn Engine, stack: &str, hooks: &[crate::catalogue::model::HookDef], what: &str, report: &mut RunReport) -> bool {
    let mut all_ok = true;
    for h in hooks {
        let t = Instant::now();
        let r = engine.exec(&container_name(stack, &h.service), &h.command, Duration::from_secs(300)).await;
        let (ok, detail) = match r {
            Ok(o) if o.exit_code == 0 => (true, Message::new("run.hook_ok").arg("cmd", h.command.join(" ")).arg("service", &h.service)),
            Ok(o) => (false, Message::new("run.hook_failed").arg("cmd", h.command.join(" ")).arg("service", &h.service).arg("code", o.exit_code).arg("stderr", o.stderr.trim())),
            Err(e) => (false, quoted(e)),
        };
        all_ok &= ok;
        report.steps.push(said(what, ok, detail, t.elapsed().as_secs_f64()));
    }
    all_ok
}

/// `<state>/quiesce/<stack>`: the stack's pre-hooks ran and its post-hooks have not yet (e.g.
/// Nextcloud in maintenance mode). A daemon killed in between finds the mark at its next start
/// and runs the post-hooks then (`Backups::end_interrupted_quiesces`): an app never stays
/// quiesced because hafen stopped. Written whole (a new file, synced, renamed) and only for
/// stacks that have post-hooks.
#[derive(Serialize, Deserialize)]
struct QuiesceMark {
    stack: String,
    target: String,
    since: String,
}

impl QuiesceMark {
    fn dir(state_dir: &Path) -> PathBuf {
        state_dir.join("quiesce")
    }

    fn set(state_dir: &Path, stack: &str, target: &str) -> Result<(), BackupError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = Self::dir(state_dir);
        let path = dir.join(stack);
        let tmp = dir.join(format!(".{stack}.new"));
        let json = serde_json::to_vec(&QuiesceMark { stack: stack.into(), target: target.into(), since: hafen_store::now() }).unwrap_or_default();
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp))
            .and_then(|mut f| f.write_all(&json).and_then(|_| f.sync_all()))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| BackupError::Io(format!("{}: {e}", path.display())))
    }

    fn clear(state_dir: &Path, stack: &str) {
        let _ = std::fs::remove_file(Self::dir(state_dir).join(stack));
    }
}

/// Backs up one stack to one target.
pub async fn backup_stack(
    engine: &dyn Engine,
    cfg: &Config,
    stack: &StackDef,
    settings: &BTreeMap<String, String>,
    pins: &BTreeMap<String, hafen_store::ImagePin>,
    target_name: Option<&str>,
) -> Result<RunReport, BackupError> {
    let t = target(cfg, target_name)?;
    let mut report = RunReport { stack: stack.id.clone(), target: t.name.clone(), ..Default::default() };
    let started = Instant::now();
    let repo = open_target(cfg, t).await?;
    report.steps.push(Step { step: "open".into(), ok: true, detail: t.location(), seconds: started.elapsed().as_secs_f64(), text: None });

    // hafen's own record of the stack, stored at /hafen/meta in the snapshot.
    let meta = cfg.state_dir.join("tmp").join(format!("backup-{}-{}", stack.id, std::process::id()));
    let _ = std::fs::remove_dir_all(&meta);
    std::fs::create_dir_all(&meta).map_err(|e| BackupError::Io(format!("{}: {e}", meta.display())))?;
    let record = serde_json::json!({
        "hafen": env!("CARGO_PKG_VERSION"),
        "stack": stack.id,
        "time": hafen_store::now(),
        "settings": settings,
        "image_pins": pins,
        "definition_hash": stack.file_hash,
        "dumps": stack.backup.dumps.iter().map(|d| serde_json::json!({"service": d.service, "command": d.command, "file": d.file})).collect::<Vec<_>>(),
        "volumes": stack.volumes.iter().filter(|(_, v)| v.backup).map(|(n, _)| n.clone()).collect::<Vec<_>>(),
    });
    let write = |name: &str, data: &[u8]| std::fs::write(meta.join(name), data).map_err(|e| BackupError::Io(format!("{name}: {e}")));
    write("run.json", serde_json::to_vec_pretty(&record).unwrap_or_default().as_slice())?;
    // The definition the stack runs by (as deployed), not whatever the file says now.
    write("stack.yaml", stack.source.as_bytes())?;

    // The quiesce bound: when `max_quiesce` passes, the capture is stopped (no snapshot kept)
    // and the post-hooks run at once, so the app never stays in maintenance mode longer.
    let quiesce = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut post_done = false;
    let marked = !stack.backup.post.is_empty();
    if marked {
        QuiesceMark::set(&cfg.state_dir, &stack.id, &t.name)?;
    }
    let pre_ok = run_hooks(engine, &stack.id, &stack.backup.pre, "pre-hook", &mut report).await;
    let result = if !pre_ok {
        Err(BackupError::Io("a pre-hook failed; no snapshot was taken".into()))
    } else {
        let mut parts = vec![Part::Dir { src: meta.clone(), dst: "/hafen/meta".into() }];
        let secrets = cfg.secrets_dir().join(&stack.id);
        if secrets.is_dir() {
            parts.push(Part::Dir { src: secrets, dst: "/hafen/secrets".into() });
        }
        for (name, v) in &stack.volumes {
            if !v.backup {
                continue;
            }
            match engine.volume_path(&stack.id, name).await? {
                Some(p) => parts.push(Part::Dir { src: p, dst: PathBuf::from("/volumes").join(name) }),
                None => report.steps.push(said("volume", false, Message::new("run.volume_missing").arg("name", name), 0.0)),
            }
        }
        let mut producers = Vec::new();
        for d in &stack.backup.dumps {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            let (dtx, drx) = std::sync::mpsc::channel();
            let container = container_name(&stack.id, &d.service);
            let cmd = d.command.clone();
            let file = d.file.clone();
            // The producer runs on the engine connection; the repository reads on a thread.
            let engine_ref: &dyn Engine = engine;
            let stop = stop.clone();
            let fut = async move {
                let t = Instant::now();
                let verdict = tokio::select! {
                    r = engine_ref.exec_stream(&container, &cmd, tx, Duration::from_secs(6 * 3600)) => match &r {
                        Ok(o) if o.exit_code == 0 => Ok(()),
                        Ok(o) => Err(Message::new("run.command_failed").arg("cmd", cmd.join(" ")).arg("code", o.exit_code).arg("stderr", o.stderr.trim())),
                        Err(e) => Err(quoted(e)),
                    },
                    _ = stop.cancelled() => Err(Message::new("run.dump_stopped").arg("cmd", cmd.join(" "))),
                };
                let _ = dtx.send(verdict.clone().map_err(|m| hafen_core::i18n::render("en", &m)));
                let seconds = t.elapsed().as_secs_f64();
                match verdict {
                    Ok(()) => said(format!("dump {file}"), true, Message::new("run.command").arg("cmd", cmd.join(" ")), seconds),
                    Err(m) => said(format!("dump {file}"), false, m, seconds),
                }
            };
            producers.push(fut);
            parts.push(Part::Stream { dst: PathBuf::from("/dumps").join(&d.file), data: rx, done: drx });
        }
        let label = stack.id.clone();
        let tags = vec![format!("stack:{}", stack.id), "hafen".to_string()];
        let desc = format!("hafen backup of {}", stack.id);
        let flag = stop_flag.clone();
        let t_archive = Instant::now();
        let archive = tokio::task::spawn_blocking(move || repo.backup_cancellable(parts, &label, &tags, &desc, flag).map(|s| (s, repo)));
        let work = async { tokio::join!(futures_util::future::join_all(producers), archive) };
        tokio::pin!(work);
        let limit = stack.backup.max_quiesce.map(|m| m.saturating_sub(quiesce.elapsed()));
        let finished = match limit {
            Some(l) => tokio::select! {
                r = &mut work => Some(r),
                _ = tokio::time::sleep(l) => None,
            },
            None => Some((&mut work).await),
        };
        let (steps, archived) = match finished {
            Some(r) => r,
            None => {
                stop_flag.store(true, std::sync::atomic::Ordering::Relaxed);
                stop.cancel();
                let limit = stack.backup.max_quiesce.unwrap_or_default();
                report.steps.push(said("quiesce limit", false, Message::new("run.quiesce_limit").arg("secs", limit.as_secs()), quiesce.elapsed().as_secs_f64()));
                run_hooks(engine, &stack.id, &stack.backup.post, "post-hook", &mut report).await;
                report.quiesced_seconds = quiesce.elapsed().as_secs_f64();
                QuiesceMark::clear(&cfg.state_dir, &stack.id);
                post_done = true;
                work.await
            }
        };
        report.steps.extend(steps);
        if let Ok(Ok((snap, _))) = &archived {
            let m = Message::new("run.snapshot").arg("files", snap.files).arg("bytes", snap.bytes).arg("added", snap.added);
            report.steps.push(said("snapshot", true, m, t_archive.elapsed().as_secs_f64()));
        }
        match archived {
            Ok(Ok((snap, repo))) if !post_done => Ok((snap, repo)),
            Ok(Ok((snap, repo))) => {
                // Finished just as the limit struck: it was not bounded, so it does not count.
                let id = snap.id.clone();
                let _ = tokio::task::spawn_blocking(move || repo.forget(&[id])).await;
                Err(BackupError::QuiesceLimit(stack.backup.max_quiesce.unwrap_or_default().as_secs()))
            }
            Ok(Err(_)) if post_done => Err(BackupError::QuiesceLimit(stack.backup.max_quiesce.unwrap_or_default().as_secs())),
            Ok(Err(e)) => Err(BackupError::Repo(e)),
            Err(e) => Err(BackupError::Io(format!("the backup task failed: {e}"))),
        }
    };
    // Post-hooks always run, whatever happened before (once).
    if !post_done {
        run_hooks(engine, &stack.id, &stack.backup.post, "post-hook", &mut report).await;
        report.quiesced_seconds = quiesce.elapsed().as_secs_f64();
    }
    if marked {
        QuiesceMark::clear(&cfg.state_dir, &stack.id);
    }
    let _ = std::fs::remove_dir_all(&meta);
    match result {
        Ok((snap, repo)) => {
            let id = snap.id.clone();
            let t_check = Instant::now();
            let problems = tokio::task::spawn_blocking(move || repo.check_snapshot(&id)).await.map_err(|e| BackupError::Io(e.to_string()))??;
            report.steps.push(said("check", problems.is_empty(), Message::new("run.check"), t_check.elapsed().as_secs_f64()));
            report.check_problems = problems;
            report.snapshot = Some(snap);
            if !report.check_problems.is_empty() {
                report.fail(Message::new("run_check_problems").arg("problems", report.check_problems.join("; ")));
            }
        }
        Err(e) => report.fail(e.message()),
    }
    Ok(report)
}

/// Where hafen's own state lived, recorded in every host snapshot at `/hafen/host.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostRecord {
    pub hafen: String,
    pub time: String,
    /// The configuration file, when one was used.
    pub config_path: Option<String>,
    pub state_dir: String,
    pub stacks_dir: String,
    /// Deployed stacks at the time (from the state store).
    pub stacks: Vec<String>,
}

/// Tag of the snapshots of hafen's own state.
pub const HOST_TAG: &str = "hafen-host";

/// Backs up hafen's own state to a target: the configuration file, the state store (a
/// consistent copy), keys, secrets and the stack definitions — what `hafen restore --all` needs
/// to bring the box back.
pub async fn backup_host(cfg: &Config, store: &hafen_store::Store, target_name: Option<&str>) -> Result<RunReport, BackupError> {
    let t = target(cfg, target_name)?;
    let mut report = RunReport { stack: HOST_TAG.into(), target: t.name.clone(), ..Default::default() };
    let started = Instant::now();
    let repo = open_target(cfg, t).await?;
    report.steps.push(Step { step: "open".into(), ok: true, detail: t.location(), seconds: started.elapsed().as_secs_f64(), text: None });
    let staging = cfg.state_dir.join("tmp").join(format!("host-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let io = |p: &Path, e: std::io::Error| BackupError::Io(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(staging.join("meta")).map_err(|e| io(&staging, e))?;
    std::fs::create_dir_all(staging.join("db")).map_err(|e| io(&staging, e))?;
    let result = async {
        let config_path = Path::new(&cfg.source).is_file().then(|| cfg.source.clone());
        let record = HostRecord {
            hafen: env!("CARGO_PKG_VERSION").into(),
            time: hafen_store::now(),
            config_path: config_path.clone(),
            state_dir: cfg.state_dir.display().to_string(),
            stacks_dir: cfg.stacks_dir.display().to_string(),
            stacks: store.stacks().map(|v| v.into_iter().map(|s| s.id).collect()).unwrap_or_default(),
        };
        let meta = staging.join("meta");
        std::fs::write(meta.join("host.json"), serde_json::to_vec_pretty(&record).unwrap_or_default()).map_err(|e| io(&meta, e))?;
        if let Some(c) = &config_path {
            std::fs::copy(c, meta.join("hafen.yaml")).map_err(|e| io(Path::new(c), e))?;
        }
        let db = staging.join("db").join("state.db");
        store.copy_to(&db).map_err(|e| BackupError::Io(format!("copying the state store: {e}")))?;
        let mut parts = vec![Part::Dir { src: meta.clone(), dst: "/hafen/host".into() }, Part::Dir { src: staging.join("db"), dst: "/hafen/db".into() }];
        for (src, dst) in [(cfg.keys_dir(), "/hafen/keys"), (cfg.secrets_dir(), "/hafen/secrets"), (cfg.stacks_dir.clone(), "/hafen/stacks")] {
            if src.is_dir() {
                parts.push(Part::Dir { src, dst: dst.into() });
            }
        }
        let tags = vec![HOST_TAG.to_string(), "hafen".to_string()];
        let snap = tokio::task::spawn_blocking(move || repo.backup(parts, HOST_TAG, &tags, "hafen's own state").map(|s| (s, repo)))
            .await
            .map_err(|e| BackupError::Io(e.to_string()))??;
        Ok::<_, BackupError>(snap)
    }
    .await;
    let _ = std::fs::remove_dir_all(&staging);
    match result {
        Ok((snap, repo)) => {
            let id = snap.id.clone();
            report.check_problems = tokio::task::spawn_blocking(move || repo.check_snapshot(&id)).await.map_err(|e| BackupError::Io(e.to_string()))??;
            if !report.check_problems.is_empty() {
                report.fail(Message::new("run_check_problems").arg("problems", report.check_problems.join("; ")));
            }
            report.snapshot = Some(snap);
        }
        Err(e) => report.fail(e.message()),
    }
    report.steps.push(said("host state", report.error.is_none(), Message::new("run.host_state"), started.elapsed().as_secs_f64()));
    Ok(report)
}

/// What retention did in one target: kept and forgotten snapshot ids, and each group it left
/// alone with why (`hafen_core::retention::Refusal`).
#[derive(Debug, Default)]
pub struct RetentionOutcome {
    pub kept: Vec<String>,
    pub forgotten: Vec<String>,
    pub skipped: Vec<(String, hafen_core::retention::Refusal)>,
}

impl RetentionOutcome {
    /// The English lines of the skipped groups, for logs and the API (`None` when none).
    pub fn skipped_text(&self) -> Option<String> {
        (!self.skipped.is_empty()).then(|| self.skipped.iter().map(|(g, r)| format!("{g}: {}", r.text)).collect::<Vec<_>>().join("; "))
    }
}

/// Applies `policy` to the snapshots of one group (`tag`, e.g. `stack:tryton`) or, with `None`,
/// to each stack's snapshots separately; forgets the rest and removes unused data (also when
/// nothing is forgotten with `prune_anyway`: a prune that was cut short finishes). A group whose
/// clock looks wrong stops every removal (the clock is wrong for all of them). Blocking.
pub fn apply_retention(
    repo: &Repo,
    policy: &hafen_core::retention::Policy,
    tag: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
    prune_anyway: bool,
) -> Result<RetentionOutcome, RepoError> {
    use hafen_core::retention::{decide, Snap};
    let snaps = repo.snapshots()?;
    let mut groups: BTreeMap<String, Vec<Snap>> = BTreeMap::new();
    for s in snaps {
        let Some(group) = s.tags.iter().find(|t| t.starts_with("stack:") || *t == "hafen-host").cloned() else { continue };
        if tag.is_some_and(|t| t != group) {
            continue;
        }
        groups.entry(group).or_default().push(Snap { id: s.id, time: chrono::DateTime::from_timestamp(s.unix_time, s.nanos).unwrap_or_default() });
    }
    let mut out = RetentionOutcome::default();
    let mut forget = Vec::new();
    for (group, snaps) in &groups {
        let d = decide(policy, snaps, now);
        if let Some(r) = d.refused {
            out.skipped.push((group.clone(), r));
        }
        out.kept.extend(d.keep.into_keys());
        forget.extend(d.forget);
    }
    if out.skipped.iter().any(|(_, r)| r.code == "clock_behind") {
        out.kept.append(&mut forget);
        return Ok(out);
    }
    if !forget.is_empty() {
        repo.forget(&forget)?;
    }
    if !forget.is_empty() || prune_anyway {
        repo.prune()?;
    }
    out.forgotten = forget;
    Ok(out)
}

/// A retention pass that has begun on a target; `done` removes the mark.
struct PruneMarker {
    path: PathBuf,
    /// An earlier pass was cut short.
    was_pending: bool,
}

impl PruneMarker {
    fn done(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The backup service on the daemon: backups (of a stack, of hafen's own state), exports,
/// prune, listing, checks, the in-place restore, retention and the schedule — backup and
/// restore in one place. It asks the stacks service to stop, plan and start a stack, and the
/// health service to wait for its probes.
pub struct Backups {
    shared: Arc<Shared>,
    alerts: Arc<Alerts>,
    health: Arc<Health>,
    stacks: Arc<Stacks>,
    ops: Arc<Ops>,
    /// When each interrupted backup's post-hooks were last tried (`end_interrupted_quiesces`).
    quiesce_tries: std::sync::Mutex<BTreeMap<String, Instant>>,
}

impl Backups {
    pub fn new(shared: Arc<Shared>, alerts: Arc<Alerts>, health: Arc<Health>, stacks: Arc<Stacks>, ops: Arc<Ops>) -> Backups {
        Backups { shared, alerts, health, stacks, ops, quiesce_tries: Default::default() }
    }

    /// Backs up one deployed stack; two backups of one stack never run at once.
    pub async fn backup_run(&self, req: &BackupRunRequest, actor: &str) -> Result<crate::backup::RunReport, AppError> {
        if req.host {
            return self.backup_host(req.target.as_deref(), actor).await;
        }
        let id = req.stack.as_str();
        let stack = self.shared.deployed_def(id)?;
        let Some(rec) = self.shared.store.stack(id)? else {
            return Err(crate::error::refused("backup_not_deployed", &[("id", id.to_string())]));
        };
        if self.shared.store.update_open_for(id)? {
            return Err(crate::error::refused("backup_during_update", &[("id", id.to_string())]));
        }
        let Some(_running) = self.ops.backups.mark(id) else {
            return Err(AppError::Refused(hafen_api::Message::new("run_busy").arg("_0", id)));
        };
        let started = Instant::now();
        let pins = self.shared.store.pins(id)?;
        let tlock = crate::backup::target(&self.shared.cfg, req.target.as_deref()).map(|t| self.ops.targets.of(&t.name)).ok();
        let _shared = match &tlock {
            Some(l) => Some(l.read().await),
            None => None,
        };
        let settings = resolve_settings(&stack, &rec.settings).unwrap_or(rec.settings.clone());
        let r = crate::backup::backup_stack(&*self.shared.engine, &self.shared.cfg, &stack, &settings, &pins, req.target.as_deref()).await;
        drop(_running);
        let target = req.target.clone().or_else(|| self.shared.cfg.backup_targets.first().map(|t| t.name.clone())).unwrap_or_default();
        self.backup_outcome(id, target, started, actor, r)
    }

    /// Records how a backup run ended (finished or failed) and hands its report on.
    fn backup_outcome(
        &self,
        stack: &str,
        target: String,
        started: Instant,
        actor: &str,
        r: Result<crate::backup::RunReport, crate::backup::BackupError>,
    ) -> Result<crate::backup::RunReport, AppError> {
        match r {
            Ok(report) => {
                match (&report.snapshot, &report.error) {
                    (Some(s), None) => {
                        self.shared.metrics.set_backup(stack, s.unix_time, s.bytes, started.elapsed().as_secs_f64());
                        self.alerts.emit(actor, Event::BackupFinished { stack: stack.into(), target, snapshot: s.id.clone(), seconds: started.elapsed().as_secs_f64() })
                    }
                    (_, e) => self.alerts.emit(actor, Event::BackupFailed { stack: stack.into(), target, error: e.clone().unwrap_or_default() }),
                }
                Ok(report)
            }
            Err(e) => {
                self.alerts.emit(actor, Event::BackupFailed { stack: stack.into(), target, error: e.to_string() });
                Err(AppError::from(e))
            }
        }
    }

    /// Backs up hafen's own state (for `hafen restore --all`).
    async fn backup_host(&self, target: Option<&str>, actor: &str) -> Result<crate::backup::RunReport, AppError> {
        const HOST: &str = crate::backup::HOST_TAG;
        let Some(running) = self.ops.backups.mark(HOST) else {
            return Err(AppError::Refused(hafen_api::Message::new("run_busy").arg("_0", HOST)));
        };
        let started = Instant::now();
        let tname = crate::backup::target(&self.shared.cfg, target).map(|t| t.name.clone()).unwrap_or_default();
        let tl = self.ops.targets.of(&tname);
        let r = {
            let _shared = tl.read().await;
            crate::backup::backup_host(&self.shared.cfg, &self.shared.store, target).await
        };
        drop(running);
        self.backup_outcome(HOST, tname, started, actor, r)
    }

    /// Writes one snapshot of a stack as a `tar | zstd | age` file for the recovery recipients.
    pub async fn backup_export(&self, req: &BackupExportRequest, actor: &str) -> Result<hafen_backup::export::ExportReport, AppError> {
        let out = std::path::PathBuf::from(&req.out);
        if !out.is_absolute() {
            return Err(crate::error::refused("export_relative", &[("path", req.out.clone())]));
        }
        let t = crate::backup::target(&self.shared.cfg, req.target.as_deref()).map_err(AppError::from)?;
        let ring = hafen_backup::keys::Keyring::open(&self.shared.cfg.keys_dir()).map_err(backup_text)?;
        let recipients: Vec<String> =
            ring.recipients().map_err(backup_text)?.into_iter().filter(|r| r.role == "recovery").map(|r| r.recipient).collect();
        let r = async {
            let repo = crate::backup::open_target(&self.shared.cfg, t).await.map_err(AppError::from)?;
            let (stack, snap) = (req.stack.clone(), req.snapshot.clone().unwrap_or_else(|| "latest".into()));
            tokio::task::spawn_blocking(move || hafen_backup::export::export(&repo, &stack, &snap, &recipients, &out, &|_, _| {}))
                .await
                .map_err(backup_text)?
                .map_err(backup_text)
        }
        .await;
        match &r {
            Ok(r) => self.alerts.emit(actor, Event::BackupExported { stack: req.stack.clone(), snapshot: r.snapshot.id.clone(), file: r.file.clone(), sha256: r.sha256.clone() }),
            Err(e) => self.alerts.emit(actor, Event::ExportFailed { stack: req.stack.clone(), file: req.out.clone(), error: e.to_string() }),
        };
        r
    }

    /// Applies the retention policy to every stack's snapshots in a target and removes unused
    /// data. Refused for append-only targets: prune those on the server, with its own credentials.
    pub async fn backup_prune(&self, req: &BackupPruneRequest, actor: &str) -> Result<BackupPruneResponse, AppError> {
        let t = crate::backup::target(&self.shared.cfg, req.target.as_deref()).map_err(AppError::from)?.clone();
        if t.append_only {
            return Err(AppError::Refused(hafen_api::Message::new("run_appendonly").arg("_0", &t.name)));
        }
        let lk = self.ops.targets.of(&t.name);
        let _g = lk.write().await;
        let repo = crate::backup::open_target(&self.shared.cfg, &t).await.map_err(AppError::from)?;
        if !self.alerts.look_at_clock() {
            let groups = self.retention_groups(&repo).await;
            for g in &groups {
                self.alerts.emit(actor, Event::RetentionSkipped { target: t.name.clone(), group: g.clone(), why: "clock_jumped".into() });
            }
            let why = hafen_core::i18n::render("en", &hafen_api::Message::new("event.retention_skipped_clock_jumped").arg("target", &t.name).arg("group", groups.join(", ")));
            return Ok(BackupPruneResponse { target: t.name.clone(), kept: Vec::new(), forgotten: Vec::new(), skipped: Some(why) });
        }
        let policy = self.shared.cfg.backup_retention.clone();
        let now = chrono::Utc::now();
        // Asked for by hand: unused data is removed even when nothing is forgotten.
        let marker = self.prune_marker(&t.name);
        let out = tokio::task::spawn_blocking(move || crate::backup::apply_retention(&repo, &policy, None, now, true))
            .await
            .map_err(backup_text)?
            .map_err(backup_text)?;
        marker.done();
        self.retention_told(&t.name, &out, actor);
        self.alerts.emit(actor, Event::BackupPruned { target: t.name.clone(), forgotten: out.forgotten.len() });
        let skipped = out.skipped_text();
        Ok(BackupPruneResponse { target: t.name.clone(), kept: out.kept, forgotten: out.forgotten, skipped })
    }

    /// Plans the repair of a target's repository, or with `apply` carries it out (not on an
    /// append-only target, which refuses removals). Holds the target's lock: no backup, prune or
    /// check runs on it meanwhile. An applied repair or one that fails is an event and an
    /// audit record.
    pub async fn backup_repair(&self, req: &BackupRepairRequest, actor: &str) -> Result<RepairReport, AppError> {
        let t = crate::backup::target(&self.shared.cfg, req.target.as_deref()).map_err(AppError::from)?.clone();
        if req.apply && t.append_only {
            return Err(AppError::Refused(hafen_api::Message::new("repair_appendonly").arg("target", &t.name)));
        }
        let lk = self.ops.targets.of(&t.name);
        let _g = lk.write().await;
        let apply = req.apply;
        let r = match crate::backup::open_target(&self.shared.cfg, &t).await {
            Ok(repo) => tokio::task::spawn_blocking(move || repo.repair(apply)).await.map_err(backup_text).and_then(|r| r.map_err(backup_text)),
            Err(e) => Err(AppError::from(e)),
        };
        match &r {
            Err(e) if apply => self.alerts.emit(actor, Event::BackupRepairFailed { target: t.name.clone(), error: e.to_string() }),
            Ok(rep) if rep.applied => self.alerts.emit(
                actor,
                Event::BackupRepaired {
                    target: t.name.clone(),
                    index_files: rep.damaged_index_files.len(),
                    packs: rep.damaged_packs.len(),
                    salvaged: rep.damaged_packs.iter().map(|p| p.salvaged).sum(),
                    lost: rep.damaged_packs.iter().map(|p| p.lost).sum(),
                    forgotten: rep.snapshots_lost.len(),
                    incomplete: rep.snapshots_incomplete.len(),
                },
            ),
            _ => {}
        }
        r
    }

    /// At start, before any worker: an in-place restore that a killed daemon left half-done
    /// (its journal, `RestoreJournal`) is rolled back — the stack's services stopped, every
    /// volume's previous content put back (the reconciler starts the stack again), an event and
    /// an audit record — or, if it had committed, its old data deleted. Leftover staging
    /// directories go too.
    pub async fn recover_interrupted_restores(&self) {
        let dir = self.shared.cfg.state_dir.join("restore");
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "journal") {
                let _ = std::fs::remove_file(&p);
                continue;
            }
            let journal: RestoreJournal = match read_json(&p) {
                Ok(j) => j,
                Err(e) => {
                    tracing::error!(file = %p.display(), error = %e, "an interrupted restore's journal cannot be read; left for the admin");
                    continue;
                }
            };
            if journal.committed {
                for (_, aside) in &journal.pairs {
                    let _ = std::fs::remove_dir_all(aside);
                }
                let _ = std::fs::remove_file(&p);
                continue;
            }
            let id = journal.stack.clone();
            let _g = self.ops.op_lock.lock().await;
            if let Err(e) = self.stacks.stop_services(&id, "hafen").await {
                tracing::warn!(stack = %id, error = %e, "could not stop the stack before putting its data back");
            }
            journal.roll_back(&chrono::Utc::now().format("%Y%m%d%H%M%S").to_string());
            let _ = std::fs::remove_file(&p);
            tracing::warn!(stack = %id, "an in-place restore was interrupted; the previous data was put back");
            self.alerts.emit("hafen", Event::RestoreFailed { stack: id, error: "interrupted: hafen stopped during the restore; the previous data was put back".into() });
        }
    }

    /// At start and on every schedule tick: a backup that a killed daemon left with its stack
    /// quiesced (`QuiesceMark`) gets its post-hooks run now. Done, the mark goes, and the backup
    /// is recorded as failed (no snapshot came of it): an event, an audit record and the
    /// `backup_failed` alert. When a post-hook cannot run yet (the stack is not running), the
    /// mark stays and the next tick tries again; the alert says so.
    pub async fn end_interrupted_quiesces(&self) {
        let dir = QuiesceMark::dir(&self.shared.cfg.state_dir);
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                let _ = std::fs::remove_file(&p);
                continue;
            }
            let mark: QuiesceMark = match read_json(&p) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(file = %p.display(), error = %e, "an interrupted backup's mark cannot be read; removed");
                    let _ = std::fs::remove_file(&p);
                    continue;
                }
            };
            let Ok(stack) = self.shared.deployed_def(&mark.stack) else {
                tracing::warn!(stack = %mark.stack, "an interrupted backup's stack has no definition any more; its post-hooks cannot run");
                let _ = std::fs::remove_file(&p);
                continue;
            };
            // Not beside a backup of the same stack that is running now (it has its own mark).
            let Some(_running) = self.ops.backups.mark(&mark.stack) else { continue };
            // A post-hook that failed is tried again once a minute, and told once.
            let tried_before = {
                let mut tries = self.quiesce_tries.lock().unwrap_or_else(|e| e.into_inner());
                if tries.get(&mark.stack).is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
                    continue;
                }
                tries.insert(mark.stack.clone(), Instant::now()).is_some()
            };
            let mut report = crate::backup::RunReport::default();
            let ok = run_hooks(&*self.shared.engine, &mark.stack, &stack.backup.post, "post-hook", &mut report).await;
            let lang = rust_i18n::locale();
            let m = if ok {
                let _ = std::fs::remove_file(&p);
                self.quiesce_tries.lock().unwrap_or_else(|e| e.into_inner()).remove(&mark.stack);
                tracing::warn!(stack = %mark.stack, since = %mark.since, "a backup was interrupted while the stack was quiesced; its post-hooks ran now");
                Message::new("run.interrupted_quiesce").arg("since", &mark.since)
            } else {
                let failed: Vec<String> =
                    report.steps.iter().filter(|s| !s.ok).map(|s| s.text.as_ref().map(|t| hafen_core::i18n::render(&lang, t)).unwrap_or_else(|| s.detail.clone())).collect();
                tracing::error!(stack = %mark.stack, error = %failed.join("; "), "a backup was interrupted while the stack was quiesced; its post-hooks failed and are tried again");
                if tried_before {
                    continue;
                }
                Message::new("run.interrupted_quiesce_failed").arg("since", &mark.since).arg("error", failed.join("; "))
            };
            let error = hafen_core::i18n::render(&lang, &m);
            self.alerts.emit("hafen", Event::BackupFailed { stack: mark.stack.clone(), target: mark.target.clone(), error });
        }
    }

    pub async fn backup_list(&self, target: Option<&str>) -> Result<Vec<hafen_backup::repo::SnapInfo>, AppError> {
        let t = crate::backup::target(&self.shared.cfg, target).map_err(AppError::from)?;
        let repo = crate::backup::open_target(&self.shared.cfg, t).await.map_err(AppError::from)?;
        tokio::task::spawn_blocking(move || repo.snapshots())
            .await
            .map_err(backup_text)?
            .map_err(backup_text)
    }

    pub async fn backup_check(&self, req: &BackupCheckRequest, actor: &str) -> Result<BackupCheckResponse, AppError> {
        let t = crate::backup::target(&self.shared.cfg, req.target.as_deref()).map_err(AppError::from)?;
        let repo = crate::backup::open_target(&self.shared.cfg, t).await.map_err(AppError::from)?;
        let read = req.read_data;
        let checked = tokio::task::spawn_blocking(move || repo.check_findings(read, None)).await.map_err(backup_text).and_then(|r| r.map_err(backup_text));
        let findings = match checked {
            Ok(p) => p,
            Err(e) => {
                // A check that could not run is a failed check too: an event, an audit record.
                self.alerts.emit(actor, Event::BackupCheckFailed { target: t.name.clone(), subset: None, problems: vec![e.to_string()], findings: vec![] });
                return Err(e);
            }
        };
        let problems: Vec<String> = findings.iter().map(|f| hafen_core::i18n::render("en", f)).collect();
        if problems.is_empty() {
            self.alerts.emit(actor, Event::BackupChecked { target: t.name.clone(), subset: None });
        } else {
            self.alerts.emit(actor, Event::BackupCheckFailed { target: t.name.clone(), subset: None, problems: problems.clone(), findings: findings.clone() });
        }
        Ok(BackupCheckResponse { target: t.name.clone(), read_data: read, problems, findings })
    }

    /// Restores a stack from a snapshot: restore into staging and verify; stop the stack; swap its
    /// volumes (the old data is kept aside); start the database services and load the dumps;
    /// start everything and wait for the probes. On any failure after the swap, the previous
    /// volumes are put back and the stack is started as it was.
    pub async fn restore_stack(&self, req: &RestoreRequest, actor: &str) -> Result<crate::backup::RunReport, AppError> {
        self.restore_stack_from(req, actor, None).await
    }

    /// `restore_stack` from `source` instead of a configured target (the whole-box recovery
    /// opens the repository from the recovery kit).
    pub async fn restore_stack_from(&self, req: &RestoreRequest, actor: &str, source: Option<hafen_backup::repo::Repo>) -> Result<crate::backup::RunReport, AppError> {
        let _g = self.ops.op_lock.lock().await;
        self.restore_locked(req, actor, source, &[]).await
    }

    /// The restore itself; the caller holds `op_lock`. `migrations` (service, command) run
    /// once each, in the new images, after the dumps are loaded and before the stack starts
    /// (an update that moves a database to a new major version).
    pub(crate) async fn restore_locked(
        &self,
        req: &RestoreRequest,
        actor: &str,
        source: Option<hafen_backup::repo::Repo>,
        migrations: &[crate::catalogue::model::MigrationDef],
    ) -> Result<crate::backup::RunReport, AppError> {
        let r = self.restore_steps(req, actor, source, migrations).await;
        // A restore that stops with an error (not one that reports its failure in its steps)
        // is still an event and an audit record.
        if let Err(e) = &r {
            self.alerts.emit(actor, Event::RestoreFailed { stack: req.stack.clone(), error: e.to_string() });
        }
        r
    }

    async fn restore_steps(
        &self,
        req: &RestoreRequest,
        actor: &str,
        source: Option<hafen_backup::repo::Repo>,
        migrations: &[crate::catalogue::model::MigrationDef],
    ) -> Result<crate::backup::RunReport, AppError> {
        use crate::backup::{open_target, target};
        let id = req.stack.clone();
        // A deployed stack is restored by the definition it runs by; one that is not deployed
        // (a new box) by its file.
        let stack = self.shared.deployed_def(&id)?;
        let berr = backup_text;
        let (repo, target_name) = match source {
            Some(r) => {
                let name = r.location().to_string();
                (r, name)
            }
            None => {
                let t = target(&self.shared.cfg, req.target.as_deref()).map_err(|e| berr(e.to_string()))?;
                (open_target(&self.shared.cfg, t).await.map_err(|e| berr(e.to_string()))?, t.name.clone())
            }
        };
        let at = match &req.at {
            Some(s) => Some(hafen_backup::repo::parse_at(s).map_err(crate::error::refused_text)?),
            None => None,
        };
        let mut report = crate::backup::RunReport { stack: id.clone(), target: target_name, ..Default::default() };
        let step = |report: &mut crate::backup::RunReport, name: &str, started: Instant, r: &Result<Message, String>| {
            let (ok, m) = match r {
                Ok(m) => (true, m.clone()),
                Err(e) => (false, quoted(e)),
            };
            report.steps.push(said(name, ok, m, started.elapsed().as_secs_f64()));
        };
        let ts = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
        let staging = self.shared.cfg.state_dir.join("restore").join(format!("{id}-{ts}"));
        // Whatever way this ends, the staging directory goes with it.
        let _staging = RemoveOnDrop(staging.clone());
        // 1. Into staging, then verify what the definition says must be there.
        let t0 = Instant::now();
        let (snap_id, tags, st2) = (req.snapshot.clone().unwrap_or_else(|| "latest".into()), vec![format!("stack:{id}")], staging.clone());
        let snap = tokio::task::spawn_blocking(move || {
            let chosen = match at {
                Some(at) => hafen_backup::repo::pick(&repo.snapshots()?, &tags, &snap_id, Some(at))
                    .ok_or_else(|| hafen_backup::repo::RepoError::NoSnapshot(format!("at or before the given time ({})", tags.join(", "))))?
                    .id,
                None => snap_id,
            };
            repo.restore(&chosen, &tags, "", &st2)
        })
        .await
        .map_err(|e| berr(e.to_string()))?
        .map_err(|e| berr(e.to_string()))?;
        report.snapshot = Some(snap.clone());
        let mut missing = Vec::new();
        for d in &stack.backup.dumps {
            if std::fs::metadata(staging.join("dumps").join(&d.file)).map(|m| m.len() == 0).unwrap_or(true) {
                missing.push(format!("dumps/{}", d.file));
            }
        }
        for (v, def) in &stack.volumes {
            if def.backup && !staging.join("volumes").join(v).is_dir() {
                missing.push(format!("volumes/{v}"));
            }
        }
        if !missing.is_empty() {
            let lacks = Message::new("run.snapshot_lacks").arg("missing", missing.join(", "));
            report.steps.push(said("staging", false, lacks.clone(), t0.elapsed().as_secs_f64()));
            let _ = std::fs::remove_dir_all(&staging);
            report.fail(Message::new("run_snapshot_lacks").arg("missing", missing.join(", ")));
            return Ok(report);
        }
        step(&mut report, "staging", t0, &Ok(Message::new("run.staged").arg("id", &snap.id[..8])));
        // Settings and secrets: from the snapshot when this box does not know the stack.
        let meta: serde_json::Value = std::fs::read(staging.join("hafen/meta/run.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        if self.shared.store.stack(&id)?.is_none() {
            let settings: BTreeMap<String, String> = serde_json::from_value(meta["settings"].clone()).unwrap_or_default();
            self.shared.store.put_stack(&id, true, &settings, &stack.file_hash, Some(&stack.source))?;
        }
        let secrets_src = staging.join("hafen/secrets");
        if secrets_src.is_dir() {
            let dst = self.shared.cfg.secrets_dir().join(&id);
            std::fs::create_dir_all(&dst).map_err(|e| berr(e.to_string()))?;
            for e in std::fs::read_dir(&secrets_src).map_err(|e| berr(e.to_string()))?.flatten() {
                std::fs::copy(e.path(), dst.join(e.file_name())).map_err(|e| berr(e.to_string()))?;
            }
        }
        let settings = self.stacks.settings_for(&stack, &BTreeMap::new())?;

        // 2. Stop the stack (services only; volumes and network stay).
        let t0 = Instant::now();
        let r = self.stacks.stop_services(&id, actor).await;
        step(&mut report, "stop", t0, &r.as_ref().map(|_| Message::new("run.stopped")).map_err(|e| e.to_string()));
        r?;

        // 3. Swap the volumes; the previous data stays aside until the restore succeeded.
        let t0 = Instant::now();
        let mut journal = RestoreJournal { stack: id.clone(), ..Default::default() };
        let state_dir = self.shared.cfg.state_dir.clone();
        let swap = async {
            for (v, def) in &stack.volumes {
                self.shared.engine.create_volume(&id, v).await.map_err(|e| e.to_string())?;
                let path = self.shared.engine.volume_path(&id, v).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("volume {v} has no path"))?;
                let aside = path.with_file_name(format!("_data.pre-restore-{ts}"));
                // Recorded before it happens: a kill after the move still finds the old data.
                journal.pairs.push((path.clone(), aside.clone()));
                journal.save(&state_dir)?;
                std::fs::rename(&path, &aside).map_err(|e| format!("moving {} aside: {e}", path.display()))?;
                if def.backup {
                    let src = staging.join("volumes").join(v);
                    if std::fs::rename(&src, &path).is_err() {
                        let st = std::process::Command::new("cp").arg("-a").arg(&src).arg(&path).status().map_err(|e| e.to_string())?;
                        if !st.success() {
                            return Err(format!("copying {} failed", src.display()));
                        }
                    }
                } else {
                    // Restored from a dump: start from an empty directory with the old owner and mode.
                    use std::os::unix::fs::{MetadataExt, PermissionsExt};
                    let m = std::fs::metadata(&aside).map_err(|e| e.to_string())?;
                    std::fs::create_dir(&path).map_err(|e| e.to_string())?;
                    std::os::unix::fs::chown(&path, Some(m.uid()), Some(m.gid())).map_err(|e| e.to_string())?;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m.mode() & 0o7777)).map_err(|e| e.to_string())?;
                }
            }
            Ok::<Message, String>(Message::new("run.swapped").arg("count", stack.volumes.len()))
        }
        .await;
        step(&mut report, "swap", t0, &swap);

        // 4. Databases first, then the dumps, then everything, then the probes.
        let result: Result<(), Message> = async {
            swap.map_err(quoted)?;
            let dump_services: Vec<String> = stack.backup.dumps.iter().filter(|d| d.restore.is_some()).map(|d| d.service.clone()).collect();
            let (plan, _) = self.stacks.desired(&stack, &settings, true, false).await.map_err(quoted)?;
            let mut first = plan.clone();
            first.actions.retain(|a| match a {
                Action::CreateService { spec } | Action::RecreateService { spec, .. } => dump_services.contains(&spec.service),
                Action::StartService { service, .. } => dump_services.contains(service),
                _ => true,
            });
            if !dump_services.is_empty() {
                let (_, r) = self.stacks.apply(&first, actor, false).await;
                r.map_err(quoted)?;
                // (An empty list would mean every service to `wait_healthy`.)
                self.health.wait_healthy(&stack, &dump_services, std::time::Duration::from_secs(300)).await.map_err(quoted)?;
            }
            for d in stack.backup.dumps.iter().filter(|d| d.restore.is_some()) {
                let t0 = Instant::now();
                let file = staging.join("dumps").join(&d.file);
                let (tx, rx) = tokio::sync::mpsc::channel(8);
                let reader = tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut f = tokio::fs::File::open(&file).await?;
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = f.read(&mut buf).await?;
                        if n == 0 || tx.send(bytes::Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            return Ok::<(), std::io::Error>(());
                        }
                    }
                });
                let cmd = d.restore.clone().unwrap_or_default();
                let out = self.shared.engine.exec_stdin(&hafen_engine::container_name(&id, &d.service), &cmd, rx, std::time::Duration::from_secs(6 * 3600)).await;
                let _ = reader.await;
                let r = match out {
                    Ok(o) if o.exit_code == 0 => Ok(Message::new("run.loaded").arg("cmd", cmd.join(" ")).arg("file", &d.file)),
                    Ok(o) => Err(Message::new("run.command_failed").arg("cmd", cmd.join(" ")).arg("code", o.exit_code).arg("stderr", o.stderr.trim())),
                    Err(e) => Err(quoted(e)),
                };
                let (ok, m) = match &r {
                    Ok(m) => (true, m.clone()),
                    Err(m) => (false, m.clone()),
                };
                report.steps.push(said(format!("load {}", d.file), ok, m, t0.elapsed().as_secs_f64()));
                r?;
            }
            for m in migrations {
                let t0 = Instant::now();
                let r = self.stacks.run_migration(&stack, &settings, m).await;
                report.steps.push(quoted_step(format!("migrate {}", m.service), &r, t0.elapsed().as_secs_f64()));
                r.map_err(quoted)?;
            }
            let (plan, _) = self.stacks.desired(&stack, &settings, true, false).await.map_err(quoted)?;
            let (_, r) = self.stacks.apply(&plan, actor, false).await;
            r.map_err(quoted)?;
            self.health.wait_healthy(&stack, &[], stack.upgrade.health_deadline).await.map_err(quoted)
        }
        .await;
        let t0 = Instant::now();
        let journal_file = RestoreJournal::path(&self.shared.cfg.state_dir, &id);
        match &result {
            Ok(()) => {
                // Committed first: a kill while the old data is deleted must not put it back.
                journal.committed = true;
                if let Err(e) = journal.save(&self.shared.cfg.state_dir) {
                    tracing::error!(stack = %id, error = %e, "could not mark the restore committed");
                }
                for (_, aside) in &journal.pairs {
                    let _ = std::fs::remove_dir_all(aside);
                }
                let _ = std::fs::remove_file(&journal_file);
                step(&mut report, "healthy", t0, &Ok(Message::new("run.healthy")));
            }
            Err(e) => {
                // Put the previous state back and start it as it was.
                let actual = Actual::read(&*self.shared.engine, &id).await?;
                let mut stop = reconcile::plan_remove(&id, &actual, false);
                stop.actions.retain(|a| matches!(a, Action::RemoveService { .. }));
                let _ = self.stacks.apply(&stop, actor, false).await;
                journal.roll_back(&ts);
                let _ = std::fs::remove_file(&journal_file);
                if let Ok((plan, _)) = self.stacks.desired(&stack, &settings, true, false).await {
                    let _ = self.stacks.apply(&plan, actor, false).await;
                }
                step(&mut report, "rollback", t0, &Ok(Message::new("run.rolled_back")));
                report.fail(e.clone());
            }
        }
        let _ = std::fs::remove_dir_all(&staging);
        self.alerts.emit(actor, match &report.error {
            None => Event::RestoreFinished { stack: id.clone(), snapshot: snap.id.clone() },
            Some(e) => Event::RestoreFailed { stack: id.clone(), error: e.clone() },
        });
        Ok(report)
    }

    /// Applies the retention policy to one stack's snapshots in a target; returns how many were
    /// forgotten. Nothing is forgotten when the clock looks wrong; nothing at all on an
    /// append-only target (its server prunes).
    pub async fn apply_retention(&self, stack: &str, target: &crate::config::BackupTarget) -> Result<usize, AppError> {
        if target.append_only {
            return Ok(0);
        }
        let lk = self.ops.targets.of(&target.name);
        let _g = lk.write().await;
        let repo = crate::backup::open_target(&self.shared.cfg, target).await.map_err(AppError::from)?;
        let policy = self.shared.cfg.backup_retention.clone();
        let tag = if stack == crate::backup::HOST_TAG { stack.to_string() } else { format!("stack:{stack}") };
        if !self.alerts.look_at_clock() {
            self.alerts.emit("scheduler", Event::RetentionSkipped { target: target.name.clone(), group: tag, why: "clock_jumped".into() });
            return Ok(0);
        }
        let now = chrono::Utc::now();
        let marker = self.prune_marker(&target.name);
        let pending = marker.was_pending;
        let out = tokio::task::spawn_blocking(move || crate::backup::apply_retention(&repo, &policy, Some(&tag), now, pending))
            .await
            .map_err(backup_text)?
            .map_err(backup_text)?;
        marker.done();
        self.retention_told(&target.name, &out, "scheduler");
        Ok(out.forgotten.len())
    }

    /// Marks a retention pass on `target` as begun (`<state>/prune-pending/<target>`): a pass
    /// that a kill or an error cut short leaves the mark, and the next pass prunes even when it
    /// forgets nothing, so unused data never stays for good.
    fn prune_marker(&self, target: &str) -> PruneMarker {
        let path = self.shared.cfg.state_dir.join("prune-pending").join(target);
        let was_pending = path.exists();
        if let Err(e) = std::fs::create_dir_all(path.parent().unwrap_or(&path)).and_then(|_| std::fs::write(&path, chrono::Utc::now().to_rfc3339())) {
            tracing::warn!(path = %path.display(), "could not mark the prune as begun: {e}");
        }
        PruneMarker { path, was_pending }
    }

    /// Each group retention left alone is an event (a clock behind the snapshots also an
    /// alert); a pass with a plausible clock closes that alert.
    fn retention_told(&self, target: &str, out: &crate::backup::RetentionOutcome, actor: &str) {
        for (group, r) in &out.skipped {
            tracing::warn!(target, group = %group, "retention skipped: {}", r.text);
            self.alerts.emit(actor, Event::RetentionSkipped { target: target.into(), group: group.clone(), why: r.code.into() });
        }
        if !out.skipped.iter().any(|(_, r)| r.code == "clock_behind") {
            self.alerts.resolve(&format!("clock_behind:{target}"));
        }
    }

    /// The snapshot groups of a repository (`stack:<id>`, `hafen-host`), for events; empty when
    /// it cannot be listed.
    async fn retention_groups(&self, repo: &Repo) -> Vec<String> {
        let repo = repo.clone();
        let snaps = tokio::task::spawn_blocking(move || repo.snapshots()).await.ok().and_then(Result::ok).unwrap_or_default();
        let set: std::collections::BTreeSet<String> = snaps.into_iter().filter_map(|s| s.tags.into_iter().find(|t| t.starts_with("stack:") || t == "hafen-host")).collect();
        set.into_iter().collect()
    }

    /// The rotating read check: when due, read one part of the packs of every target
    /// (`backup_check_parts`), so every pack is read regularly; problems are an alert event.
    pub async fn backup_check_tick(&self) {
        const JOB: &str = "read-check";
        if self.shared.cfg.backup_targets.is_empty() {
            return;
        }
        let Some(now) = self.shared.job_due(JOB, &self.shared.cfg.backup_check_schedule) else { return };
        let subset = hafen_core::schedule::check_subset(now, self.shared.cfg.backup_check_parts);
        let mut errors = Vec::new();
        for t in self.shared.cfg.backup_targets.clone() {
            let lk = self.ops.targets.of(&t.name);
            let _shared = lk.read().await;
            let repo = match crate::backup::open_target(&self.shared.cfg, &t).await {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("{}: {e}", t.name));
                    self.alerts.emit("scheduler", Event::BackupCheckFailed { target: t.name.clone(), subset: Some(subset.clone()), problems: vec![e.to_string()], findings: vec![] });
                    continue;
                }
            };
            let sub = subset.clone();
            let r = tokio::task::spawn_blocking(move || repo.check_findings(true, Some(&sub))).await;
            match r {
                Ok(Ok(p)) if p.is_empty() => self.alerts.emit("scheduler", Event::BackupChecked { target: t.name.clone(), subset: Some(subset.clone()) }),
                Ok(Ok(findings)) => {
                    let problems: Vec<String> = findings.iter().map(|f| hafen_core::i18n::render("en", f)).collect();
                    errors.push(format!("{}: {}", t.name, problems.join("; ")));
                    tracing::error!(target = %t.name, "the read check found problems: {}", problems.join("; "));
                    self.alerts.emit("scheduler", Event::BackupCheckFailed { target: t.name.clone(), subset: Some(subset.clone()), problems, findings });
                }
                Ok(Err(e)) => {
                    errors.push(format!("{}: {e}", t.name));
                    self.alerts.emit("scheduler", Event::BackupCheckFailed { target: t.name.clone(), subset: Some(subset.clone()), problems: vec![e.to_string()], findings: vec![] });
                }
                Err(e) => errors.push(format!("{}: {e}", t.name)),
            }
        }
        let err = (!errors.is_empty()).then(|| errors.join("; "));
        if let Err(e) = self.shared.store.set_job(JOB, &now.to_rfc3339(), err.as_deref()) {
            tracing::error!(error = %e, "could not record the read check");
        }
    }

    /// The scheduler's tick: when the nightly run is due (or was missed while the box was off),
    /// back up every deployed stack to the first target, then apply retention.
    pub async fn backup_schedule_tick(&self) {
        const JOB: &str = "nightly-backup";
        self.end_interrupted_quiesces().await;
        let Some(target) = self.shared.cfg.backup_targets.first().cloned() else { return };
        let Some(now) = self.shared.job_due(JOB, &self.shared.cfg.backup_schedule) else { return };
        let mut errors = Vec::new();
        let stacks: Vec<String> = self.shared.store.stacks().map(|v| v.into_iter().filter(|s| s.enabled).map(|s| s.id).collect()).unwrap_or_default();
        for id in stacks {
            let req = BackupRunRequest { stack: id.clone(), target: Some(target.name.clone()), host: false };
            match self.backup_run(&req, "scheduler").await {
                Ok(r) if r.error.is_none() => match self.apply_retention(&id, &target).await {
                    Ok(n) if n > 0 => tracing::info!(stack = %id, forgotten = n, "retention applied"),
                    Ok(_) => {}
                    Err(e) => errors.push(format!("{id}: retention: {e}")),
                },
                Ok(r) => errors.push(format!("{id}: {}", r.error.unwrap_or_default())),
                Err(e) => errors.push(format!("{id}: {e}")),
            }
        }
        match self.backup_host(Some(&target.name), "scheduler").await {
            Ok(r) if r.error.is_none() => {
                if let Err(e) = self.apply_retention(crate::backup::HOST_TAG, &target).await {
                    errors.push(format!("hafen state: retention: {e}"));
                }
            }
            Ok(r) => errors.push(format!("hafen state: {}", r.error.unwrap_or_default())),
            Err(e) => errors.push(format!("hafen state: {e}")),
        }
        let err = (!errors.is_empty()).then(|| errors.join("; "));
        if let Err(e) = self.shared.store.set_job(JOB, &now.to_rfc3339(), err.as_deref()) {
            tracing::error!(error = %e, "could not record the backup run");
        }
        if err.is_none() {
            // The dead man's switch: silence at the heartbeat URL means trouble.
            if let Err(e) = crate::notify::enqueue_heartbeat(&self.shared.store, &self.shared.cfg.notify) {
                tracing::error!(error = %e, "could not queue the heartbeat");
            }
            self.alerts.notify_wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The journal's rollback at every point a kill can come: before a volume was moved (its
    /// data is untouched), after it was moved and before the restored data arrived, and after.
    #[test]
    fn a_restore_journal_puts_back_whatever_was_moved() {
        let d = tempfile::tempdir().unwrap();
        let mut j = RestoreJournal { stack: "s".into(), ..Default::default() };
        for (name, moved, restored) in [("untouched", false, false), ("moved", true, false), ("swapped", true, true)] {
            let vol = d.path().join(name).join("_data");
            std::fs::create_dir_all(&vol).unwrap();
            std::fs::write(vol.join("akte.txt"), "vorher").unwrap();
            let aside = vol.with_file_name("_data.pre-restore-1");
            j.pairs.push((vol.clone(), aside.clone()));
            if moved {
                std::fs::rename(&vol, &aside).unwrap();
            }
            if restored {
                std::fs::create_dir(&vol).unwrap();
                std::fs::write(vol.join("akte.txt"), "aus der Sicherung").unwrap();
            }
        }
        std::fs::create_dir_all(d.path().join("restore")).unwrap();
        j.save(d.path()).unwrap();
        let read: RestoreJournal = serde_json::from_slice(&std::fs::read(RestoreJournal::path(d.path(), "s")).unwrap()).unwrap();
        assert_eq!(read.pairs, j.pairs);
        read.roll_back("2");
        for name in ["untouched", "moved", "swapped"] {
            let dir = d.path().join(name);
            assert_eq!(std::fs::read_to_string(dir.join("_data/akte.txt")).unwrap(), "vorher", "{name}");
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "{name}: left beside the volume");
        }
    }

    #[test]
    fn a_backups_own_errors_travel_as_their_codes() {
        // Seen as shipped: no target configured was English in a German CLI.
        let b = AppError::from(BackupError::NoTarget);
        assert_eq!(b.message().code, "run_notarget");
        let de = hafen_core::i18n::render_error("de", &b.message()).unwrap();
        assert!(de != hafen_core::i18n::render_error("en", &b.message()).unwrap() && !de.contains("no backup target"), "{de}");
    }

    #[tokio::test]
    async fn absent_backup_disk_writes_nothing_underneath() {
        let d = tempfile::tempdir().unwrap();
        let mount = d.path().join("usb");
        std::fs::create_dir_all(&mount).unwrap();
        let cfg = Config {
            state_dir: d.path().join("state"),
            backup_targets: vec![BackupTarget { name: "usb".into(), kind: TargetKind::Local { path: mount.clone(), require_mount: true }, append_only: false }],
            ..Config::default()
        };
        let ring = Keyring::open(&cfg.keys_dir()).unwrap();
        ring.add_recipient("kit", &hafen_backup::keys::generate_identity().recipient).unwrap();
        let t = target(&cfg, Some("usb")).unwrap();
        let err = open_target(&cfg, t).await.err().expect("must refuse");
        assert!(matches!(err, BackupError::NotMounted { .. }), "{err}");
        assert!(err.to_string().contains("nothing was written"));
        assert_eq!(std::fs::read_dir(&mount).unwrap().count(), 0);
        assert!(matches!(target(&cfg, Some("nas")), Err(BackupError::UnknownTarget(..))));
        assert!(matches!(target(&Config::default(), None), Err(BackupError::NoTarget)));
    }
}
