//! hafen's container policy, enforced at the engine boundary (after the stack validator already
//! refused such definitions): whatever a spec says, nothing forbidden reaches the engine.
//! The hardening itself (no privileges, all capabilities dropped, no-new-privileges, limits) is
//! not optional in the spec at all; `docker::container_body` writes it unconditionally.

use crate::catalogue::model::CAP_ALLOW_LIST;
use crate::spec::{MountSpec, ServiceSpec};
use rust_i18n::t;

/// Checks a spec; returns every reason it is refused.
pub fn check(spec: &ServiceSpec, secret_root: &str) -> Result<(), Vec<String>> {
    let mut why = Vec::new();
    for c in &spec.cap_add {
        if !CAP_ALLOW_LIST.contains(&c.as_str()) {
            why.push(t!("policy.capability", c = c).to_string());
        }
    }
    for m in &spec.mounts {
        match m {
            MountSpec::Volume { name, .. } => {
                if name.contains('/') || name.starts_with('.') {
                    why.push(t!("policy.volume_path", name = name).to_string());
                }
            }
            MountSpec::File { source, target } => {
                let inside = source.starts_with(&format!("{}/", secret_root.trim_end_matches('/')))
                    && !source.contains("/../")
                    && !source.ends_with("/..");
                if !inside {
                    why.push(t!("policy.file_mount", source = source, root = secret_root).to_string());
                }
                if target.contains("docker.sock") {
                    why.push(t!("policy.docker_socket").to_string());
                }
            }
            MountSpec::Tmpfs { .. } => {}
        }
    }
    if let Some(u) = &spec.user {
        if u == "0" || u == "root" || u.starts_with("0:") || u.starts_with("root:") {
            why.push(t!("policy.root").to_string());
        }
    }
    for p in &spec.ports {
        if p.host_ip.is_empty() {
            why.push(t!("policy.port_host", port = p.container_port).to_string());
        }
    }
    if spec.memory_bytes == 0 || spec.pids_limit <= 0 {
        why.push(t!("policy.limits").to_string());
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why)
    }
}
