//! One backup run of one stack, app-consistent: pre-hooks (e.g. maintenance mode) → one snapshot
//! holding the streamed dumps, the stack's backed-up volumes, its definition, settings, image
//! pins and secrets → post-hooks, which always run → a structural check. A dump that fails (even
//! after printing data) leaves no snapshot. The repository key comes from the keyring; the
//! wrapped key is also stored in the target as `hafen-repo-key.age` for the recovery kit's path.

use hafen_backup::keys::{KeyError, Keyring};
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

pub use hafen_api::RunReport;

/// One lock per backup target: backups share it, prune takes it alone (rustic_core takes no
/// repository locks, and a prune must never remove packs a running backup still writes).
#[derive(Debug, Default)]
pub struct TargetLocks {
    locks: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::RwLock<()>>>>,
}

impl TargetLocks {
    /// The lock of the target `name` (the same one for every caller).
    pub fn of(&self, name: &str) -> Arc<tokio::sync::RwLock<()>> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).entry(name.to_string()).or_default().clone()
    }
}

pub use hafen_api::RunStep as Step;

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
    let cache = cfg.state_dir.join("cache");
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
            Ok(o) if o.exit_code == 0 => (true, format!("`{}` in {}", h.command.join(" "), h.service)),
            Ok(o) => (false, format!("`{}` in {} exited with {}: {}", h.command.join(" "), h.service, o.exit_code, o.stderr.trim())),
            Err(e) => (false, e.to_string()),
        };
        all_ok &= ok;
        report.steps.push(Step { step: what.into(), ok, detail, seconds: t.elapsed().as_secs_f64() });
    }
    all_ok
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
    report.steps.push(Step { step: "open".into(), ok: true, detail: t.location(), seconds: started.elapsed().as_secs_f64() });

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
    write("stack.yaml", &std::fs::read(&stack.file).map_err(|e| BackupError::Io(format!("{}: {e}", stack.file)))?)?;

    // The quiesce bound: when `max_quiesce` passes, the capture is stopped (no snapshot kept)
    // and the post-hooks run at once, so the app never stays in maintenance mode longer.
    let quiesce = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut post_done = false;
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
                None => report.steps.push(Step { step: "volume".into(), ok: false, detail: format!("volume {name} does not exist yet"), seconds: 0.0 }),
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
                        Ok(o) => Err(format!("`{}` exited with {}: {}", cmd.join(" "), o.exit_code, o.stderr.trim())),
                        Err(e) => Err(e.to_string()),
                    },
                    _ = stop.cancelled() => Err(format!("`{}` was stopped at the quiesce limit", cmd.join(" "))),
                };
                let _ = dtx.send(verdict.clone());
                Step { step: format!("dump {file}"), ok: verdict.is_ok(), detail: verdict.err().unwrap_or_else(|| format!("`{}`", cmd.join(" "))), seconds: t.elapsed().as_secs_f64() }
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
                report.steps.push(Step {
                    step: "quiesce limit".into(),
                    ok: false,
                    detail: format!("the capture took longer than max_quiesce ({}s); it was stopped and the post-hooks ran", limit.as_secs()),
                    seconds: quiesce.elapsed().as_secs_f64(),
                });
                run_hooks(engine, &stack.id, &stack.backup.post, "post-hook", &mut report).await;
                report.quiesced_seconds = quiesce.elapsed().as_secs_f64();
                post_done = true;
                work.await
            }
        };
        report.steps.extend(steps);
        if let Ok(Ok((snap, _))) = &archived {
            report.steps.push(Step { step: "snapshot".into(), ok: true, detail: format!("{} files, {} bytes read, {} bytes added", snap.files, snap.bytes, snap.added), seconds: t_archive.elapsed().as_secs_f64() });
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
    let _ = std::fs::remove_dir_all(&meta);
    match result {
        Ok((snap, repo)) => {
            let id = snap.id.clone();
            let t_check = Instant::now();
            let problems = tokio::task::spawn_blocking(move || repo.check_snapshot(&id)).await.map_err(|e| BackupError::Io(e.to_string()))??;
            report.steps.push(Step { step: "check".into(), ok: problems.is_empty(), detail: "structure: index, packs, the new snapshot's trees".into(), seconds: t_check.elapsed().as_secs_f64() });
            report.check_problems = problems;
            report.snapshot = Some(snap);
            if !report.check_problems.is_empty() {
                report.error = Some(format!("the structural check after the backup found problems: {}", report.check_problems.join("; ")));
            }
        }
        Err(e) => report.error = Some(e.to_string()),
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
    report.steps.push(Step { step: "open".into(), ok: true, detail: t.location(), seconds: started.elapsed().as_secs_f64() });
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
                report.error = Some(format!("the structural check after the backup found problems: {}", report.check_problems.join("; ")));
            }
            report.snapshot = Some(snap);
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    report.steps.push(Step { step: "host state".into(), ok: report.error.is_none(), detail: "config, state store, keys, secrets, stack definitions".into(), seconds: started.elapsed().as_secs_f64() });
    Ok(report)
}

/// Applies `policy` to the snapshots of one group (`tag`, e.g. `stack:tryton`) or, with `None`,
/// to each stack's snapshots separately; forgets the rest and removes unused data. Returns (kept,
/// forgotten, why nothing was forgotten). Blocking.
pub fn apply_retention(
    repo: &Repo,
    policy: &hafen_core::retention::Policy,
    tag: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Vec<String>, Vec<String>, Option<String>), RepoError> {
    use hafen_core::retention::{decide, Snap};
    let snaps = repo.snapshots()?;
    let mut groups: BTreeMap<String, Vec<Snap>> = BTreeMap::new();
    for s in snaps {
        let Some(group) = s.tags.iter().find(|t| t.starts_with("stack:") || *t == "hafen-host").cloned() else { continue };
        if tag.is_some_and(|t| t != group) {
            continue;
        }
        groups.entry(group).or_default().push(Snap { id: s.id, time: chrono::DateTime::from_timestamp(s.unix_time, 0).unwrap_or_default() });
    }
    let (mut kept, mut forget, mut skipped) = (Vec::new(), Vec::new(), None);
    for snaps in groups.values() {
        let d = decide(policy, snaps, now);
        if d.refused.is_some() {
            skipped = d.refused.clone();
        }
        kept.extend(d.keep.into_keys());
        forget.extend(d.forget);
    }
    if skipped.is_some() {
        // One group with a wrong clock means the clock is wrong for all of them.
        kept.append(&mut forget);
        return Ok((kept, forget, skipped));
    }
    if !forget.is_empty() {
        repo.forget(&forget)?;
        repo.prune()?;
    }
    Ok((kept, forget, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

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
