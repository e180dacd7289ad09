//! Generated secrets: created once per stack with a cryptographic RNG, kept under
//! `<state>/secrets/<stack>/` (dirs 0700, files 0600), and copied per service into
//! `<state>/run/<stack>/<service>/` owned by the service's uid with mode 0400 — the only host
//! files hafen ever mounts into a container. Secret values never enter logs, errors or env.

use crate::catalogue::StackDef;
use rand::distr::{Alphanumeric, SampleString};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

pub use hafen_core::secret::Secret;

fn mkdir_private(p: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
}

/// Writes `data` to `path` atomically with `mode`, owned by `owner` when given.
fn write_file(path: &Path, data: &[u8], mode: u32, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode_private().open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    if let Some((u, g)) = owner {
        chown(&tmp, Some(u), Some(g))?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)
}

trait PrivateOpen {
    fn mode_private(&mut self) -> &mut Self;
}
impl PrivateOpen for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// Numeric `uid[:gid]` of a Compose `user` field; names cannot be resolved outside the image.
pub fn parse_user(user: Option<&str>) -> Option<(u32, u32)> {
    let u = user?;
    let (a, b) = u.split_once(':').unwrap_or((u, u));
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Reads a stack's secret, generating it first if it does not exist yet.
pub fn ensure(secrets_dir: &Path, stack: &str, name: &str, length: usize) -> std::io::Result<Secret> {
    let dir = secrets_dir.join(stack);
    mkdir_private(secrets_dir)?;
    mkdir_private(&dir)?;
    let path = dir.join(name);
    if let Ok(v) = std::fs::read_to_string(&path) {
        if !v.is_empty() {
            return Ok(Secret::from_string(v));
        }
    }
    let v = Alphanumeric.sample_string(&mut rand::rng(), length);
    write_file(&path, v.as_bytes(), 0o600, None)?;
    Ok(Secret::from_string(v))
}

/// Reads an existing secret (for the admin: `hafen stack secret`).
pub fn read(secrets_dir: &Path, stack: &str, name: &str) -> std::io::Result<Secret> {
    std::fs::read_to_string(secrets_dir.join(stack).join(name)).map(Secret::from_string)
}

/// Generates missing secrets and writes each service's copies, owned by its uid, mode 0400.
pub fn materialise(stack: &StackDef, secrets_dir: &Path, run_dir: &Path) -> std::io::Result<()> {
    mkdir_private(run_dir)?;
    for (svc_name, svc) in &stack.services {
        if svc.secrets.is_empty() {
            continue;
        }
        let dir = run_dir.join(&stack.id).join(svc_name);
        std::fs::create_dir_all(&dir)?;
        // The directories only need to be traversable; the files are 0400 for their owner.
        std::fs::set_permissions(run_dir.join(&stack.id), std::fs::Permissions::from_mode(0o711))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
        let owner = parse_user(svc.user.as_deref());
        for m in &svc.secrets {
            let len = stack.secrets.get(&m.secret).map(|d| d.length).unwrap_or(32);
            let value = ensure(secrets_dir, &stack.id, &m.secret, len)?;
            let target = dir.join(&m.secret);
            let current = std::fs::read(&target).ok();
            if current.as_deref() != Some(value.expose().as_bytes()) || owner_differs(&target, owner) {
                write_file(&target, value.expose().as_bytes(), 0o400, owner.or(Some((0, 0))))?;
            }
        }
    }
    Ok(())
}

fn owner_differs(p: &Path, owner: Option<(u32, u32)>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (u, g) = owner.unwrap_or((0, 0));
    std::fs::metadata(p).map(|m| m.uid() != u || m.gid() != g || m.mode() & 0o777 != 0o400).unwrap_or(true)
}

/// Removes a stack's secrets and run copies (only on purge).
pub fn purge(secrets_dir: &Path, run_dir: &Path, stack: &str) -> std::io::Result<()> {
    for d in [secrets_dir.join(stack), run_dir.join(stack)] {
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
    }
    Ok(())
}

/// A password or token from a file the admin wrote (`what` names the setting), without its
/// final line break. The file must be readable by its owner only.
pub fn read_private(path: &Path, what: &str) -> Result<String, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the password file {shown} ({what}): {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("the password file {shown} can be read by others (mode {mode:04o}); hafen refuses to use it: run `chmod 600 {shown}`"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the password file {shown}: {e}"))?;
    let password = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if password.is_empty() {
        return Err(format!("the password file {shown} is empty"));
    }
    Ok(password.to_string())
}
