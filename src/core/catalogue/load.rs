//! Decodes and validates stack files (`stacks/<id>/stack.yaml`) into `StackDef`, reporting all
//! problems at once. Owns the rules of format v1, including the hardening rules a definition must
//! pass before hafen would ever create a container from it (enforced again in `engine::policy`).

use rust_i18n::t;
use super::decode::{child, entries, items, parse_duration, parse_size, parse_yaml, scalar, Issue, Issues, Obj};
use super::model::*;
use serde_norway::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Fields of Compose that hafen refuses, with the catalogue key (`locales/validate.yml`) of the
/// reason given to the admin.
const REFUSED: &[(&str, &str)] = &[
    ("privileged", "v.refused.privileged"),
    ("network_mode", "v.refused.network"),
    ("network", "v.refused.network"),
    ("networks", "v.refused.networks"),
    ("pid", "v.refused.pid"),
    ("ipc", "v.refused.ipc"),
    ("uts", "v.refused.uts"),
    ("userns_mode", "v.refused.userns_mode"),
    ("devices", "v.refused.devices"),
    ("security_opt", "v.refused.security_opt"),
    ("sysctls", "v.refused.sysctls"),
    ("cgroup_parent", "v.refused.cgroup_parent"),
    ("volumes_from", "v.refused.volumes_from"),
    ("cap_drop", "v.refused.cap_drop"),
];

/// The most a stack file may hold: its size in bytes, the nesting of its YAML, and the number
/// of services, volumes, settings and secrets. Far above any real stack (the catalogue's
/// largest is under 10 KiB and nests 6 deep), low enough that a mistaken or hostile file cannot
/// take the daemon's memory (an 11 MB file once took 458 MB to decode).
pub const MAX_FILE_BYTES: usize = 256 * 1024;
pub const MAX_DEPTH: usize = 24;
pub const MAX_ENTRIES: usize = 100;

/// Validates stack text. `dir_id` is the name of the directory it came from, which must equal `id`.
pub fn parse_stack(file: &str, src: &str, dir_id: Option<&str>) -> Result<StackDef, Vec<Issue>> {
    // A byte-order mark is not part of the text (editors on Windows write one); YAML reads past it.
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let limit = |message: String| vec![Issue { file: file.to_string(), line: None, path: String::new(), message }];
    if src.len() > MAX_FILE_BYTES {
        return Err(limit(t!("v.file_too_large", bytes = src.len(), max = MAX_FILE_BYTES).to_string()));
    }
    let value = parse_yaml(file, src)?;
    if depth(&value) > MAX_DEPTH {
        return Err(limit(t!("v.too_deep", max = MAX_DEPTH).to_string()));
    }
    let mut issues = Issues::new(file, src);
    for key in ["services", "volumes", "settings", "secrets"] {
        let n = match value.get(key) {
            Some(Value::Mapping(m)) => m.len(),
            Some(Value::Sequence(s)) => s.len(),
            _ => 0,
        };
        if n > MAX_ENTRIES {
            issues.push(key, t!("v.too_many", n = n, max = MAX_ENTRIES).to_string());
        }
    }
    if !issues.is_empty() {
        return Err(issues.into_sorted());
    }
    let def = decode_stack(&value, dir_id, &mut issues);
    match def {
        Some(mut d) if issues.is_empty() => {
            d.file_hash = hex::encode(Sha256::digest(src.as_bytes()));
            d.file = file.to_string();
            d.source = src.to_string();
            Ok(d)
        }
        _ => {
            if issues.is_empty() {
                issues.push("", t!("v.empty_file").to_string());
            }
            Err(issues.into_sorted())
        }
    }
}

/// How deep a YAML value nests (a scalar is 1).
fn depth(v: &Value) -> usize {
    match v {
        Value::Mapping(m) => 1 + m.iter().map(|(k, v)| depth(k).max(depth(v))).max().unwrap_or(0),
        Value::Sequence(s) => 1 + s.iter().map(depth).max().unwrap_or(0),
        Value::Tagged(t) => 1 + depth(&t.value),
        _ => 1,
    }
}

