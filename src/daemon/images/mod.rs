//! Images without a registry: Debian base images made with debootstrap and `docker import`, and
//! stack images built from recipes in `images/<recipe>/` through the engine's build API. A
//! recipe's tag carries a hash of its files (`hafen/<recipe>:<hash>`), so an unchanged recipe is
//! never built twice and a changed one always is.

use hafen_engine::{Engine, EngineError, LABEL_RECIPE, LABEL_RECIPE_HASH};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::process::Command;

pub mod rebuild;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}", rust_i18n::t!("err.image_norecipe", recipe = .recipe, path = .path, dir = .dir))]
    NoRecipe { recipe: String, path: String, dir: String },
    #[error("{}", rust_i18n::t!("err.image_read", recipe = .recipe, detail = .detail))]
    Read { recipe: String, detail: String },
    #[error("{}", rust_i18n::t!("err.image_nodebootstrap", suite = .suite))]
    NoDebootstrap { suite: String },
    #[error("{}", rust_i18n::t!("err.image_bootstrap", suite = .suite, detail = .detail, mirror = .mirror))]
    Bootstrap { suite: String, mirror: String, detail: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ImageError {
    /// The error as code + arguments (`hafen_api::Message`), rendered by each reader's front end.
    pub fn message(&self) -> hafen_api::Message {
        use hafen_api::Message as M;
        match self {
            ImageError::NoRecipe { recipe, path, dir } => M::new("image_norecipe").arg("recipe", recipe).arg("path", path).arg("dir", dir),
            ImageError::Read { recipe, detail } => M::new("image_read").arg("recipe", recipe).arg("detail", detail),
            ImageError::NoDebootstrap { suite } => M::new("image_nodebootstrap").arg("suite", suite),
            ImageError::Bootstrap { suite, mirror, detail } => M::new("image_bootstrap").arg("suite", suite).arg("detail", detail).arg("mirror", mirror),
            ImageError::Engine(e) => e.message(),
        }
    }
}

pub const BASE_REPO: &str = "hafen/debian";

/// Hash over the recipe's files (relative path and content), in sorted order.
pub fn recipe_hash(dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    for rel in files {
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(dir.join(&rel))?);
        h.update([0]);
    }
    Ok(hex::encode(&h.finalize()[..6]))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect(root, &p, out)?;
        } else {
            out.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
        }
    }
    Ok(())
}

pub fn recipe_tag(recipe: &str, hash: &str) -> String {
    format!("hafen/{recipe}:{hash}")
}

/// The Debian suite a Dockerfile builds on, when its first FROM is `hafen/debian:<suite>`.
pub fn base_suite(dockerfile: &str) -> Option<String> {
    dockerfile
        .lines()
        .map(str::trim)
        .find(|l| l.to_ascii_uppercase().starts_with("FROM "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|img| img.strip_prefix(&format!("{BASE_REPO}:")))
        .map(str::to_string)
}

/// The tag a recipe would be built as, without building (for plans).
pub fn tag_for(images_dir: &Path, recipe: &str) -> Result<String, ImageError> {
    let dir = images_dir.join(recipe);
    if !dir.join("Dockerfile").is_file() {
        return Err(ImageError::NoRecipe {
            recipe: recipe.into(),
            path: dir.display().to_string(),
            dir: images_dir.display().to_string(),
        });
    }
    let hash = recipe_hash(&dir).map_err(|e| ImageError::Read { recipe: recipe.into(), detail: e.to_string() })?;
    Ok(recipe_tag(recipe, &hash))
}

/// Builds the Debian base for `suite` unless the engine has it.
pub async fn ensure_base(
    engine: &dyn Engine,
    suite: &str,
    mirror: &str,
    scratch: &Path,
    progress: &(dyn for<'x> Fn(&'x str) + Send + Sync),
) -> Result<String, ImageError> {
    let tag = format!("{BASE_REPO}:{suite}");
    if let Some(id) = engine.image_id(&tag).await? {
        return Ok(id);
    }
    bootstrap_base(engine, suite, mirror, scratch, &tag, progress).await
}

