//! Stack definitions: every file under stacks/ validates; each renders to exactly the container
//! specs pinned in tests/golden/<id>.json (regenerate with HAFEN_BLESS=1 after a deliberate
//! change and review the diff); bad definitions are refused with every error and its line.

use hafen_daemon::catalogue::{self, load::parse_stack, render, Catalogue};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    // The `hafen` package lives in src/cli; the repository is two levels up.
    // As cargo (and tests/timed.py) give it when running the test, else as compiled in: a
    // binary built in another clone that shares the target directory must not look there.
    let package = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    package.join("../..").canonicalize().expect("repository root")
}

#[test]
fn every_stack_in_the_catalogue_validates() {
    let c = Catalogue::load(&root().join("stacks"));
    assert!(c.issues.is_empty(), "{}", c.issues.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n"));
    for id in ["tryton", "radicale"] {
        assert!(c.stacks.contains_key(id), "stack {id} missing");
    }
}

/// Renders with defaults (plus the required settings a golden file needs) and a fixed run dir.
fn render_golden(stack: &hafen_daemon::catalogue::StackDef) -> String {
    let mut given = BTreeMap::new();
    for (k, d) in &stack.settings {
        if d.default.is_none() {
            let v = match d.kind {
                hafen_daemon::catalogue::model::SettingType::Hostname => "cloud.example.org",
                hafen_daemon::catalogue::model::SettingType::Email => "it@example.org",
                hafen_daemon::catalogue::model::SettingType::Port => "8080",
                hafen_daemon::catalogue::model::SettingType::Int => "1",
                hafen_daemon::catalogue::model::SettingType::Bool => "false",
                hafen_daemon::catalogue::model::SettingType::String => "example",
            };
            given.insert(k.clone(), v.to_string());
        }
    }
    let settings = render::resolve_settings(stack, &given).expect("settings");
    let mut images = BTreeMap::new();
    for (name, s) in &stack.services {
        let r = match &s.image {
            // Recipe images are named by recipe only here, so the golden file does not change
            // with every edit of a recipe (the hash is tested in images::tests).
            hafen_daemon::catalogue::model::ImageSource::Build { recipe } => format!("hafen/{recipe}:<recipe-hash>"),
            other => other.display(),
        };
        images.insert(name.clone(), r);
    }
    let specs = render::render(stack, &settings, &images, Path::new("/var/lib/hafen/run")).expect("render");
    let with_labels: Vec<serde_json::Value> = specs
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap();
            v["labels"] = serde_json::to_value(hafen_core::spec::spec_labels(s).into_iter().filter(|(k, _)| !k.ends_with("spec-hash")).collect::<BTreeMap<_, _>>()).unwrap();
            v["container_name"] = s.name().into();
            v["network"] = s.network().into();
            v
        })
        .collect();
    serde_json::to_string_pretty(&with_labels).unwrap() + "\n"
}