/// A port number as written: 1 to 65535. The error tells a number out of range from something
/// that is not a number at all.
fn port_number(s: &str) -> Result<u16, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(_) => Err(t!("v.port_range", p = s).to_string()),
        Err(_) => Err(t!("v.host_port_nan", p = s).to_string()),
    }
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn decode_stack(v: &Value, dir_id: Option<&str>, is: &mut Issues) -> Option<StackDef> {
    let mut o = Obj::new(v, "", is)?;
    match o.req::<u32>("version", is) {
        Some(1) | None => {}
        Some(n) => is.push("version", t!("v.format_version", n = n).to_string()),
    }
    let id: String = o.req("id", is).unwrap_or_default();
    if !id.is_empty() && !is_ident(&id) {
        is.push("id", t!("v.bad_id", id = id).to_string());
    }
    if let (Some(d), false) = (dir_id, id.is_empty()) {
        if d != id {
            is.push("id", t!("v.id_dir", id = id, d = d).to_string());
        }
    }
    let name: String = o.opt("name", is).unwrap_or_else(|| id.clone());
    // One text, or one per language (`de`, `en`) that front ends choose from.
    let mut descriptions = BTreeMap::new();
    let description: String = match o.raw("description") {
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                match (scalar(k).as_deref(), scalar(v)) {
                    (Some(lang @ ("de" | "en")), Some(text)) => {
                        descriptions.insert(lang.to_string(), text);
                    }
                    (k, _) => is.push(&o.path_of("description"), t!("v.description_lang", k = k.unwrap_or_default()).to_string()),
                }
            }
            descriptions.get("en").or_else(|| descriptions.get("de")).cloned().unwrap_or_default()
        }
        Some(v) => scalar(v).unwrap_or_default(),
        None => String::new(),
    };
    let sphere: Option<String> = o.opt("sphere", is);
    if let Some(s) = &sphere {
        if !["office", "accounting", "casefiles", "infrastructure"].contains(&s.as_str()) {
            is.push("sphere", t!("v.sphere", s = s).to_string());
        }
    }

    let mut settings = BTreeMap::new();
    if let Some(sv) = o.raw("settings") {
        for (k, v, p) in entries(sv, "settings", is) {
            if !is_ident(&k) {
                is.push(&p, t!("v.setting_name", k = k).to_string());
            }
            if let Some(s) = decode_setting(v, &p, is) {
                settings.insert(k, s);
            }
        }
    }
    let mut secrets = BTreeMap::new();
    if let Some(sv) = o.raw("secrets") {
        for (k, v, p) in entries(sv, "secrets", is) {
            if !is_ident(&k) {
                is.push(&p, t!("v.secret_name", k = k).to_string());
            }
            let mut length = 32usize;
            if let Some(mut so) = Obj::new(v, &p, is) {
                if let Some(l) = so.opt::<usize>("length", is) {
                    if !(16..=128).contains(&l) {
                        is.push(&so.path_of("length"), t!("v.secret_length", l = l).to_string());
                    }
                    length = l;
                }
                so.finish(is);
            }
            secrets.insert(k, SecretDef { length });
        }
    }
    let mut volumes = BTreeMap::new();
    if let Some(vv) = o.raw("volumes") {
        for (k, v, p) in entries(vv, "volumes", is) {
            if !is_ident(&k) {
                is.push(&p, t!("v.volume_name", k = k).to_string());
            }
            let Some(mut vo) = Obj::new(v, &p, is) else {
                is.push(&p, t!("v.volume_needs_kind").to_string());
                continue;
            };
            let kind = match vo.req::<String>("kind", is).as_deref() {
                Some("db") => VolumeKind::Db,
                Some("data") => VolumeKind::Data,
                Some("config") => VolumeKind::Config,
                Some("cache") => VolumeKind::Cache,
                Some(other) => {
                    is.push(&vo.path_of("kind"), t!("v.volume_kind", k = other).to_string());
                    VolumeKind::Data
                }
                None => VolumeKind::Data,
            };
            let backup = vo.opt::<bool>("backup", is).unwrap_or(matches!(kind, VolumeKind::Data | VolumeKind::Config));
            vo.finish(is);
            volumes.insert(k, VolumeDef { kind, backup });
        }
    }

    let mut services = BTreeMap::new();
    match o.raw("services") {
        Some(sv) => {
            for (k, v, p) in entries(sv, "services", is) {
                if !is_ident(&k) {
                    is.push(&p, t!("v.service_name", k = k).to_string());
                }
                if let Some(s) = decode_service(v, &p, &settings, &secrets, &volumes, is) {
                    services.insert(k, s);
                }
            }
            if services.is_empty() && is.is_empty() {
                is.push("services", t!("v.no_services").to_string());
            }
        }
        None => is.push("", t!("v.missing", key = "services").to_string()),
    }
    // Cross references: depends_on names services; order without cycles.
    for (name, s) in &services {
        for (i, d) in s.depends_on.iter().enumerate() {
            if !services.contains_key(d) {
                is.push(&format!("services.{name}.depends_on[{i}]"), t!("v.depends_unknown", d = d).to_string());
            }
        }
    }
    let order = topo_order(&services).unwrap_or_else(|cycle| {
        is.push("services", t!("v.cycle", cycle = cycle.join(" → ")).to_string());
        Vec::new()
    });

    let backup = o.raw("backup").map(|b| decode_backup(b, &services, is)).unwrap_or_default();
    let upgrade = o.raw("upgrade").map(|u| decode_upgrade(u, &services, is)).unwrap_or_default();
    for d in &upgrade.databases {
        if !backup.dumps.iter().any(|x| &x.service == d && x.restore.is_some()) {
            is.push("upgrade.databases", t!("v.db_needs_restore", d = d).to_string());
        }
    }
    o.finish(is);
    Some(StackDef {
        id,
        name,
        description,
        descriptions,
        sphere,
        settings,
        secrets,
        volumes,
        services,
        order,
        backup,
        upgrade,
        file_hash: String::new(),
        file: String::new(),
        source: String::new(),
    })
}

fn decode_setting(v: &Value, p: &str, is: &mut Issues) -> Option<SettingDef> {
    let mut o = Obj::new(v, p, is)?;
    let kind = match o.req::<String>("type", is).as_deref() {
        Some("string") => SettingType::String,
        Some("int") => SettingType::Int,
        Some("port") => SettingType::Port,
        Some("bool") => SettingType::Bool,
        Some("hostname") => SettingType::Hostname,
        Some("email") => SettingType::Email,
        Some(other) => {
            is.push(&o.path_of("type"), t!("v.setting_type", t = other).to_string());
            SettingType::String
        }
        None => SettingType::String,
    };
    let default = o.raw("default").and_then(scalar);
    if let Some(d) = &default {
        if let Err(e) = check_setting_value(kind, d) {
            is.push(&o.path_of("default"), e);
        }
    }
    let description: String = o.opt("description", is).unwrap_or_default();
    o.finish(is);
    Some(SettingDef { kind, default, description })
}

/// Checks a setting value against its type; the message says what is expected.
pub fn check_setting_value(kind: SettingType, v: &str) -> Result<(), String> {
    let ok = match kind {
        SettingType::String => !v.contains('\0') && !v.contains('\n'),
        SettingType::Int => v.parse::<i64>().is_ok(),
        SettingType::Port => v.parse::<u16>().is_ok_and(|p| p > 0),
        SettingType::Bool => v == "true" || v == "false",
        SettingType::Hostname => {
            !v.is_empty()
                && v.len() <= 253
                && v.split('.').all(|l| {
                    !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-')
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        }
        SettingType::Email => {
            let mut parts = v.splitn(2, '@');
            let (l, d) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            !l.is_empty() && d.contains('.') && !v.contains(char::is_whitespace) && check_setting_value(SettingType::Hostname, d).is_ok()
        }
    };
    if ok {
        Ok(())
    } else {
        let want = match kind {
            SettingType::String => t!("v.want_string"),
            SettingType::Int => t!("v.want_int"),
            SettingType::Port => t!("v.want_port"),
            SettingType::Bool => t!("v.want_bool"),
            SettingType::Hostname => t!("v.want_hostname"),
            SettingType::Email => t!("v.want_email"),
        };
        Err(t!("v.setting_value", v = v, want = want).to_string())
    }
}

/// Names referenced as `${name}` in a template; `$$` is a literal `$`.
pub fn template_refs(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            rest = a;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            return Err(t!("v.template_dollar", s = s).to_string());
        };
        let Some(end) = body.find('}') else {
            return Err(t!("v.template_open", s = s).to_string());
        };
        out.push(body[..end].to_string());
        rest = &body[end + 1..];
    }
    Ok(out)
}

