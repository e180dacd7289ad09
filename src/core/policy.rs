//! hafen's container policy, enforced at the engine boundary (after the stack validator already
//! refused such definitions): whatever a spec says, nothing forbidden reaches the engine.
//! The hardening itself (no privileges, all capabilities dropped, no-new-privileges, limits) is
//! not optional in the spec at all; `docker::container_body` writes it unconditionally.

use crate::catalogue::model::CAP_ALLOW_LIST;
use crate::spec::{MountSpec, ServiceSpec};

/// Checks a spec; returns every reason it is refused.
pub fn check(spec: &ServiceSpec, secret_root: &str) -> Result<(), Vec<String>> {
    let mut why = Vec::new();
    for c in &spec.cap_add {
        if !CAP_ALLOW_LIST.contains(&c.as_str()) {
            why.push(format!("capability {c} is not on the allow-list"));
        }
    }
    for m in &spec.mounts {
        match m {
            MountSpec::Volume { name, .. } => {
                if name.contains('/') || name.starts_with('.') {
                    why.push(format!("volume `{name}` looks like a host path"));
                }
            }
            MountSpec::File { source, target } => {
                let inside = source.starts_with(&format!("{}/", secret_root.trim_end_matches('/')))
                    && !source.contains("/../")
                    && !source.ends_with("/..");
                if !inside {
                    why.push(format!("file mount `{source}` is outside hafen's secret directory {secret_root}"));
                }
                if target.contains("docker.sock") {
                    why.push("the Docker socket is never mounted".into());
                }
            }
            MountSpec::Tmpfs { .. } => {}
        }
    }
    if let Some(u) = &spec.user {
        if u == "0" || u == "root" || u.starts_with("0:") || u.starts_with("root:") {
            why.push("services do not run as root".into());
        }
    }
    for p in &spec.ports {
        if p.host_ip.is_empty() {
            why.push(format!("port {} has no host address", p.container_port));
        }
    }
    if spec.memory_bytes == 0 || spec.pids_limit <= 0 {
        why.push("memory and pids limits are required".into());
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why)
    }
}
