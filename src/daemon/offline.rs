//! Offline operations: what a front end does without a running daemon — render a stack's specs,
//! build images, the recovery identity and kit, and the emergency restore from a target with
//! only the recovery kit (a list, one snapshot into an empty directory, or the whole box). They
//! are named functions here so the CLI now, and the console later, call the same code; front
//! ends print, these decide.

use crate::catalogue::{self, render};
use crate::config::{BackupTarget, Config, TargetAccess, TargetKind};
use hafen_api::{RecipientEntry, RecoverReport, SnapInfo};
use hafen_backup::keys::{generate_identity, KeyError, Keyring};
use hafen_backup::kit::{Kit, KitTarget};
use hafen_backup::repo::Repo;
use hafen_engine::ServiceSpec;
use rust_i18n::t;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Renders a stack's specs without daemon, engine or store (defaults plus `set`).
pub fn render_stack(cfg: &Config, id: &str, set: &BTreeMap<String, String>) -> anyhow::Result<Vec<ServiceSpec>> {
    let c = catalogue::Catalogue::load(&cfg.stacks_dir);
    let Some(stack) = c.stacks.get(id) else {
        let own: Vec<String> = c.issues.iter().filter(|i| i.file.contains(&format!("/{id}/"))).map(|i| i.to_string()).collect();
        if own.is_empty() {
            anyhow::bail!(
                "{}",
                t!("err.app_not_found", id = id, dir = cfg.stacks_dir.display(), available = c.stacks.keys().cloned().collect::<Vec<_>>().join(", "))
            );
        }
        anyhow::bail!("{}\n  {}", t!("err.app_definition", id = id), own.join("\n  "));
    };
    let settings = render::resolve_settings(stack, set).map_err(|e| anyhow::anyhow!("{}", e.join("\n")))?;
    let mut images = BTreeMap::new();
    for (name, s) in &stack.services {
        let r = match &s.image {
            catalogue::model::ImageSource::Build { recipe } => crate::images::tag_for(&cfg.images_dir, recipe)?,
            other => other.display(),
        };
        images.insert(name.clone(), r);
    }
    render::render(stack, &settings, &images, &cfg.run_dir()).map_err(|e| anyhow::anyhow!(e))
}

/// Builds the given recipes (all under `images_dir` when none is named) through the engine;
/// `progress` hears each build line, `built` each finished recipe with its tag and duration.
pub async fn build_images(cfg: &Config, recipes: &[String], progress: &(dyn for<'x> Fn(&'x str) + Send + Sync), built: &mut dyn FnMut(&str, &str, Duration)) -> anyhow::Result<()> {
    let engine = hafen_engine::docker::DockerEngine::connect(&cfg.docker_socket.display().to_string(), &cfg.run_dir().display().to_string()).await?;
    let mut recipes = recipes.to_vec();
    if recipes.is_empty() {
        for e in std::fs::read_dir(&cfg.images_dir)? {
            let p = e?.path();
            if p.join("Dockerfile").is_file() {
                recipes.push(p.file_name().unwrap_or_default().to_string_lossy().to_string());
            }
        }
        recipes.sort();
    }
    for r in &recipes {
        let started = Instant::now();
        let tag = crate::images::ensure_recipe(&engine, &cfg.images_dir, r, &cfg.debian_mirror, &cfg.build_dir(), progress).await?;
        built(r, &tag, started.elapsed());
    }
    Ok(())
}

/// A recovery kit, ready to show and to write.
pub struct KitPages {
    /// The page for the screen (with the identity, when one was just made).
    pub screen: String,
    /// The printable A4 PDF.
    pub pdf: Vec<u8>,
    /// The text form (without the identity's QR code blocks).
    pub text: String,
    /// Repository keys wrapped again for the new recipient.
    pub rewrapped: usize,
}

/// `hafen keys init`: a new recovery identity (shown once, never stored), every repository key
/// wrapped for it too, and the kit that holds it.
pub fn keys_init(cfg: &Config, label: &str) -> anyhow::Result<KitPages> {
    let ring = Keyring::open(&cfg.keys_dir())?;
    let id = generate_identity();
    let rewrapped = ring.add_recipient(label, &id.recipient)?;
    let kit = Kit {
        identity: id.expose_secret().to_string(),
        recipient: id.recipient.clone(),
        label: label.to_string(),
        host: crate::notify::host_name(),
        created: hafen_store::now(),
        targets: kit_targets(cfg, &ring)?,
    };
    Ok(KitPages { screen: kit.render(true), pdf: kit.pdf(), text: kit.render(false), rewrapped: rewrapped.len() })
}