fn check_template(s: &str, p: &str, settings: &BTreeMap<String, SettingDef>, is: &mut Issues) {
    match template_refs(s) {
        Ok(refs) => {
            for r in refs {
                if !settings.contains_key(&r) {
                    let hint = if r.starts_with("secret") { t!("v.template_secret_hint").to_string() } else { String::new() };
                    is.push(p, t!("v.template_no_setting", r = r, hint = hint).to_string());
                }
            }
        }
        Err(e) => is.push(p, e),
    }
}

fn string_list(v: &Value, p: &str, is: &mut Issues) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => items(v, p, is)
            .into_iter()
            .filter_map(|(v, ip)| {
                let s = scalar(v);
                if s.is_none() {
                    is.push(&ip, t!("v.want_text").to_string());
                }
                s
            })
            .collect(),
    }
}

fn decode_service(
    v: &Value,
    p: &str,
    settings: &BTreeMap<String, SettingDef>,
    secrets: &BTreeMap<String, SecretDef>,
    volumes: &BTreeMap<String, VolumeDef>,
    is: &mut Issues,
) -> Option<ServiceDef> {
    let mut o = Obj::new(v, p, is)?;
    for (field, why) in REFUSED {
        if o.raw(field).is_some() {
            is.push(&o.path_of(field), t!("v.refused_because", why = t!(*why)).to_string());
        }
    }
    let image = match (o.raw("image"), o.opt::<String>("build", is)) {
        (Some(_), Some(_)) => {
            is.push(p, t!("v.image_and_build").to_string());
            None
        }
        (Some(_), None) => {
            let s: Option<String> = o.opt("image", is);
            s.and_then(|s| match parse_image_ref(&s) {
                Ok(i) => Some(i),
                Err(e) => {
                    is.push(&child(p, "image"), e);
                    None
                }
            })
        }
        (None, Some(r)) => {
            if !is_ident(&r) {
                is.push(&child(p, "build"), t!("v.not_recipe", r = r).to_string());
            }
            Some(ImageSource::Build { recipe: r })
        }
        (None, None) => {
            is.push(p, t!("v.no_image").to_string());
            None
        }
    };
    let command = o.raw("command").map(|c| string_list(c, &child(p, "command"), is));
    let entrypoint = o.raw("entrypoint").map(|c| string_list(c, &child(p, "entrypoint"), is));
    for (list, field) in [(&command, "command"), (&entrypoint, "entrypoint")] {
        for (i, a) in list.iter().flatten().enumerate() {
            check_template(a, &format!("{p}.{field}[{i}]"), settings, is);
        }
    }
    let mut environment = BTreeMap::new();
    if let Some(ev) = o.raw("environment") {
        let ep = child(p, "environment");
        let pairs: Vec<(String, Option<String>, String)> = match ev {
            Value::Sequence(_) => items(ev, &ep, is)
                .into_iter()
                .map(|(v, ip)| {
                    let s = scalar(v).unwrap_or_default();
                    match s.split_once('=') {
                        Some((k, val)) => (k.to_string(), Some(val.to_string()), ip),
                        None => (s, None, ip),
                    }
                })
                .collect(),
            _ => entries(ev, &ep, is).into_iter().map(|(k, v, kp)| (k, scalar(v), kp)).collect(),
        };
        for (k, val, kp) in pairs {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                is.push(&kp, t!("v.env_name", k = k).to_string());
            }
            let Some(val) = val else {
                is.push(&kp, t!("v.env_no_value", k = k).to_string());
                continue;
            };
            check_template(&val, &kp, settings, is);
            let upper = k.to_ascii_uppercase();
            let public = upper.contains("PUBLIC_KEY");
            if (upper.contains("PASSWORD") || upper.contains("SECRET") || (upper.ends_with("_KEY") && !public) || upper.contains("TOKEN"))
                && !upper.ends_with("_FILE")
                && !val.is_empty()
            {
                is.push(&kp, t!("v.env_secret", k = k).to_string());
            }
            environment.insert(k, val);
        }
    }
    let mut vmounts = Vec::new();
    if let Some(vv) = o.raw("volumes") {
        for (v, ip) in items(vv, &child(p, "volumes"), is) {
            let Some(s) = scalar(v) else {
                is.push(&ip, t!("v.volume_short_form").to_string());
                continue;
            };
            let parts: Vec<&str> = s.split(':').collect();
            let (src, target, ro) = match parts.as_slice() {
                [src, t] => (*src, *t, false),
                [src, t, "ro"] => (*src, *t, true),
                [src, t, "rw"] => (*src, *t, false),
                _ => {
                    is.push(&ip, t!("v.volume_form", s = s).to_string());
                    continue;
                }
            };
            if src.starts_with('/') || src.starts_with('.') || src.starts_with('~') {
                let why = if src.contains("docker.sock") { t!("v.mount_docker_socket") } else { t!("v.mount_host_path") };
                is.push(&ip, t!("v.refused_mount", src = src, why = why).to_string());
                continue;
            }
            if !volumes.contains_key(src) {
                is.push(&ip, t!("v.volume_undeclared", v = src).to_string());
            }
            if !target.starts_with('/') || target.contains("..") {
                is.push(&ip, t!("v.mount_target", target = target).to_string());
            }
            vmounts.push(VolumeMount { volume: src.to_string(), target: target.to_string(), read_only: ro });
        }
    }
    let tmpfs = o.raw("tmpfs").map(|t| string_list(t, &child(p, "tmpfs"), is)).unwrap_or_default();
    for (i, t) in tmpfs.iter().enumerate() {
        if !t.starts_with('/') {
            is.push(&format!("{p}.tmpfs[{i}]"), t!("v.tmpfs_target", t = t).to_string());
        }
    }
    let mut smounts = Vec::new();
    if let Some(sv) = o.raw("secrets") {
        for (v, ip) in items(sv, &child(p, "secrets"), is) {
            let (name, target) = match v {
                Value::Mapping(_) => {
                    let Some(mut so) = Obj::new(v, &ip, is) else { continue };
                    let n: String = so.req("source", is).unwrap_or_default();
                    let t: Option<String> = so.opt("target", is);
                    so.finish(is);
                    let t = t.unwrap_or_else(|| format!("/run/secrets/{n}"));
                    (n, t)
                }
                _ => {
                    let n = scalar(v).unwrap_or_default();
                    let t = format!("/run/secrets/{n}");
                    (n, t)
                }
            };
            if !secrets.contains_key(&name) {
                is.push(&ip, t!("v.secret_undeclared", name = name).to_string());
            }
            if !target.starts_with('/') || target.contains("..") {
                is.push(&ip, t!("v.secret_target", target = target).to_string());
            }
            if target.contains("docker.sock") {
                is.push(&ip, t!("v.secret_docker_socket", target = target).to_string());
            }
            smounts.push(SecretMount { secret: name, target });
        }
    }
    let mut ports = Vec::new();
    if let Some(pv) = o.raw("ports") {
        for (v, ip) in items(pv, &child(p, "ports"), is) {
            let Some(s) = scalar(v) else {
                is.push(&ip, t!("v.port_short_form").to_string());
                continue;
            };
            match parse_port(&s) {
                Ok(pd) => {
                    check_template(&pd.host_port, &ip, settings, is);
                    if template_refs(&pd.host_port).map(|r| r.is_empty()).unwrap_or(false) {
                        if let Err(e) = port_number(&pd.host_port) {
                            is.push(&ip, e);
                        }
                    }
                    ports.push(pd);
                }
                Err(e) => is.push(&ip, e),
            }
        }
    }
    let depends_on = o.raw("depends_on").map(|d| string_list(d, &child(p, "depends_on"), is)).unwrap_or_default();
    let user = o.raw("user").and_then(scalar);
    if let Some(u) = &user {
        if u == "0" || u == "root" || u.starts_with("0:") || u.starts_with("root:") {
            is.push(&child(p, "user"), t!("v.root_user").to_string());
        }
    }
    let working_dir: Option<String> = o.opt("working_dir", is);
    let read_only = o.opt::<bool>("read_only", is).unwrap_or(false);
    let cap_add = o.raw("cap_add").map(|c| string_list(c, &child(p, "cap_add"), is)).unwrap_or_default();
    for (i, c) in cap_add.iter().enumerate() {
        let c = c.trim_start_matches("CAP_");
        if !CAP_ALLOW_LIST.contains(&c) {
            is.push(&format!("{p}.cap_add[{i}]"), t!("v.capability", c = c, allowed = CAP_ALLOW_LIST.join(", ")).to_string());
        }
    }
    let cap_add: Vec<String> = cap_add.iter().map(|c| c.trim_start_matches("CAP_").to_string()).collect();
    let mem_limit = match o.raw("mem_limit").and_then(scalar) {
        Some(s) => match parse_size(&s) {
            Ok(n) if n >= 16 << 20 => n,
            Ok(_) => {
                is.push(&child(p, "mem_limit"), t!("v.mem_minimum", s = s).to_string());
                DEFAULT_MEM_LIMIT
            }
            Err(e) => {
                is.push(&child(p, "mem_limit"), e);
                DEFAULT_MEM_LIMIT
            }
        },
        None => DEFAULT_MEM_LIMIT,
    };
    let pids_limit = match o.opt::<i64>("pids_limit", is) {
        Some(n) if (16..=32768).contains(&n) => n,
        Some(n) => {
            is.push(&child(p, "pids_limit"), t!("v.pids_range", n = n).to_string());
            DEFAULT_PIDS_LIMIT
        }
        None => DEFAULT_PIDS_LIMIT,
    };
    let probe = o.raw("probe").and_then(|pv| decode_probe(pv, &child(p, "probe"), is));
    let healthcheck = o.raw("healthcheck").and_then(|hv| decode_healthcheck(hv, &child(p, "healthcheck"), is));
    o.finish(is);
    Some(ServiceDef {
        image: image?,
        command,
        entrypoint,
        environment,
        volumes: vmounts,
        tmpfs,
        secrets: smounts,
        ports,
        depends_on,
        user,
        working_dir,
        read_only,
        cap_add,
        mem_limit,
        pids_limit,
        probe,
        healthcheck,
    })
}

