//! Pending Debian updates of hafen's own images. A recipe's tag only changes with its files, so
//! security fixes in Debian's packages would never reach a built image by themselves. Here a
//! throwaway rebuild on a freshly bootstrapped base (`hafen/debian:<suite>-fresh`) is compared
//! with the running image by their installed-package manifests (`dpkg-query`); a difference is
//! a pending rebuild, which the update transaction then rolls out like any other update.

use super::{base_suite, bootstrap_base, context_tar_with, tag_for, ImageError, BASE_REPO};
use hafen_engine::{Engine, ServiceSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The stack id of the one-off containers that read manifests (not a valid stack id, so it
/// never meets a real stack).
const PROBE_STACK: &str = "_rebuild";

/// What a throwaway rebuild found for one recipe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Probe {
    pub recipe: String,
    /// The image that runs now.
    pub current: String,
    /// The throwaway rebuild (kept while it differs, to be rolled out).
    pub fresh: String,
    /// `package old → new`, `package new (added)`, `package old (removed)`.
    pub changes: Vec<String>,
    pub checked_at: String,
}

/// The packages of a `dpkg-query -W -f '${Package} ${Version}\n'` listing.
pub fn parse_manifest(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(|l| l.trim().split_once(' ')).map(|(p, v)| (p.to_string(), v.trim().to_string())).filter(|(p, v)| !p.is_empty() && !v.is_empty()).collect()
}

/// What differs from `old` to `new`, one line per package, sorted by package.
pub fn diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, v) in new {
        match old.get(p) {
            Some(o) if o != v => out.push(format!("{p} {o} → {v}")),
            Some(_) => {}
            None => out.push(format!("{p} {v} (added)")),
        }
    }
    for (p, o) in old {
        if !new.contains_key(p) {
            out.push(format!("{p} {o} (removed)"));
        }
    }
    out.sort();
    out
}

/// The installed packages of `image`, read in a one-off container (hardened like every other,
/// the image's own user, no network beyond its private one).
pub async fn manifest(engine: &dyn Engine, image: &str) -> Result<BTreeMap<String, String>, ImageError> {
    if !engine.network_exists(PROBE_STACK).await? {
        engine.create_network(PROBE_STACK).await?;
    }
    let spec = ServiceSpec {
        stack: PROBE_STACK.into(),
        service: "manifest".into(),
        image: image.into(),
        command: Some(vec!["-W".into(), "-f".into(), "${Package} ${Version}\n".into()]),
        entrypoint: Some(vec!["dpkg-query".into()]),
        env: BTreeMap::new(),
        mounts: vec![],
        ports: vec![],
        user: None,
        working_dir: None,
        read_only: true,
        cap_add: vec![],
        memory_bytes: 256 << 20,
        pids_limit: 64,
        healthcheck: None,
    };
    let out = engine.run_once(&spec, std::time::Duration::from_secs(120)).await;
    let _ = engine.remove_network(PROBE_STACK).await;
    let out = out?;
    if out.exit_code != 0 {
        return Err(ImageError::Read { recipe: image.into(), detail: format!("dpkg-query exited with {}: {}", out.exit_code, out.stderr.trim()) });
    }
    Ok(parse_manifest(&out.stdout))
}

/// Rebuilds `recipe` on a fresh Debian base as `<tag>-r<time>` and compares it with the image
/// `current` runs. Without differences the throwaway image is removed again.
pub async fn probe(
    engine: &dyn Engine,
    images_dir: &Path,
    recipe: &str,
    current: &str,
    mirror: &str,
    scratch: &Path,
    progress: &(dyn for<'x> Fn(&'x str) + Send + Sync),
) -> Result<Probe, ImageError> {
    let tag = tag_for(images_dir, recipe)?;
    let dir = images_dir.join(recipe);
    let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).map_err(|e| ImageError::Read { recipe: recipe.into(), detail: e.to_string() })?;
    let mut overrides = BTreeMap::new();
    if let Some(suite) = base_suite(&dockerfile) {
        let fresh_base = format!("{BASE_REPO}:{suite}-fresh");
        bootstrap_base(engine, &suite, mirror, scratch, &fresh_base, progress).await?;
        let rewritten = dockerfile.replacen(&format!("FROM {BASE_REPO}:{suite}"), &format!("FROM {fresh_base}"), 1);
        overrides.insert(std::path::PathBuf::from("Dockerfile"), rewritten.into_bytes());
    }
    let ctx = context_tar_with(&dir, &overrides).map_err(|e| ImageError::Read { recipe: recipe.into(), detail: e.to_string() })?;
    // A tag of its own per rebuild: a service pinned to an earlier rebuild keeps its image.
    let fresh = format!("{tag}-r{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
    progress(&format!("throwaway rebuild {fresh}"));
    engine.build_image(&fresh, ctx, super::recipe_labels(recipe, &tag), progress).await?;
    let changes = diff(&manifest(engine, current).await?, &manifest(engine, &fresh).await?);
    if changes.is_empty() {
        engine.untag_image(&fresh).await?;
    }
    Ok(Probe { recipe: recipe.into(), current: current.into(), fresh, changes, checked_at: hafen_store::now() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_parse_and_differ_by_package() {
        let old = parse_manifest("base-files 12.4+deb12u10\nlibssl3 3.0.15-1~deb12u1\ntzdata 2024a-0+deb12u1\n\n");
        let new = parse_manifest("base-files 12.4+deb12u10\nlibssl3 3.0.16-1~deb12u1\nca-certificates 20230311\n");
        assert_eq!(old.len(), 3);
        assert_eq!(
            diff(&old, &new),
            ["ca-certificates 20230311 (added)", "libssl3 3.0.15-1~deb12u1 → 3.0.16-1~deb12u1", "tzdata 2024a-0+deb12u1 (removed)"]
        );
        assert!(diff(&new, &new).is_empty());
    }
}