/// `hafen keys kit`: the kit again, without an identity (the recovery recipients and every
/// target's wrapped key), e.g. after a new target was added.
pub fn keys_kit(cfg: &Config) -> anyhow::Result<KitPages> {
    let ring = Keyring::open(&cfg.keys_dir())?;
    if !ring.has_recovery()? {
        anyhow::bail!("{}", KeyError::NoRecovery);
    }
    let kit = Kit {
        identity: String::new(),
        recipient: ring.recipients()?.into_iter().filter(|r| r.role == "recovery").map(|r| r.recipient).collect::<Vec<_>>().join(", "),
        label: String::new(),
        host: crate::notify::host_name(),
        created: hafen_store::now(),
        targets: kit_targets(cfg, &ring)?,
    };
    let text = kit.render(false);
    Ok(KitPages { screen: text.clone(), pdf: kit.pdf(), text, rewrapped: 0 })
}

pub fn keys_list(cfg: &Config) -> anyhow::Result<Vec<RecipientEntry>> {
    Ok(Keyring::open(&cfg.keys_dir())?.recipients()?)
}

/// Adds a recipient; the number of repository keys wrapped again.
pub fn keys_add(cfg: &Config, label: &str, recipient: &str) -> anyhow::Result<usize> {
    Ok(Keyring::open(&cfg.keys_dir())?.add_recipient(label, recipient)?.len())
}

/// Removes a recipient; the number of repository keys wrapped again.
pub fn keys_remove(cfg: &Config, label: &str) -> anyhow::Result<usize> {
    Ok(Keyring::open(&cfg.keys_dir())?.remove_recipient(label)?.len())
}

/// Every configured target for the kit: location, what to bring, and its wrapped key (created
/// now when the target has none yet, so the kit is complete from the start).
fn kit_targets(cfg: &Config, ring: &Keyring) -> anyhow::Result<Vec<KitTarget>> {
    let mut out = Vec::new();
    for t in &cfg.backup_targets {
        ring.repo_key(&t.name)?;
        let supply = match &t.kind {
            TargetKind::Local { .. } => None,
            TargetKind::Sftp { ssh_key, known_hosts, .. } => Some(t!("kit_supply_sftp", key = ssh_key.display(), kh = known_hosts.display()).to_string()),
            TargetKind::S3 { credentials, region, .. } => Some(t!("kit_supply_s3", path = credentials.display(), region = region).to_string()),
            TargetKind::Rest { credentials: Some(c), .. } => Some(t!("kit_supply_rest", path = c.display()).to_string()),
            TargetKind::Rest { credentials: None, .. } => None,
        };
        let wrapped_key = ring.wrapped_repo_key(&t.name)?.map(|k| String::from_utf8_lossy(&k).to_string());
        out.push(KitTarget { name: t.name.clone(), location: t.location(), supply, wrapped_key });
    }
    Ok(out)
}

/// What the emergency restore needs: the repository as the kit names it, the kit (or just the
/// recovery identity), and what the target's kind asks for.
pub struct KitAccess {
    pub repo: String,
    pub identity_file: PathBuf,
    pub key_file: Option<PathBuf>,
    pub access: TargetAccess,
}

/// A repository opened with only the recovery kit.
pub struct KitRepo {
    repo: Repo,
}

/// The armored key block the kit prints under `name: <location>`.
fn kit_key_block(kit: &str, location: &str) -> Option<String> {
    let mut lines = kit.lines().map(str::trim).skip_while(|l| !l.ends_with(&format!(": {location}")));
    lines.next()?;
    let block: Vec<&str> = lines.skip_while(|l| !l.starts_with("-----BEGIN AGE ENCRYPTED FILE-----")).collect();
    let end = block.iter().position(|l| l.starts_with("-----END AGE ENCRYPTED FILE-----"))?;
    Some(block[..=end].join("\n") + "\n")
}