/// Parses `name[:tag][@sha256:<64 hex>]`.
pub fn parse_image_ref(s: &str) -> Result<ImageSource, String> {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            let hexpart = d.strip_prefix("sha256:").unwrap_or("");
            if hexpart.len() != 64 || !hexpart.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
                return Err(t!("v.digest", d = d).to_string());
            }
            (r, Some(d.to_string()))
        }
        None => (s, None),
    };
    let (name, tag) = match rest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
        _ => (rest, None),
    };
    let valid_name = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c));
    if !valid_name {
        return Err(t!("v.image_ref", s = s).to_string());
    }
    if let Some(t) = &tag {
        if t.is_empty() || t.len() > 128 || !t.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(t!("v.image_tag", t = t, s = s).to_string());
        }
    }
    if tag.is_none() && digest.is_none() {
        return Err(t!("v.image_unpinned", s = s).to_string());
    }
    Ok(ImageSource::Registry { name: name.to_string(), tag, digest })
}

/// Parses `[IP:]HOST:CONTAINER[/proto]`; without an IP, hafen binds to 127.0.0.1.
pub fn parse_port(s: &str) -> Result<PortDef, String> {
    let (body, protocol) = match s.rsplit_once('/') {
        Some((b, pr)) if pr == "tcp" || pr == "udp" => (b, pr.to_string()),
        Some((_, pr)) => return Err(t!("v.port_protocol", s = s, pr = pr).to_string()),
        None => (s, "tcp".to_string()),
    };
    // Templates may contain ':' only inside ${…}; split on the last two colons outside braces.
    let mut cuts = Vec::new();
    let mut depth = 0;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ':' if depth == 0 => cuts.push(i),
            _ => {}
        }
    }
    let (ip, host, cont) = match cuts.as_slice() {
        [a] => ("127.0.0.1", &body[..*a], &body[a + 1..]),
        [a, b] => (&body[..*a], &body[a + 1..*b], &body[b + 1..]),
        _ => return Err(t!("v.port_form", s = s).to_string()),
    };
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(t!("v.port_ip", s = s, ip = ip).to_string());
    }
    let container_port = match cont.parse::<i64>() {
        Ok(n) if (1..=65535).contains(&n) => n as u16,
        Ok(_) => return Err(t!("v.port_range", p = cont).to_string()),
        Err(_) => return Err(t!("v.container_port", s = s, c = cont).to_string()),
    };
    Ok(PortDef { host_ip: ip.to_string(), host_port: host.to_string(), container_port, protocol })
}

