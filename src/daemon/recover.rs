//! Whole-box recovery (`hafen restore --all`): on a bare host with Docker and hafen installed and
//! only the recovery kit at hand, bring back hafen's own state from the newest (or chosen) host
//! snapshot — configuration, state store, keys, secrets, stack definitions — then deploy every
//! stack it lists and restore each one's data through the same path as an in-place restore
//! (staging, verify, swap, load dumps, health probes).
//!
//! Refuses a host that already has hafen state: nothing is overwritten.

use hafen_backup::repo::{pick, Repo};
use crate::backup::{HostRecord, HOST_TAG};
use crate::config::Config;
use rust_i18n::t;
use std::path::{Path, PathBuf};

pub use hafen_api::RecoverReport;

pub use hafen_api::StackOutcome;

/// Copies a tree with modes, owners and symlinks; `dst` must not exist.
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(src)?;
    if m.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)?;
    } else if m.is_dir() {
        std::fs::create_dir(dst)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        std::fs::set_permissions(dst, m.permissions())?;
    } else {
        std::fs::copy(src, dst)?;
        std::fs::set_permissions(dst, m.permissions())?;
    }
    std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid()))
}

fn empty_or_missing(p: &Path) -> bool {
    std::fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(true)
}

/// Recovers the box from `repo`. `config_override` puts the configuration elsewhere than where
/// the old box had it; `at` picks the host snapshot (and each stack's) by time.
pub async fn restore_all(repo: Repo, config_override: Option<&Path>, at: Option<i64>, say: &(dyn Fn(String) + Sync)) -> anyhow::Result<RecoverReport> {
    let r2 = repo.clone();
    let snaps = tokio::task::spawn_blocking(move || r2.snapshots()).await??;
    let host_tags = vec![HOST_TAG.to_string()];
    let Some(host) = pick(&snaps, &host_tags, "latest", at) else {
        anyhow::bail!("{}", t!("recover_no_host", location = repo.location()));
    };
    say(t!("recover_host", id = &host.id[..8], time = &host.time).to_string());
    let staging = std::env::temp_dir().join(format!("hafen-recover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let (r2, hid, st2) = (repo.clone(), host.id.clone(), staging.clone());
    tokio::task::spawn_blocking(move || r2.restore(&hid, &[HOST_TAG.to_string()], "/hafen", &st2)).await??;
    let result = install_host_state(&staging, config_override).await;
    let _ = std::fs::remove_dir_all(&staging);
    let (cfg, record, config_written) = result?;

    let store = hafen_store::Store::open(&cfg.store_path())?;
    let engine = hafen_engine::docker::DockerEngine::connect(&cfg.docker_socket.display().to_string(), &cfg.run_dir().display().to_string()).await?;
    let stacks: Vec<String> = store.stacks()?.into_iter().filter(|s| s.enabled).map(|s| s.id).collect();
    let app = crate::app::App::new(cfg.clone(), store, std::sync::Arc::new(engine));
    let mut outcomes = Vec::new();
    for id in stacks {
        say(t!("recover_stack", stack = &id).to_string());
        let deployed = app.stacks.deploy(&id, &hafen_api::DeployRequest::default(), "recovery").await;
        if let Err(e) = deployed {
            say(t!("recover_stack_failed", stack = &id, error = e.to_string()).to_string());
            outcomes.push(StackOutcome { stack: id, snapshot: None, error: Some(e.to_string()) });
            continue;
        }
        let req = hafen_api::RestoreRequest { stack: id.clone(), snapshot: None, at: at.map(|t| chrono::DateTime::from_timestamp(t, 0).unwrap_or_default().to_rfc3339()), target: None };
        let o = match app.backups.restore_stack_from(&req, "recovery", Some(repo.clone())).await {
            Ok(r) => StackOutcome { stack: id.clone(), snapshot: r.snapshot.map(|s| s.id), error: r.error },
            Err(e) => StackOutcome { stack: id.clone(), snapshot: None, error: Some(e.to_string()) },
        };
        match &o.error {
            None => say(t!("recover_stack_ok", stack = &id, id = o.snapshot.as_deref().map(|s| &s[..8.min(s.len())]).unwrap_or("-")).to_string()),
            Some(e) => say(t!("recover_stack_failed", stack = &id, error = e).to_string()),
        }
        outcomes.push(o);
    }
    Ok(RecoverReport { host_snapshot: host.id, config: config_written, state_dir: record.state_dir, stacks: outcomes })
}

/// Puts the restored configuration and state in place; refuses when the host already has hafen
/// state or a different configuration.
async fn install_host_state(staging: &Path, config_override: Option<&Path>) -> anyhow::Result<(Config, HostRecord, Option<String>)> {
    let record: HostRecord = serde_json::from_slice(&std::fs::read(staging.join("host/host.json"))?)?;
    let config_path: Option<PathBuf> = config_override.map(Path::to_path_buf).or_else(|| record.config_path.as_ref().map(PathBuf::from));
    let staged_config = staging.join("host/hafen.yaml");
    let cfg = match (&config_path, staged_config.is_file()) {
        (Some(p), true) => {
            let src = std::fs::read_to_string(&staged_config)?;
            Config::parse(&p.display().to_string(), &src, p.parent().unwrap_or(Path::new("/")))
                .map_err(|issues| anyhow::anyhow!("{}", issues.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n")))?
        }
        _ => Config::default(),
    };
    if cfg.store_path().exists() {
        anyhow::bail!("{}", t!("recover_not_bare", path = cfg.store_path().display(), dir = cfg.state_dir.display()));
    }
    if let (Some(p), true) = (&config_path, staged_config.is_file()) {
        match std::fs::read(p) {
            Ok(existing) if existing != std::fs::read(&staged_config)? => anyhow::bail!("{}", t!("recover_config_differs", path = p.display())),
            Ok(_) => {}
            Err(_) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                copy_tree(&staged_config, p)?;
            }
        }
    }
    std::fs::create_dir_all(&cfg.state_dir)?;
    std::fs::set_permissions(&cfg.state_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    for (from, to) in [("keys", cfg.keys_dir()), ("secrets", cfg.secrets_dir())] {
        if staging.join(from).is_dir() {
            if to.exists() && !empty_or_missing(&to) {
                anyhow::bail!("{}", t!("recover_not_bare", path = to.display(), dir = cfg.state_dir.display()));
            }
            let _ = std::fs::remove_dir(&to);
            copy_tree(&staging.join(from), &to)?;
        }
    }
    if staging.join("stacks").is_dir() && empty_or_missing(&cfg.stacks_dir) {
        let _ = std::fs::remove_dir(&cfg.stacks_dir);
        if let Some(dir) = cfg.stacks_dir.parent() {
            std::fs::create_dir_all(dir)?;
        }
        copy_tree(&staging.join("stacks"), &cfg.stacks_dir)?;
    }
    // The store last: its presence marks the host as no longer bare.
    copy_tree(&staging.join("db/state.db"), &cfg.store_path())?;
    Ok((cfg, record, config_path.map(|p| p.display().to_string())))
}
