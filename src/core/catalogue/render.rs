//! Pure rendering: a validated stack definition, resolved settings, the image each service uses
//! and where its secret files live → the exact `ServiceSpec`s hafen would create. Golden tests
//! pin this output for every stack in `stacks/`.

use rust_i18n::t;
use super::load::{check_setting_value, template_refs};
use super::model::*;
use crate::spec::{volume_name, HealthSpec, MountSpec, PortSpec, ServiceSpec};
use std::collections::BTreeMap;
use std::path::Path;

/// Checks the settings an admin gave against the stack and fills in defaults.
/// Every problem is reported; nothing is stored when there is one.
pub fn resolve_settings(stack: &StackDef, given: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut errs = Vec::new();
    let mut out = BTreeMap::new();
    for k in given.keys() {
        if !stack.settings.contains_key(k) {
            let known: Vec<&str> = stack.settings.keys().map(String::as_str).collect();
            errs.push(t!("v.no_setting", stack = stack.id, k = k, known = known.join(", ")).to_string());
        }
    }
    for (k, def) in &stack.settings {
        match given.get(k).or(def.default.as_ref()) {
            Some(v) => match check_setting_value(def.kind, v) {
                Ok(()) => {
                    out.insert(k.clone(), v.clone());
                }
                Err(e) => errs.push(t!("v.setting", k = k, e = e).to_string()),
            },
            None => errs.push(t!("v.setting_required", k = k, d = def.description).to_string()),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Replaces `${name}` with the setting's value and `$$` with `$`.
pub fn interpolate(s: &str, settings: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').unwrap_or(body.len());
            out.push_str(settings.get(&body[..end]).map(String::as_str).unwrap_or(""));
            rest = body.get(end + 1..).unwrap_or("");
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Where the secret file of (`service`, `secret`) lives on the host.
pub fn secret_file(run_dir: &Path, stack: &str, service: &str, secret: &str) -> String {
    run_dir.join(stack).join(service).join(secret).display().to_string()
}

/// Renders all services, in dependency order. `images` maps service name → image reference.
pub fn render(
    stack: &StackDef,
    settings: &BTreeMap<String, String>,
    images: &BTreeMap<String, String>,
    run_dir: &Path,
) -> Result<Vec<ServiceSpec>, String> {
    let mut out = Vec::new();
    for name in &stack.order {
        let s = &stack.services[name];
        let image = images.get(name).cloned().ok_or_else(|| t!("v.no_image_resolved", s = name).to_string())?;
        let mut mounts = Vec::new();
        for v in &s.volumes {
            mounts.push(MountSpec::Volume { name: volume_name(&stack.id, &v.volume), target: v.target.clone(), read_only: v.read_only });
        }
        for sec in &s.secrets {
            mounts.push(MountSpec::File { source: secret_file(run_dir, &stack.id, name, &sec.secret), target: sec.target.clone() });
        }
        for t in &s.tmpfs {
            mounts.push(MountSpec::Tmpfs { target: t.clone() });
        }
        let mut ports = Vec::new();
        for p in &s.ports {
            let hp = interpolate(&p.host_port, settings);
            let host_port = hp.parse::<u16>().map_err(|_| t!("v.render_host_port", s = name, p = hp).to_string())?;
            ports.push(PortSpec { host_ip: p.host_ip.clone(), host_port, container_port: p.container_port, protocol: p.protocol.clone() });
        }
        let interp = |v: &Option<Vec<String>>| v.as_ref().map(|c| c.iter().map(|a| interpolate(a, settings)).collect());
        out.push(ServiceSpec {
            stack: stack.id.clone(),
            service: name.clone(),
            image,
            command: interp(&s.command),
            entrypoint: interp(&s.entrypoint),
            env: s.environment.iter().map(|(k, v)| (k.clone(), interpolate(v, settings))).collect(),
            mounts,
            ports,
            user: s.user.clone(),
            working_dir: s.working_dir.clone(),
            read_only: s.read_only,
            cap_add: s.cap_add.clone(),
            memory_bytes: s.mem_limit,
            pids_limit: s.pids_limit,
            healthcheck: s.healthcheck.as_ref().map(|h| HealthSpec {
                test: h.test.iter().map(|a| interpolate(a, settings)).collect(),
                interval: h.interval,
                timeout: h.timeout,
                start_period: h.start_period,
                retries: h.retries,
            }),
        });
    }
    // template_refs is used by validation; keep the two in step.
    debug_assert!(stack.services.values().all(|s| s.environment.values().all(|v| template_refs(v).is_ok())));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation() {
        let s = BTreeMap::from([("port".to_string(), "8080".to_string())]);
        assert_eq!(interpolate("127.0.0.1:${port}", &s), "127.0.0.1:8080");
        assert_eq!(interpolate("cost $$5", &s), "cost $5");
    }
}