fn dur(o: &mut Obj, key: &str, default: Duration, is: &mut Issues) -> Duration {
    match o.raw(key).and_then(scalar) {
        Some(s) => parse_duration(&s).unwrap_or_else(|e| {
            is.push(&o.path_of(key), e);
            default
        }),
        None => default,
    }
}

fn decode_probe(v: &Value, p: &str, is: &mut Issues) -> Option<ProbeDef> {
    let mut o = Obj::new(v, p, is)?;
    let mut kinds = Vec::new();
    if let Some(hv) = o.raw("http") {
        if let Some(mut h) = Obj::new(hv, &child(p, "http"), is) {
            let port: u16 = h.req("port", is).unwrap_or(80);
            let path: String = h.opt("path", is).unwrap_or_else(|| "/".into());
            if !path.starts_with('/') {
                is.push(&h.path_of("path"), t!("v.probe_path", path = path).to_string());
            }
            let expect_status: u16 = h.opt("expect_status", is).unwrap_or(200);
            let expect_body: Option<String> = h.opt("expect_body", is);
            h.finish(is);
            kinds.push(ProbeKind::Http { port, path, expect_status, expect_body });
        }
    }
    if let Some(tv) = o.raw("tcp") {
        if let Some(mut t) = Obj::new(tv, &child(p, "tcp"), is) {
            let port: u16 = t.req("port", is).unwrap_or(0);
            t.finish(is);
            kinds.push(ProbeKind::Tcp { port });
        }
    }
    if let Some(ev) = o.raw("exec") {
        let command = string_list(ev, &child(p, "exec"), is);
        if command.is_empty() {
            is.push(&child(p, "exec"), t!("v.probe_exec_empty").to_string());
        }
        kinds.push(ProbeKind::Exec { command });
    }
    let interval = dur(&mut o, "interval", Duration::from_secs(30), is);
    let timeout = dur(&mut o, "timeout", Duration::from_secs(5), is);
    let start_period = dur(&mut o, "start_period", Duration::from_secs(60), is);
    let retries = o.opt::<u32>("retries", is).unwrap_or(3);
    if timeout > interval {
        is.push(&o.path_of("timeout"), t!("v.probe_overlap").to_string());
    }
    o.finish(is);
    if kinds.len() != 1 {
        is.push(p, t!("v.probe_one").to_string());
        return None;
    }
    Some(ProbeDef { kind: kinds.pop()?, interval, timeout, start_period, retries })
}

fn decode_healthcheck(v: &Value, p: &str, is: &mut Issues) -> Option<HealthcheckDef> {
    let mut o = Obj::new(v, p, is)?;
    let test = o.raw("test").map(|t| string_list(t, &child(p, "test"), is)).unwrap_or_default();
    if !matches!(test.first().map(String::as_str), Some("CMD") | Some("CMD-SHELL")) {
        is.push(&child(p, "test"), t!("v.healthcheck_test").to_string());
    }
    let interval = dur(&mut o, "interval", Duration::from_secs(30), is);
    let timeout = dur(&mut o, "timeout", Duration::from_secs(5), is);
    let start_period = dur(&mut o, "start_period", Duration::from_secs(60), is);
    let retries = o.opt::<u32>("retries", is).unwrap_or(3);
    o.finish(is);
    Some(HealthcheckDef { test, interval, timeout, start_period, retries })
}

fn hook_list(v: &Value, p: &str, services: &BTreeMap<String, ServiceDef>, is: &mut Issues) -> Vec<HookDef> {
    let mut out = Vec::new();
    for (hv, ip) in items(v, p, is) {
        let Some(mut o) = Obj::new(hv, &ip, is) else { continue };
        let service: String = o.req("service", is).unwrap_or_default();
        if !service.is_empty() && !services.contains_key(&service) {
            is.push(&o.path_of("service"), t!("v.unknown_service", s = service).to_string());
        }
        let command = o.raw("command").map(|c| string_list(c, &o.path_of("command"), is)).unwrap_or_default();
        if command.is_empty() {
            is.push(&ip, t!("v.hook_command").to_string());
        }
        o.finish(is);
        out.push(HookDef { service, command });
    }
    out
}

fn decode_backup(v: &Value, services: &BTreeMap<String, ServiceDef>, is: &mut Issues) -> BackupDef {
    let Some(mut o) = Obj::new(v, "backup", is) else { return BackupDef::default() };
    let pre = o.raw("pre").map(|h| hook_list(h, "backup.pre", services, is)).unwrap_or_default();
    let post = o.raw("post").map(|h| hook_list(h, "backup.post", services, is)).unwrap_or_default();
    let mut dumps = Vec::new();
    let mut files = BTreeSet::new();
    if let Some(dv) = o.raw("dumps") {
        for (d, ip) in items(dv, "backup.dumps", is) {
            let Some(mut d) = Obj::new(d, &ip, is) else { continue };
            let service: String = d.req("service", is).unwrap_or_default();
            if !service.is_empty() && !services.contains_key(&service) {
                is.push(&d.path_of("service"), t!("v.unknown_service", s = service).to_string());
            }
            let command = d.raw("command").map(|c| string_list(c, &d.path_of("command"), is)).unwrap_or_default();
            if command.is_empty() {
                is.push(&ip, t!("v.dump_command").to_string());
            }
            let file: String = d.req("file", is).unwrap_or_default();
            if file.contains('/') || file.starts_with('.') {
                is.push(&d.path_of("file"), t!("v.dump_file_name", f = file).to_string());
            } else if !file.is_empty() && !files.insert(file.clone()) {
                is.push(&d.path_of("file"), t!("v.dump_file_twice", f = file).to_string());
            }
            let restore = d.raw("restore").map(|c| string_list(c, &d.path_of("restore"), is));
            if restore.as_ref().is_some_and(|r| r.is_empty()) {
                is.push(&d.path_of("restore"), t!("v.restore_empty").to_string());
            }
            d.finish(is);
            dumps.push(DumpDef { service, command, file, restore });
        }
    }
    let max_quiesce = o.raw("max_quiesce").and_then(scalar).and_then(|s| match parse_duration(&s) {
        Ok(d) => Some(d),
        Err(e) => {
            is.push("backup.max_quiesce", e);
            None
        }
    });
    o.finish(is);
    BackupDef { pre, dumps, post, max_quiesce }
}