#[test]
fn golden_container_specs() {
    let c = Catalogue::load(&root().join("stacks"));
    let bless = std::env::var("HAFEN_BLESS").is_ok();
    let mut failures = Vec::new();
    for (id, stack) in &c.stacks {
        let got = render_golden(stack);
        let path = root().join("tests/golden").join(format!("{id}.json"));
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == got => {}
            Ok(_) => failures.push(format!("{id}: rendered specs differ from {}; if the change is intended, run HAFEN_BLESS=1 cargo test --test catalogue and review the diff", path.display())),
            Err(_) => failures.push(format!("{id}: no golden file {}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_golden_file_has_its_stack() {
    for e in std::fs::read_dir(root().join("tests/golden")).unwrap() {
        let p = e.unwrap().path();
        let id = p.file_stem().unwrap().to_string_lossy().to_string();
        assert!(root().join("stacks").join(&id).join("stack.yaml").is_file(), "golden file {} has no stack", p.display());
    }
}

const MANY_MISTAKES: &str = r#"version: 1
id: broken
settings:
  port: {type: port, default: 99999}
volumes:
  data: {kind: data}
services:
  app:
    image: nginx
    imgae: typo
    mem_limit: lots
    ports:
      - "${nope}:80"
    volumes:
      - undeclared:/x
  db:
    build: postgres15
    depends_on: [ghost]
    probe:
      tcp: {port: 5432}
      http: {port: 80}
"#;

#[test]
fn several_mistakes_are_all_reported_with_lines() {
    let issues = parse_stack("broken/stack.yaml", MANY_MISTAKES, Some("broken")).unwrap_err();
    let lines: Vec<(Option<usize>, String)> = issues.iter().map(|i| (i.line, i.to_string())).collect();
    let expect = [
        (4, "99999"),
        (9, "neither a tag nor a digest"),
        (10, "unknown field `imgae` (did you mean `image`?)"),
        (11, "`lots` is not a size"),
        (13, "`${nope}` names no setting"),
        (15, "volume `undeclared` is not declared"),
        (18, "unknown service `ghost`"),
        (19, "exactly one of `http`, `tcp` or `exec`"),
    ];
    for (line, text) in expect {
        assert!(
            lines.iter().any(|(l, m)| *l == Some(line) && m.contains(text)),
            "expected line {line} to report `{text}`; got:\n{}",
            lines.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
    assert!(issues.iter().all(|i| i.file == "broken/stack.yaml"));
}

#[test]
fn unknown_top_level_field_is_rejected() {
    let src = "version: 1\nid: x\nservices:\n  a: {image: 'a:1'}\nextra: 1\n";
    let e = parse_stack("x/stack.yaml", src, Some("x")).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, Some(5));
    assert!(e[0].message.contains("unknown field `extra`"), "{}", e[0]);
}

#[test]
fn dangerous_requests_are_refused_with_reasons() {
    let src = r#"version: 1
id: evil
volumes:
  v: {kind: data}
services:
  a:
    image: "a:1"
    privileged: true
    network_mode: host
    pid: host
    cap_add: [SYS_ADMIN]
    devices: ["/dev/sda:/dev/sda"]
    security_opt: ["seccomp=unconfined"]
    user: root
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - /etc:/host-etc
    environment:
      DB_PASSWORD: hunter2
"#;
    let e = parse_stack("evil/stack.yaml", src, Some("evil")).unwrap_err();
    let all: String = e.iter().map(|i| i.to_string() + "\n").collect();
    for (line, text) in [
        (8, "privileged containers can take over the host"),
        (9, "host or shared networking"),
        (10, "host's process namespace"),
        (11, "capability `SYS_ADMIN` is refused"),
        (12, "host devices"),
        (13, "set by hafen's policy"),
        (14, "running as root is refused"),
        (16, "the Docker socket gives full control of the host"),
        (17, "host paths cannot be mounted"),
        (19, "looks like a secret written into the environment"),
    ] {
        assert!(e.iter().any(|i| i.line == Some(line) && i.message.contains(text)), "line {line}: `{text}` missing in:\n{all}");
    }
}

#[test]
fn stack_check_cli_reports_all_errors_and_fails() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("broken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stack.yaml"), MANY_MISTAKES).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hafen"))
        .args(["stack", "check"])
        .arg(&dir)
        .env("HAFEN_LANG", "en")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("8 problem(s) found") || err.contains("problem(s) found"), "{err}");
    assert!(err.contains("stack.yaml:10: services.app.imgae"), "{err}");
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_hafen")).args(["stack", "check"]).arg(root().join("stacks")).env("HAFEN_LANG", "de").output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("gültig"));
}

#[test]
fn settings_are_checked_before_anything_happens() {
    let c = Catalogue::load(&root().join("stacks"));
    let t = &c.stacks["tryton"];
    let bad = BTreeMap::from([("http_port".to_string(), "eighty".to_string()), ("colour".to_string(), "red".to_string())]);
    let e = render::resolve_settings(t, &bad).unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e.iter().any(|m| m.contains("no setting `colour`")));
    assert!(e.iter().any(|m| m.contains("port number")));
    let _ = catalogue::check_paths(&[root().join("stacks")]);
}

#[test]
fn config_check_reports_every_problem_and_accepts_a_good_file() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.yaml");
    std::fs::write(&bad, "state_dir: /srv/hafen\nreconcile_interval: often\nlog_format: xml\nsokcet: /run/x.sock\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hafen")).args(["config", "check"]).arg(&bad).env("HAFEN_LANG", "en").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in ["bad.yaml:2: reconcile_interval", "bad.yaml:3: log_format", "bad.yaml:4: sokcet: unknown field `sokcet` (did you mean `socket`?)"] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    let good = d.path().join("good.yaml");
    std::fs::write(&good, "state_dir: /srv/hafen\nreconcile_interval: 10s\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hafen")).args(["config", "check"]).arg(&good).env("HAFEN_LANG", "de").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Konfiguration gültig"));
}