/// debootstrap of `suite` from `mirror`, imported as `tag` (replacing what had that tag).
pub async fn bootstrap_base(
    engine: &dyn Engine,
    suite: &str,
    mirror: &str,
    scratch: &Path,
    tag: &str,
    progress: &(dyn for<'x> Fn(&'x str) + Send + Sync),
) -> Result<String, ImageError> {
    if which("debootstrap").is_none() {
        return Err(ImageError::NoDebootstrap { suite: suite.into() });
    }
    let boot = |detail: String| ImageError::Bootstrap { suite: suite.into(), mirror: mirror.into(), detail };
    std::fs::create_dir_all(scratch).map_err(|e| boot(e.to_string()))?;
    let work = tempdir_in(scratch).map_err(|e| boot(e.to_string()))?;
    let root = work.join("rootfs");
    progress(&format!("debootstrap {suite} from {mirror}"));
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", suite])
        .arg(&root)
        .arg(mirror)
        .output()
        .await
        .map_err(|e| boot(e.to_string()))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&work);
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        return Err(boot(format!("debootstrap exited with {}: {}", out.status, tail.into_iter().rev().collect::<Vec<_>>().join(" | "))));
    }
    // Clean the package cache before import to keep the base small.
    let _ = std::fs::remove_dir_all(root.join("var/cache/apt/archives"));
    let tarball = work.join("rootfs.tar");
    let st = Command::new("tar").arg("-C").arg(&root).args(["-cf"]).arg(&tarball).arg(".").status().await.map_err(|e| boot(e.to_string()))?;
    if !st.success() {
        let _ = std::fs::remove_dir_all(&work);
        return Err(boot(format!("tar exited with {st}")));
    }
    progress(&format!("importing {tag}"));
    let id = engine.import_image(tag, &tarball, Vec::new()).await;
    let _ = std::fs::remove_dir_all(&work);
    Ok(id?)
}

/// Ensures the image of `recipe` exists (building base and recipe as needed); returns its tag.
pub async fn ensure_recipe(
    engine: &dyn Engine,
    images_dir: &Path,
    recipe: &str,
    mirror: &str,
    scratch: &Path,
    progress: &(dyn for<'x> Fn(&'x str) + Send + Sync),
) -> Result<String, ImageError> {
    let tag = tag_for(images_dir, recipe)?;
    if engine.image_id(&tag).await?.is_some() {
        return Ok(tag);
    }
    let dir = images_dir.join(recipe);
    let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).map_err(|e| ImageError::Read { recipe: recipe.into(), detail: e.to_string() })?;
    if let Some(suite) = base_suite(&dockerfile) {
        ensure_base(engine, &suite, mirror, scratch, progress).await?;
    }
    let ctx = context_tar(&dir).map_err(|e| ImageError::Read { recipe: recipe.into(), detail: e.to_string() })?;
    progress(&format!("building {tag}"));
    engine.build_image(&tag, ctx, recipe_labels(recipe, &tag), progress).await?;
    Ok(tag)
}

/// The labels of an image built from `recipe` as `tag` (`hafen/<recipe>:<hash>[-…]`). Not
/// LABEL_MANAGED: containers inherit image labels, and only hafen's own containers may carry it.
pub fn recipe_labels(recipe: &str, tag: &str) -> BTreeMap<String, String> {
    let hash = tag.rsplit(':').next().unwrap_or_default().split('-').next().unwrap_or_default();
    BTreeMap::from([(LABEL_RECIPE.to_string(), recipe.to_string()), (LABEL_RECIPE_HASH.to_string(), hash.to_string())])
}

/// An uncompressed tar of the build context, with stable ordering and no host ownership.
pub fn context_tar(dir: &Path) -> std::io::Result<Vec<u8>> {
    context_tar_with(dir, &BTreeMap::new())
}

/// `context_tar` with some files' content replaced (relative path → content).
pub fn context_tar_with(dir: &Path, overrides: &BTreeMap<PathBuf, Vec<u8>>) -> std::io::Result<Vec<u8>> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut b = tar::Builder::new(Vec::new());
    for rel in files {
        let full = dir.join(&rel);
        let data = match overrides.get(&rel) {
            Some(d) => d.clone(),
            None => std::fs::read(&full)?,
        };
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&full)?.permissions().mode() & 0o755
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode | 0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, &rel, data.as_slice())?;
    }
    b.into_inner()
}

fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]).map(|d| d.join(bin)).find(|p| p.is_file())
}

fn tempdir_in(dir: &Path) -> std::io::Result<PathBuf> {
    let p = dir.join(format!("base-{}-{}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_hash_follows_content() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM hafen/debian:bookworm\n").unwrap();
        let a = recipe_hash(d.path()).unwrap();
        assert_eq!(a, recipe_hash(d.path()).unwrap());
        std::fs::write(d.path().join("entrypoint.sh"), "#!/bin/sh\n").unwrap();
        assert_ne!(a, recipe_hash(d.path()).unwrap());
        assert_eq!(base_suite("# c\nFROM hafen/debian:trixie\nRUN x").as_deref(), Some("trixie"));
        assert_eq!(base_suite("FROM debian:12"), None);
    }
}