fn decode_upgrade(v: &Value, services: &BTreeMap<String, ServiceDef>, is: &mut Issues) -> UpgradeDef {
    let Some(mut o) = Obj::new(v, "upgrade", is) else { return UpgradeDef::default() };
    let channel = match o.opt::<String>("channel", is).as_deref() {
        None | Some("minor") => Channel::Minor,
        Some("patch") => Channel::Patch,
        Some("major") => Channel::Major,
        Some(other) => {
            is.push("upgrade.channel", t!("v.channel", c = other).to_string());
            Channel::Minor
        }
    };
    let allow_major_skip = o.opt::<bool>("allow_major_skip", is).unwrap_or(false);
    let required_versions = o.raw("required_versions").map(|r| string_list(r, "upgrade.required_versions", is)).unwrap_or_default();
    let mut migrations = Vec::new();
    if let Some(mv) = o.raw("migrations") {
        for (m, ip) in items(mv, "upgrade.migrations", is) {
            let Some(mut m) = Obj::new(m, &ip, is) else { continue };
            let to: String = m.req("to", is).unwrap_or_default();
            let service: String = m.req("service", is).unwrap_or_default();
            if !service.is_empty() && !services.contains_key(&service) {
                is.push(&m.path_of("service"), t!("v.unknown_service", s = service).to_string());
            }
            let command = m.raw("command").map(|c| string_list(c, &m.path_of("command"), is)).unwrap_or_default();
            if command.is_empty() {
                is.push(&ip, t!("v.migration_command").to_string());
            }
            m.finish(is);
            migrations.push(MigrationDef { to, service, command });
        }
    }
    let registry_image = |svc: &str| match services.get(svc).map(|s| &s.image) {
        Some(ImageSource::Registry { tag: Some(t), digest: None, .. }) => Ok(t.clone()),
        Some(_) => Err(t!("v.track_needs_tag", s = svc).to_string()),
        None => Err(t!("v.unknown_service", s = svc).to_string()),
    };
    let track: Option<String> = o.opt("track", is);
    if let Some(t) = &track {
        match registry_image(t) {
            Ok(tag) if crate::version::Version::parse(&tag).is_none() => is.push("upgrade.track", t!("v.track_not_version", tag = tag, s = t).to_string()),
            Ok(_) => {}
            Err(e) => is.push("upgrade.track", e),
        }
    }
    let mut with = Vec::new();
    if let Some(wv) = o.raw("with") {
        match wv {
            Value::Mapping(m) => {
                for (k, v) in m {
                    let Some(prefix) = scalar(k) else { continue };
                    let p = format!("upgrade.with.{prefix}");
                    if crate::version::Version::parse(&prefix).is_none() {
                        is.push(&p, t!("v.not_version_prefix", p = prefix).to_string());
                    }
                    let mut tags = BTreeMap::new();
                    match v {
                        Value::Mapping(sm) => {
                            for (sk, sv) in sm {
                                let (Some(svc), Some(tag)) = (scalar(sk), scalar(sv)) else { continue };
                                if let Err(e) = registry_image(&svc) {
                                    is.push(&p, e);
                                }
                                if track.as_deref() == Some(svc.as_str()) {
                                    is.push(&p, t!("v.with_tracked", s = svc).to_string());
                                }
                                tags.insert(svc, tag);
                            }
                        }
                        _ => is.push(&p, t!("v.with_tags_map").to_string()),
                    }
                    with.push((prefix, tags));
                }
            }
            _ => is.push("upgrade.with", t!("v.with_map").to_string()),
        }
        if track.is_none() {
            is.push("upgrade.with", t!("v.with_needs_track").to_string());
        }
    }
    let databases = o.raw("databases").map(|r| string_list(r, "upgrade.databases", is)).unwrap_or_default();
    for d in &databases {
        if !services.contains_key(d) {
            is.push("upgrade.databases", t!("v.unknown_service", s = d).to_string());
        }
    }
    let versions = decode_versions(o.raw("versions"), services, track.is_some(), is);
    let mut health_deadline = UpgradeDef::default().health_deadline;
    if let Some(s) = o.raw("health_deadline").and_then(scalar) {
        match parse_duration(&s) {
            Ok(d) if d >= Duration::from_secs(5) => health_deadline = d,
            Ok(_) => is.push("upgrade.health_deadline", t!("v.deadline_short", s = s).to_string()),
            Err(e) => is.push("upgrade.health_deadline", e),
        }
    }
    o.finish(is);
    UpgradeDef { channel, allow_major_skip, required_versions, migrations, track, with, databases, versions, health_deadline }
}