/// Opens the repository with the recovery identity: the repository key from `key_file`, from
/// `hafen-repo-key.age` in a local repository, or from the kit's block for this location.
pub async fn open_with_kit(a: &KitAccess) -> anyhow::Result<KitRepo> {
    let target = BackupTarget::from_location(&a.repo, &a.access).map_err(|e| anyhow::anyhow!("--repo: {e}"))?;
    let identity_file = &a.identity_file;
    let id_text = std::fs::read_to_string(identity_file).map_err(|e| anyhow::anyhow!("{}: {e}", identity_file.display()))?;
    let Some(identity) = id_text.lines().map(str::trim).find(|l| l.starts_with("AGE-SECRET-KEY-1")) else {
        anyhow::bail!("{}", t!("restore_no_identity", path = identity_file.display()));
    };
    let (wrapped, key_source) = match (&a.key_file, &target.kind) {
        (Some(f), _) => (std::fs::read(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?, f.display().to_string()),
        (None, TargetKind::Local { path, .. }) => {
            let key_file = path.join("hafen-repo-key.age");
            match std::fs::read(&key_file) {
                Ok(k) => (k, key_file.display().to_string()),
                Err(e) => match kit_key_block(&id_text, &target.location()) {
                    Some(k) => (k.into_bytes(), identity_file.display().to_string()),
                    None => anyhow::bail!("{}", t!("restore_no_keyfile", path = key_file.display(), e = e)),
                },
            }
        }
        (None, _) => match kit_key_block(&id_text, &target.location()) {
            Some(k) => (k.into_bytes(), identity_file.display().to_string()),
            None => anyhow::bail!("{}", t!("restore_need_keyfile", location = target.location(), path = identity_file.display())),
        },
    };
    let key = hafen_backup::keys::decrypt(identity, &wrapped, &key_source)?;
    let secret = crate::secrets::Secret::from_string(String::from_utf8_lossy(&key).trim().to_string());
    let location = crate::backup::location(&target)?;
    let repo = tokio::task::spawn_blocking(move || Repo::open_existing(location, secret)).await??;
    Ok(KitRepo { repo })
}

/// `--at` as the restore reads it (local time `2026-11-27 03:00`, a day, or RFC 3339).
pub fn parse_at(s: &str) -> Result<i64, String> {
    hafen_backup::repo::parse_at(s)
}

/// Bytes for people (`1.2 GiB`), as the progress lines show them.
pub fn human_bytes(b: u64) -> String {
    hafen_backup::progress::human(b)
}

impl KitRepo {
    /// Long work shows its progress on stderr from now on.
    pub fn with_progress(self) -> KitRepo {
        KitRepo { repo: self.repo.with_progress(hafen_backup::progress::for_stderr()) }
    }

    pub async fn snapshots(&self) -> anyhow::Result<Vec<SnapInfo>> {
        Ok(self.snapshots_and_damage().await?.0)
    }

    /// The snapshots that can be read, and the ids of snapshot files that cannot (skipped).
    pub async fn snapshots_and_damage(&self) -> anyhow::Result<(Vec<SnapInfo>, Vec<String>)> {
        let r = self.repo.clone();
        Ok(tokio::task::spawn_blocking(move || r.snapshots_and_damage()).await??)
    }

    /// The snapshot `id` (or prefix, or `latest`) with all `tags`, or the newest at or before `at`.
    pub fn pick(snaps: &[SnapInfo], tags: &[String], id: &str, at: Option<i64>) -> Option<SnapInfo> {
        hafen_backup::repo::pick(snaps, tags, id, at)
    }

    /// Checks the repository with only the kit: its structure, every readable snapshot's trees,
    /// and with `read_data` every pack's data. The findings, each naming what it is about, as
    /// catalogue keys for the reader's language.
    pub async fn check(&self, read_data: bool) -> anyhow::Result<Vec<hafen_api::Message>> {
        let r = self.repo.clone();
        Ok(tokio::task::spawn_blocking(move || r.check_findings(read_data, None)).await??)
    }

    /// Plans the repair of the repository with only the kit, or with `apply` carries it out.
    pub async fn repair(&self, apply: bool) -> anyhow::Result<hafen_api::RepairReport> {
        let r = self.repo.clone();
        Ok(tokio::task::spawn_blocking(move || r.repair(apply)).await??)
    }

    /// Restores one snapshot (or one `path` of it) into an empty directory; nothing outside it
    /// is written.
    pub async fn restore(self, id: &str, tags: &[String], path: &str, into: &Path) -> anyhow::Result<SnapInfo> {
        let (id, tags, path, into) = (id.to_string(), tags.to_vec(), path.to_string(), into.to_path_buf());
        Ok(tokio::task::spawn_blocking(move || self.repo.restore(&id, &tags, &path, &into)).await??)
    }

    /// A new machine: hafen's own state, then every stack with its data (`recover`).
    pub async fn restore_all(self, config: Option<&Path>, at: Option<i64>, say: &(dyn Fn(String) + Sync)) -> anyhow::Result<RecoverReport> {
        crate::recover::restore_all(self.repo, config, at, say).await
    }
}