/// `upgrade.versions`: version → (service → recipe) for a stack built from Debian's packages.
/// Each version parses, each service exists and is built from a recipe, each recipe is a
/// recipe's name, and the services' own recipes are exactly one version (where a first deploy
/// starts). Not beside `track` (a stack's versions come from one place).
fn decode_versions(v: Option<&Value>, services: &BTreeMap<String, ServiceDef>, tracked: bool, is: &mut Issues) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let Some(v) = v else { return out };
    let Value::Mapping(m) = v else {
        is.push("upgrade.versions", t!("v.versions_map").to_string());
        return out;
    };
    if tracked {
        is.push("upgrade.versions", t!("v.versions_and_track").to_string());
    }
    for (k, vv) in m {
        let Some(version) = scalar(k) else { continue };
        let p = format!("upgrade.versions.{version}");
        if crate::version::Version::parse(&version).is_none() {
            is.push(&p, t!("v.not_version_prefix", p = version).to_string());
        }
        let mut recipes = BTreeMap::new();
        match vv {
            Value::Mapping(sm) => {
                for (sk, sv) in sm {
                    let (Some(svc), Some(recipe)) = (scalar(sk), scalar(sv)) else { continue };
                    match services.get(&svc).map(|s| &s.image) {
                        Some(ImageSource::Build { .. }) => {}
                        Some(_) => is.push(&p, t!("v.versions_needs_build", s = svc).to_string()),
                        None => is.push(&p, t!("v.unknown_service", s = svc).to_string()),
                    }
                    if !is_ident(&recipe) {
                        is.push(&p, t!("v.not_recipe", r = recipe).to_string());
                    }
                    recipes.insert(svc, recipe);
                }
            }
            _ => is.push(&p, t!("v.with_tags_map").to_string()),
        }
        out.insert(version, recipes);
    }
    let own: BTreeMap<String, String> = services
        .iter()
        .filter_map(|(n, s)| match &s.image {
            ImageSource::Build { recipe } => Some((n.clone(), recipe.clone())),
            _ => None,
        })
        .filter(|(n, _)| out.values().any(|m: &BTreeMap<String, String>| m.contains_key(n)))
        .collect();
    if !out.is_empty() && !out.values().any(|m| *m == own) {
        let own_text = own.iter().map(|(s, r)| format!("{s}: {r}")).collect::<Vec<_>>().join(", ");
        is.push("upgrade.versions", t!("v.versions_own", own = own_text).to_string());
    }
    out
}

/// Dependency order (dependencies first), or the cycle found.
pub fn topo_order(services: &BTreeMap<String, ServiceDef>) -> Result<Vec<String>, Vec<String>> {
    fn visit(
        n: &str,
        s: &BTreeMap<String, ServiceDef>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        match state.get(n) {
            Some(2) => return Ok(()),
            Some(1) => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut c = path[start..].to_vec();
                c.push(n.to_string());
                return Err(c);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        if let Some(def) = s.get(n) {
            for d in &def.depends_on {
                if s.contains_key(d) {
                    visit(d, s, state, path, out)?;
                }
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        out.push(n.to_string());
        Ok(())
    }
    let mut state = BTreeMap::new();
    let mut out = Vec::new();
    for n in services.keys() {
        visit(n, services, &mut state, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Puts the process-wide locale back when dropped, also when an assertion fails.
    struct RestoreLocale(String);
    impl Drop for RestoreLocale {
        fn drop(&mut self) {
            rust_i18n::set_locale(&self.0);
        }
    }

    /// A description is one text or one per language; another key is named.
    #[test]
    fn versions_by_recipe_are_checked() {
        let base = "version: 1\nid: v\nservices:\n  server:\n    build: tryton60\n  db:\n    build: postgres15\n  web:\n    image: \"nginx:1\"\n";
        let ok = format!("{base}upgrade:\n  versions:\n    \"6.0\": {{server: tryton60, db: postgres15}}\n    \"7.0\": {{server: tryton70, db: postgres17}}\n");
        let d = parse_stack("v/stack.yaml", &ok, Some("v")).unwrap();
        assert_eq!(d.upgrade.versions["7.0"]["db"], "postgres17");
        assert_eq!(d.recipes_of("server"), ["tryton60", "tryton70"]);
        assert!(d.recipes_of("web").is_empty());
        let bad = |upgrade: &str| parse_stack("v/stack.yaml", &format!("{base}upgrade:\n{upgrade}"), Some("v")).err().map(|i| i.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n")).unwrap_or_default();
        // A service from a registry, an unknown one, a bad recipe name, a bad version.
        assert!(bad("  versions:\n    \"6.0\": {server: tryton60, db: postgres15}\n    \"7.0\": {web: nginx2}\n").contains("not built from a recipe"));
        assert!(bad("  versions:\n    \"6.0\": {server: tryton60, db: postgres15, cache: redis}\n").contains("cache"));
        assert!(bad("  versions:\n    \"6.0\": {server: tryton60, db: postgres15}\n    \"7.0\": {server: \"Tryton 7\"}\n").contains("Tryton 7"));
        assert!(bad("  versions:\n    \"6.0\": {server: tryton60, db: postgres15}\n    latest: {server: tryton70}\n").contains("latest"));
        // The services' own recipes must be one of the versions.
        assert!(bad("  versions:\n    \"7.0\": {server: tryton70, db: postgres17}\n").contains("server: tryton60"));
        // Not beside `track`.
        assert!(bad("  track: web\n  versions:\n    \"6.0\": {server: tryton60, db: postgres15}\n").contains("not both"));
    }

    #[test]
    fn a_description_per_language() {
        let base = "version: 1\nid: d\nservices:\n  app:\n    image: \"nginx:1\"\n";
        let d = parse_stack("d/stack.yaml", &format!("{base}description:\n  de: Kalender\n  en: Calendars\n"), Some("d")).unwrap();
        assert_eq!((d.description.as_str(), d.descriptions.get("de").map(String::as_str)), ("Calendars", Some("Kalender")));
        let d = parse_stack("d/stack.yaml", &format!("{base}description: Kalender\n"), Some("d")).unwrap();
        assert!(d.description == "Kalender" && d.descriptions.is_empty());
        let is = parse_stack("d/stack.yaml", &format!("{base}description:\n  fr: Calendriers\n"), Some("d")).unwrap_err();
        assert!(is.len() == 1 && is[0].path == "description" && is[0].message.contains("fr"), "{is:?}");
    }

    /// Bad input of every size is named and refused; these tests look at where and which number,
    /// never at the words (see the language test below).
    #[test]
    fn limits_ports_and_the_byte_order_mark() {
        let good = "version: 1\nid: bom\nservices:\n  app:\n    image: \"nginx:1\"\n    ports: [\"127.0.0.1:8080:80\"]\n";
        let d = parse_stack("bom/stack.yaml", &format!("\u{feff}{good}"), Some("bom")).expect("a BOM before the first key reads as YAML does");
        assert_eq!(d.id, "bom");
        let issues = |src: &str| parse_stack("x/stack.yaml", src, None).unwrap_err();
        for (port, shown) in [("70000:80", "70000"), ("0:80", "0"), ("8080:70000", "70000"), ("8080:-1", "-1")] {
            let is = issues(&good.replace("127.0.0.1:8080:80", port));
            assert!(is.len() == 1 && is[0].path == "services.app.ports[0]" && is[0].message.contains(&format!("{shown} ")), "{port}: {is:?}");
        }
        let big = format!("{good}# {}\n", "x".repeat(MAX_FILE_BYTES));
        let is = issues(&big);
        assert!(is.len() == 1 && is[0].message.contains(&MAX_FILE_BYTES.to_string()), "{is:?}");
        let deep = format!("{good}labels: {}1{}\n", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let is = issues(&deep);
        assert!(is.len() == 1 && is[0].message.contains(&MAX_DEPTH.to_string()), "{is:?}");
        let many: String = (0..=MAX_ENTRIES).map(|i| format!("  v{i}: {{kind: data}}\n")).collect();
        let is = issues(&format!("{good}volumes:\n{many}"));
        assert!(is.len() == 1 && is[0].path == "volumes" && is[0].message.contains(&(MAX_ENTRIES + 1).to_string()), "{is:?}");
    }

    /// Fuzzing on stable Rust, in the normal test run: every shipped stack file, mutated at
    /// random (bytes replaced, removed, inserted; cut short), and arbitrary text are read without
    /// a panic — as a definition or as a list of problems with their place.
    mod fuzz {
        use super::super::parse_stack;
        use proptest::prelude::*;

        const SHIPPED: &[&str] = &[
            include_str!("../../../stacks/tryton/stack.yaml"),
            include_str!("../../../stacks/nextcloud/stack.yaml"),
            include_str!("../../../stacks/radicale/stack.yaml"),
            include_str!("../../../stacks/erpnext/stack.yaml"),
            include_str!("../../../stacks/aamdigital/stack.yaml"),
        ];

        fn mutate(src: &str, edits: &[(usize, u8, u8)], cut: Option<usize>) -> String {
            let mut b = src.as_bytes().to_vec();
            for &(at, byte, op) in edits {
                if b.is_empty() {
                    break;
                }
                let i = at % b.len();
                match op % 3 {
                    0 => b[i] = byte,
                    1 => {
                        b.remove(i);
                    }
                    _ => b.insert(i, byte),
                }
            }
            if let Some(c) = cut {
                b.truncate(c % (b.len() + 1));
            }
            String::from_utf8_lossy(&b).into_owned()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1500))]
            #[test]
            fn a_mutated_shipped_stack_file_never_panics(which in 0..SHIPPED.len(), edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..12), cut in proptest::option::of(any::<usize>())) {
                let src = mutate(SHIPPED[which], &edits, cut);
                if let Err(issues) = parse_stack("fuzz/stack.yaml", &src, None) {
                    prop_assert!(!issues.is_empty());
                }
            }

            #[test]
            fn arbitrary_text_never_panics(src in "(?s).{0,600}") {
                let _ = parse_stack("fuzz/stack.yaml", &src, None);
            }
        }
    }

    const FAULTS: &str = r#"version: 1
id: Bad.Id
services:
  app:
    image: "nginx:1"
    privileged: true
    environment:
      DB_PASSWORD: hunter2
    depends_on: [ghost]
"#;

    fn messages() -> Vec<String> {
        parse_stack("x/stack.yaml", FAULTS, None).unwrap_err().into_iter().map(|i| i.message).collect()
    }

    /// The validator speaks the reader's language: the process-wide locale, as the CLI sets it.
    /// That locale is global and tests run in parallel, so this is the only test of this crate
    /// that reads validator texts, and it sets both languages itself, one after the other.
    /// English expectations live in tests/catalogue.rs (its own process, English by default).
    #[test]
    fn faults_are_reported_in_german_and_in_english() {
        let _restore = RestoreLocale(rust_i18n::locale().to_string());
        rust_i18n::set_locale("de");
        let de = messages();
        rust_i18n::set_locale("en");
        let en = messages();
        let all = |m: &[String]| m.join("\n");
        assert_eq!(de.len(), 4, "{}", all(&de));
        assert_eq!(en.len(), 4, "{}", all(&en));
        for m in &de {
            for english in ["is not", "unknown", "refused", "use ", "v."] {
                assert!(!m.contains(english), "`{english}` in German message: {m}");
            }
        }
        for (msgs, expected) in [
            (&de, ["`Bad.Id` ist keine gültige Kennung", "abgelehnt: privilegierte Container", "`DB_PASSWORD` sieht nach einem Geheimnis", "unbekannten Dienst `ghost`"]),
            (&en, ["`Bad.Id` is not a valid id", "refused: privileged containers", "`DB_PASSWORD` looks like a secret", "unknown service `ghost`"]),
        ] {
            for e in expected {
                assert!(msgs.iter().any(|m| m.contains(e)), "`{e}` missing in:\n{}", all(msgs));
            }
        }
        // Every key the validator renders exists in both languages (a wrong key would show itself).
        let sources = [include_str!("load.rs"), include_str!("decode.rs"), include_str!("render.rs")];
        let mut keys: Vec<&str> = REFUSED.iter().map(|(_, k)| *k).collect();
        for src in sources {
            keys.extend(src.split("t!(\"").skip(1).filter_map(|rest| rest.split('"').next()));
        }
        keys.extend(["v.kind.null", "v.kind.bool", "v.kind.number", "v.kind.string", "v.kind.list", "v.kind.mapping", "v.kind.tagged"]);
        assert!(keys.len() > 90, "{}", keys.len());
        for k in keys.into_iter().filter(|k| k.starts_with("v.")) {
            for lang in ["de", "en"] {
                assert!(crate::_rust_i18n_try_translate(lang, k).is_some(), "`{k}` has no {lang} text");
            }
        }
    }
}
