//! Updates as transactions, on the real engine with a real registry (Debian's docker-registry,
//! started here on 127.0.0.1): a fixture stack (PostgreSQL from hafen's Debian images, a small
//! app image in versions 1.0, 2.0 and a broken 3.0) moves 1.0 → 2.0 with its database going from
//! PostgreSQL 15 to 17 by dump and load and a migration; the daemon is killed before every step
//! of that hop in turn and always comes back fully on 1.0 or fully on 2.0, healthy, data intact;
//! the broken 3.0 is rolled back by itself with the data exactly as before and one notification;
//! pins, rollback of a committed hop, an unreachable registry and a missing tag; a registry with
//! token authentication.

mod common;
use common::*;
use std::process::Command;
use serde_json::json;
use std::time::Duration;

/// A registry started for one test (stopped when dropped).
struct Reg {
    dir: tempfile::TempDir,
    host: String,
}

impl Reg {
    fn start(token: Option<(&str, &str)>) -> Reg {
        let dir = tempfile::Builder::new().prefix("hafen-registry-").tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(root().join("tests/servers/registry.sh"));
        cmd.arg(dir.path()).arg(port.to_string());
        if let Some((u, p)) = token {
            cmd.arg("--token").arg(free_port().to_string()).arg(u).arg(p);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "registry.sh: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        Reg { dir, host: format!("127.0.0.1:{port}") }
    }

    fn stop(&self) {
        Command::new(root().join("tests/servers/stop.sh")).arg(self.dir.path()).status().unwrap();
    }

    /// Tags a local image as `host/name` and pushes it.
    fn push(&self, local: &str, name: &str) -> String {
        let r = format!("{}/{name}", self.host);
        sh(&["docker", "tag", local, &r]);
        sh(&["docker", "push", "-q", &r]);
        r
    }
}

impl Drop for Reg {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sh(args: &[&str]) -> String {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(o.status.success(), "{}: {}{}", args.join(" "), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Builds an image from a Dockerfile given as text (no context).
fn build(tag: &str, dockerfile: &str) {
    use std::io::Write;
    let mut c = Command::new("docker").args(["build", "-q", "-t", tag, "-"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(dockerfile.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "docker build {tag}: {}", String::from_utf8_lossy(&o.stderr));
}

fn recipe_tag(recipe: &str) -> String {
    hafen_daemon::images::tag_for(&root().join("images"), recipe).unwrap()
}

/// The app image: `ok` decides whether its probe file exists (3.0 is the broken one).
fn app_image(tag: &str, version: &str, ok: bool) {
    // The broken version's server (the stack runs `sleep infinity`) stops at once, saying why,
    // as a server with a bad configuration would; its migrations run as usual.
    let touch = if ok {
        " && touch /etc/upapp-ok".to_string()
    } else {
        format!(" && printf '#!/bin/sh\\necho \"upapp {version}: the configuration is invalid, stopping\" >&2\\nexit 3\\n' > /usr/local/bin/sleep && chmod 755 /usr/local/bin/sleep")
    };
    build(tag, &format!("FROM hafen/debian:bookworm\nRUN mkdir /data && chown 1000:1000 /data{touch}\nLABEL org.hafen.test.version={version}\n"));
}

const UPAPP: &str = r#"# Test fixture for updates, written by tests/e2e_update.rs with the registry's address.
version: 1
id: upapp
name: Update fixture
secrets:
  db_password: {length: 20}
volumes:
  db: {kind: db, backup: false}
  data: {kind: data}
services:
  db:
    image: REG/hafen/pg:15
    user: "999:999"
    environment:
      POSTGRES_USER: app
      POSTGRES_DB: app
      POSTGRES_PASSWORD_FILE: /run/secrets/db_password
    secrets: [db_password]
    volumes: ["db:/var/lib/postgresql/data"]
    tmpfs: [/tmp]
    mem_limit: 256m
    pids_limit: 128
    probe:
      exec: [pg_isready, -U, app, -d, app, -h, 127.0.0.1]
      interval: 2s
      timeout: 2s
      start_period: 60s
  web:
    image: REG/hafen/upapp:1.0
    user: "1000:1000"
    depends_on: [db]
    command: [sleep, infinity]
    volumes: ["data:/data"]
    mem_limit: 64m
    pids_limit: 32
    probe:
      exec: [test, -f, /etc/upapp-ok]
      interval: 2s
      timeout: 2s
      retries: 2
      start_period: 4s
backup:
  dumps:
    - service: db
      command: [pg_dump, -U, app, --no-owner, app]
      file: app.sql
      restore: [psql, -U, app, -d, app, -v, ON_ERROR_STOP=1, -q]
  max_quiesce: 2m
upgrade:
  track: web
  channel: major
  with:
    "2": {db: "17"}
  databases: [db]
  migrations:
    - {to: "2.0", service: web, command: [sh, -c, "echo 2 > /data/schema"]}
    - {to: "3.0", service: web, command: [sh, -c, "echo 3 > /data/schema"]}
  health_deadline: 40s
"#;

fn psql(stack: &str, sql: &str) -> String {
    sh(&["docker", "exec", &format!("hafen-{stack}-db"), "psql", "-U", "app", "-d", "app", "-tAc", sql])
}

fn schema(stack: &str) -> String {
    docker(&["exec", &format!("hafen-{stack}-web"), "cat", "/data/schema"])
}

fn pg_major(stack: &str) -> String {
    psql(stack, "SHOW server_version").split('.').next().unwrap_or("").to_string()
}

/// The version the stack runs (what `update check` reports) and whether it is healthy.
fn state(d: &Daemon, id: &str) -> (String, String) {
    let c = d.json(&["update", "check", id]);
    let show = d.json(&["stack", "show", id]);
    (c[0]["current"].as_str().unwrap_or("?").to_string(), show["summary"]["state"].as_str().unwrap_or("?").to_string())
}

fn wait_healthy(d: &Daemon, id: &str) {
    let ok = wait_for(Duration::from_secs(240), || {
        let show = d.json(&["stack", "show", id]);
        (show["summary"]["state"] == "healthy").then_some(())
    });
    assert!(ok.is_some(), "{id} not healthy: {}\n{}", d.json(&["stack", "show", id]), tail(&d.log(), 60));
}

fn no_open_update(d: &Daemon, id: &str) -> serde_json::Value {
    let (list, _) = wait_for(Duration::from_secs(300), || {
        let l = d.json(&["update", "list", id]);
        l.as_array().unwrap().iter().all(|u| u["state"] != "running" && u["state"] != "rolling_back").then_some(l)
    })
    .unwrap_or_else(|| panic!("an update stayed open:\n{}", tail(&d.log(), 80)));
    list
}

#[test]
fn updates_are_transactions_killed_at_every_step_rolled_back_when_broken() {
    ensure_recipes(&["postgres15", "postgres17"]);
    let reg = Reg::start(None);
    reg.push(&recipe_tag("postgres15"), "hafen/pg:15");
    reg.push(&recipe_tag("postgres17"), "hafen/pg:17");
    for (v, ok) in [("1.0", true), ("2.0", true), ("3.0", false)] {
        let local = format!("hafen-test/upapp:{v}");
        app_image(&local, v, ok);
        reg.push(&local, &format!("hafen/upapp:{v}"));
    }
    let id = "upapp";
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("upapp")).unwrap();
    std::fs::write(src.path().join("upapp/stack.yaml"), UPAPP.replace("REG", &reg.host)).unwrap();
    let mut d = Daemon::new(&[(&src.path().join("upapp"), id)]);
    let hooks = Receiver::start();
    let target = d.dir.path().join("usb");
    d.append_config(&format!(
        "backup_targets:\n  - name: usb\n    path: {}\nnotify:\n  webhooks:\n    - url: {}\nupdates:\n  stacks:\n    upapp: {{mode: manual}}\n",
        target.display(),
        hooks.url
    ));
    d.start();
    d.ok(&["stack", "deploy", id, "--wait", "240"]);
    wait_healthy(&d, id);
    psql(id, "CREATE TABLE clients (name text); INSERT INTO clients VALUES ('Kinderhaus Am Park')");
    assert_eq!(pg_major(id), "15");

    // Preconditions, checked before anything changes: without a recovery key, and without a
    // backup target, an update is refused with what to do, in German and in English.
    let containers = || docker(&["ps", "-q", "--no-trunc", "--filter", &format!("label=org.hafen.stack={id}")]);
    let before = containers();
    let refused = |d: &Daemon, en: &str, de: &str| {
        let o = d.cli(&["update", "apply", id, "--to", "2.0"]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success() && err.contains(en), "{err}");
        let o = d.cli_in("de", &["update", "apply", id, "--to", "2.0"]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success() && err.contains(de) && !err.contains("updates make"), "{err}");
        assert_eq!(containers(), before, "a refused update changed containers");
        assert_eq!(d.json(&["update", "list", id]), serde_json::json!([]), "a refused update left a record");
    };
    refused(&d, "hafen keys init", "hafen keys init");
    // The plan and the check say so up front.
    let plan = d.ok(&["update", "plan", id, "--to", "2.0"]);
    assert!(plan.contains("Before this update can run") && plan.contains("hafen keys init"), "{plan}");
    let check = d.ok(&["update", "check", id]);
    assert!(check.contains("Before this update can run") && check.contains("hafen keys init"), "{check}");
    let config = std::fs::read_to_string(&d.config).unwrap();
    assert!(d.sigterm().success());
    std::fs::write(&d.config, config.replace(&format!("backup_targets:\n  - name: usb\n    path: {}\n", target.display()), "")).unwrap();
    d.start();
    refused(&d, "backup_targets:", "backup_targets:");
    assert!(d.sigterm().success());
    std::fs::write(&d.config, &config).unwrap();
    d.start();
    d.ok(&["keys", "init"]);

    // Check and plan: every major in turn, the database move and the migration named.
    let c = d.json(&["update", "check", id]);
    assert_eq!(c[0]["current"], "1.0", "{c}");
    assert_eq!(c[0]["path"], serde_json::json!(["2.0", "3.0"]), "{c}");
    let plan = d.json(&["update", "plan", id, "--to", "2.0"]);
    let hop = &plan["hops"][0];
    assert_eq!(hop["database_moves"], serde_json::json!(["db"]), "{plan}");
    assert_eq!(hop["images"]["db"][1], format!("{}/hafen/pg:17", reg.host), "{plan}");
    assert!(hop["migrations"][0].as_str().unwrap().contains("echo 2"), "{plan}");
    let text = d.ok(&["update", "plan", id]);
    assert!(text.contains("1.0 → 2.0") && text.contains("2.0 → 3.0"), "{text}");

    // Kill -9 before each step of the hop 1.0 → 2.0, and once in the middle of a rollback:
    // afterwards fully on 1.0 or fully on 2.0, healthy, data as it was.
    let paused = |d: &Daemon, step: &str| d.log().matches(&format!("update paused before step {step}")).count();
    let kill_at = |d: &mut Daemon, step: &str| {
        let before = paused(d, step);
        d.env = vec![("HAFEN_TEST_PAUSE_UPDATE".into(), step.into())];
        d.start();
        before
    };
    for step in ["backup", "pull", "stop", "switch", "data", "health", "commit", "rollback"] {
        d.sigterm();
        let first = if step == "rollback" { "data" } else { step };
        let before = kill_at(&mut d, first);
        let mut apply = Command::new(bin()).arg("--config").arg(&d.config).args(["update", "apply", id, "--to", "2.0"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        assert!(wait_for(Duration::from_secs(300), || (paused(&d, first) > before).then_some(())).is_some(), "never reached {first}:\n{}", tail(&d.log(), 60));
        d.kill9();
        let _ = apply.wait();
        if step == "rollback" {
            // The restarted daemon rolls the interrupted hop back, and is killed in the middle.
            let before = kill_at(&mut d, "rollback");
            assert!(wait_for(Duration::from_secs(120), || (paused(&d, "rollback") > before).then_some(())).is_some(), "rollback not reached:\n{}", tail(&d.log(), 60));
            d.kill9();
        }
        d.env.clear();
        d.start();
        let list = no_open_update(&d, id);
        wait_healthy(&d, id);
        if list[0]["state"] == "committed" {
            // Killed after the commit was written: fully on 2.0. Take it back for the next round.
            let (v, _) = state(&d, id);
            assert_eq!(v, "2.0", "{step}: {list}");
            assert_eq!(pg_major(id), "17", "{step}");
            d.ok(&["update", "rollback", id, "--yes"]);
            wait_healthy(&d, id);
        }
        let (v, h) = state(&d, id);
        assert_eq!((v.as_str(), h.as_str()), ("1.0", "healthy"), "after a kill before {step}: {list}\n{}", tail(&d.log(), 40));
        assert_eq!(pg_major(id), "15", "after a kill before {step}");
        assert_eq!(psql(id, "SELECT name FROM clients"), "Kinderhaus Am Park", "after a kill before {step}");
        assert_eq!(schema(id), "", "the migration's mark must be gone after a kill before {step}");
        assert!(docker(&["ps", "-a", "--format", "{{.Names}}"]).lines().all(|n| !n.contains("upapp-web-migrate")), "a migration container was left behind");
        // Nothing put aside stays beside the volumes (no `_data.pre-restore-…`).
        for v in ["db", "data"] {
            let mp = docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &format!("hafen-{id}-{v}")]);
            let parent = std::path::Path::new(mp.trim()).parent().unwrap().to_path_buf();
            let beside: Vec<String> = std::fs::read_dir(&parent).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).filter(|n| n != "_data").collect();
            assert!(beside.is_empty(), "after a kill before {step}: left beside the volume {v}: {beside:?}");
        }
    }
    // A hop rolled back at a restart says why it stopped.
    let list = d.json(&["update", "list", id]);
    assert!(list.as_array().unwrap().iter().any(|u| u["state"] == "rolled_back" && u["error"].as_str().is_some_and(|e| e.contains("hafen stopped during the step"))), "{list}");

    // The hop for real: PostgreSQL 15 → 17 by dump and load, the migration ran, data intact.
    let r = d.json(&["update", "apply", id, "--to", "2.0"]);
    assert!(r["error"].is_null(), "{r}\n{}", tail(&d.log(), 60));
    assert_eq!(r["version"], "2.0");
    let down_update = r["hops"][0]["downtime"].as_f64().unwrap();
    assert_eq!(pg_major(id), "17");
    assert_eq!(psql(id, "SELECT name FROM clients"), "Kinderhaus Am Park");
    assert_eq!(schema(id), "2");
    // `stack show` names each service's image and version, with its digest.
    let show = d.ok(&["stack", "show", id]);
    assert!(show.contains(&format!("web: {}/hafen/upapp:2.0 (sha256:", reg.host)) && show.contains(&format!("db: {}/hafen/pg:17", reg.host)), "{show}");
    psql(id, "INSERT INTO clients VALUES ('Wohngruppe Linde')");

    // The broken 3.0: migrates, starts, its server stops at once → the failure is seen at once
    // (not after the health deadline), rolled back by itself, data exactly as before the
    // attempt, one notification that carries the server's own last words. (The kills above were rolled back with a notice
    // each; the commit of 2.0 resolved it.)
    let key = format!("update_rolled_back:{id}");
    let notices = hooks.count(&key, "problem");
    assert!(notices >= 1, "an interrupted update is rolled back with a notice: {:?}", hooks.keys());
    let t_broken = std::time::Instant::now();
    let o = d.cli(&["update", "apply", id, "--json"]);
    let took_broken = t_broken.elapsed().as_secs_f64();
    assert!(!o.status.success(), "a rolled back update exits non-zero");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)));
    assert_eq!(r["version"], "2.0", "{r}");
    let hop = &r["hops"][0];
    assert_eq!(hop["state"], "rolled_back", "{r}");
    assert!(hop["error"].as_str().unwrap().starts_with("health:") && hop["error"].as_str().unwrap().contains("exit code 3"), "{r}");
    let down_rollback = hop["downtime"].as_f64().unwrap();
    let alerts = d.json(&["alerts"]).to_string();
    assert!(alerts.contains("upapp 3.0: the configuration is invalid, stopping"), "the alert lacks the server's own last lines: {alerts}");
    let (v, h) = state(&d, id);
    assert_eq!((v.as_str(), h.as_str()), ("2.0", "healthy"));
    assert_eq!(schema(id), "2", "the failed migration's change must be undone");
    assert_eq!(psql(id, "SELECT count(*) FROM clients"), "2");
    assert_eq!(pg_major(id), "17");
    assert!(wait_for(Duration::from_secs(60), || (hooks.count(&key, "problem") == notices + 1).then_some(())).is_some(), "{:?}", hooks.keys());
    let audit = d.ok(&["audit", "export"]);
    for kind in ["update_started", "update_step", "update_committed", "update_rolled_back"] {
        assert!(audit.contains(kind), "audit lacks {kind}");
    }
    let o = d.cli(&["update", "apply", id]);
    let again = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success() && again.contains("rolled back"), "a second manual apply tries again and fails the same way: {again}");
    // It told each step as it happened, with the time since it began (plain lines off a
    // terminal), and the migration with its duration.
    let told = String::from_utf8_lossy(&o.stderr);
    for step in [": pull: ", ": stop: ", ": migrate web: ", ": health: ", "rolled back to 2.0"] {
        assert!(told.contains(step), "the apply did not tell `{step}` as it happened:\n{told}");
    }
    assert!(told.lines().any(|l| l.starts_with("[") && l.contains("s] ")), "{told}");
    assert_eq!(hooks.count(&key, "problem"), notices + 1, "one notification while the problem stays open");

    // Pins: nothing beyond 2.0.
    d.ok(&["update", "pin", id, "2.0"]);
    let c = d.json(&["update", "check", id]);
    assert_eq!(c[0]["path"], serde_json::json!([]), "{c}");
    assert_eq!(c[0]["pinned"], "2.0");
    let o = d.cli(&["update", "apply", id, "--to", "3.0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("pinned"), "{}", String::from_utf8_lossy(&o.stderr));
    d.ok(&["update", "unpin", id]);

    // A tag that does not exist, then the registry gone: clear messages, nothing changed.
    let o = d.cli(&["update", "apply", id, "--to", "9.9"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no tag `9.9`"), "{}", String::from_utf8_lossy(&o.stderr));
    let before = d.json(&["update", "list", id]).as_array().unwrap().len();
    reg.stop();
    let o = d.cli(&["update", "check", id]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("cannot be reached") && err.contains(&reg.host), "{err}");
    let o = d.cli(&["update", "apply", id, "--to", "3.0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("cannot be reached"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(d.json(&["update", "list", id]).as_array().unwrap().len(), before, "nothing began");
    assert_eq!(d.json(&["stack", "show", id])["summary"]["state"], "healthy");

    // Rollback of the committed hop: 1.0 on PostgreSQL 15 with the data of that moment.
    d.ok(&["update", "rollback", id, "--yes"]);
    wait_healthy(&d, id);
    assert_eq!(pg_major(id), "15");
    assert_eq!(psql(id, "SELECT count(*) FROM clients"), "1");
    assert_eq!(schema(id), "");
    // Recorded as a rollback that was asked for, not as a failure.
    assert!(d.ok(&["events", "--stack", id]).contains("taken back as asked"), "{}", d.ok(&["events", "--stack", id]));
    let de = d.cli_in("de", &["update", "list", id]);
    let de = String::from_utf8_lossy(&de.stdout).to_string();
    assert!(de.contains("SCHRITT") && de.contains("zurückgenommen") && de.contains("abgebrochen") && !de.contains("rolled") && !de.contains("aborted"), "{de}");
    eprintln!("MEASURED upapp: update 1.0→2.0 (PostgreSQL 15→17) down {down_update:.1}s; broken 3.0 (server exits at once) rolled back, down {down_rollback:.1}s, the whole apply {took_broken:.1}s");
}

#[test]
fn a_registry_with_token_authentication_is_asked_with_the_configured_login() {
    ensure_recipes(&[]);
    let reg = Reg::start(Some(("hafen", "s3cret-pass")));
    let cfg = tempfile::tempdir().unwrap();
    let dcfg = cfg.path().join("docker");
    std::fs::create_dir_all(&dcfg).unwrap();
    let login = Command::new("docker")
        .args(["--config", dcfg.to_str().unwrap(), "login", &reg.host, "-u", "hafen", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"s3cret-pass")?;
            c.wait()
        })
        .unwrap();
    assert!(login.success());
    for v in ["1.0", "1.1"] {
        let local = format!("hafen-test/upapp:{v}");
        app_image(&local, v, true);
        let r = format!("{}/hafen/upapp:{v}", reg.host);
        sh(&["docker", "tag", &local, &r]);
        sh(&["docker", "--config", dcfg.to_str().unwrap(), "push", "-q", &r]);
    }
    let stack = format!(
        "version: 1\nid: tok\nname: Token registry fixture\nservices:\n  web:\n    image: {}/hafen/upapp:1.0\n    user: \"1000:1000\"\n    command: [sleep, infinity]\n    probe:\n      exec: [test, -f, /etc/upapp-ok]\n      interval: 2s\n      timeout: 2s\n      start_period: 4s\nupgrade:\n  track: web\n",
        reg.host
    );
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("tok")).unwrap();
    std::fs::write(src.path().join("tok/stack.yaml"), stack).unwrap();
    let mut d = Daemon::new(&[(&src.path().join("tok"), "tok")]);
    // The local images would let the engine skip the pull: remove them so the login is needed.
    for v in ["1.0", "1.1"] {
        docker(&["rmi", &format!("{}/hafen/upapp:{v}", reg.host)]);
    }
    let pw = d.dir.path().join("registry-password");
    std::fs::write(&pw, "s3cret-pass\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let target = d.dir.path().join("usb");
    d.append_config(&format!("registries:\n  - host: {}\n    user: hafen\n    password_file: {}\nbackup_targets:\n  - name: usb\n    path: {}\n", reg.host, pw.display(), target.display()));
    d.start();
    d.ok(&["keys", "init"]);
    d.ok(&["stack", "deploy", "tok", "--wait", "120"]);
    let c = d.json(&["update", "check", "tok"]);
    assert_eq!(c[0]["current"], "1.0", "{c}");
    assert_eq!(c[0]["path"], serde_json::json!(["1.1"]), "{c}");
    assert!(!d.log().contains("s3cret-pass"), "the registry password must not be logged");

    // The same tag pushed again with other content (a security rebuild upstream): a new digest
    // under the running tag is an update too, and it is rolled out like one.
    let local = "hafen-test/upapp:1.0-rebuilt";
    build(local, "FROM hafen/debian:bookworm\nRUN mkdir /data && chown 1000:1000 /data && touch /etc/upapp-ok\nLABEL org.hafen.test.rebuilt=yes\n");
    let r = format!("{}/hafen/upapp:1.0", reg.host);
    sh(&["docker", "tag", local, &r]);
    sh(&["docker", "--config", dcfg.to_str().unwrap(), "push", "-q", &r]);
    docker(&["rmi", &r]);
    let c = d.json(&["update", "check", "tok"]);
    assert_eq!(c[0]["rebuild"], true, "{c}");
    d.ok(&["update", "pin", "tok", "1.0"]);
    // The pre-update backup fails (the backup disk is not what it should be): nothing begins.
    let cid = docker(&["inspect", "-f", "{{.Id}}", "hafen-tok-web"]);
    let aside = d.dir.path().join("usb-aside");
    let existed = target.exists();
    if existed {
        std::fs::rename(&target, &aside).unwrap();
    }
    std::fs::write(&target, "not a backup disk").unwrap();
    let o = d.cli(&["update", "apply", "tok"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("before anything changed") && err.contains("backup"), "{err}");
    assert!(d.json(&["update", "list", "tok"]).as_array().unwrap().is_empty(), "no update began");
    assert_eq!(docker(&["inspect", "-f", "{{.Id}}", "hafen-tok-web"]), cid, "the service was not touched");
    std::fs::remove_file(&target).unwrap();
    if existed {
        std::fs::rename(&aside, &target).unwrap();
    }
    let r2 = d.json(&["update", "apply", "tok"]);
    assert_eq!(r2["hops"][0]["state"], "committed", "{r2}");
    assert_eq!(r2["version"], "1.0", "{r2}");
    let label = docker(&["inspect", "-f", "{{index .Config.Labels \"org.hafen.test.rebuilt\"}}", "hafen-tok-web"]);
    assert_eq!(label, "yes", "the service runs the rebuilt 1.0");
    assert_eq!(d.json(&["update", "check", "tok"])[0]["rebuild"], false);

    // A wrong password: the login is refused, clearly.
    std::fs::write(&pw, "wrong\n").unwrap();
    let o = d.cli(&["update", "check", "tok"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("refused the login"), "{err}");
    // A password file others can read is not used.
    std::fs::write(&pw, "s3cret-pass\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = d.cli(&["update", "check", "tok"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("chmod 600"), "{err}");
}

/// A Tryton session: login, then calls with the user's context.
struct Tryton {
    port: u16,
    uid: i64,
    session: String,
    ctx: serde_json::Value,
}

impl Tryton {
    fn login(port: u16, password: &str) -> Tryton {
        let r = tryton_rpc(port, "/tryton/", "common.db.login", json!(["admin", {"password": password}, "en"]));
        let mut t = Tryton { port, uid: r[0].as_i64().unwrap(), session: r[1].as_str().unwrap().to_string(), ctx: json!({}) };
        t.ctx = t.call("model.res.user.get_preferences", json!([true, {}]));
        t
    }

    fn call(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        tryton_session_rpc(self.port, "tryton", "admin", self.uid, &self.session, method, params)
    }

    /// `params` with the context appended.
    fn c(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let mut p = params.as_array().unwrap().clone();
        p.push(self.ctx.clone());
        self.call(method, serde_json::Value::Array(p))
    }
}

fn dec(s: &str) -> serde_json::Value {
    json!({"__class__": "Decimal", "decimal": s})
}

fn date(y: i32, m: u32, d: u32) -> serde_json::Value {
    json!({"__class__": "date", "year": y, "month": m, "day": d})
}

fn first_id(v: &serde_json::Value) -> i64 {
    v[0].as_i64().unwrap_or_else(|| v[0]["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}")))
}

/// A company with the SKR03 chart, a fiscal year and invoice sequences; then a client with an
/// address, one posted and one draft invoice. Returns (party, posted invoice number).
fn tryton_books(port: u16, password: &str) -> (i64, String) {
    let mut t = Tryton::login(port, password);
    let eur = first_id(&t.c("model.currency.currency.create", json!([[{"name": "Euro", "code": "EUR", "symbol": "€", "rounding": dec("0.01"), "digits": 2}]])));
    let cp = first_id(&t.c("model.party.party.create", json!([[{"name": "Jugendhilfe Nordstadt gGmbH"}]])));
    let cid = first_id(&t.c("model.company.company.create", json!([[{"party": cp, "currency": eur}]])));
    t.c("model.res.user.write", json!([[t.uid], {"companies": [["add", [cid]]], "company": cid}]));
    t.ctx = t.call("model.res.user.get_preferences", json!([true, {}]));
    let tmpls = t.c("model.account.account.template.search_read", json!([[["parent", "=", null]], 0, null, null, ["name"]]));
    let tid = tmpls.as_array().unwrap().iter().find(|x| x["name"].as_str().unwrap_or("").contains("03")).unwrap_or_else(|| panic!("no SKR03 template in {tmpls}"))["id"].as_i64().unwrap();
    let w = t.c("wizard.account.create_chart.create", json!([]));
    let sid = w[0].as_i64().unwrap();
    t.c("wizard.account.create_chart.execute", json!([sid, {}, "account"]));
    t.c("wizard.account.create_chart.execute", json!([sid, {"account": {"account_template": tid, "company": cid}}, "create_account"]));
    // SKR03: receivables 1400 and payables 1600 (both need a party), revenue 8400.
    let acc = |kind: &str, code: &str, party: bool| {
        let mut dom = json!([[format!("type.{kind}"), "=", true], ["code", "=", code], ["company", "=", cid]]);
        if party {
            dom.as_array_mut().unwrap().push(json!(["party_required", "=", true]));
        }
        first_id(&t.c("model.account.account.search_read", json!([dom, 0, 1, null, ["code"]])))
    };
    let (recv, pay, rev) = (acc("receivable", "1400", true), acc("payable", "1600", true), acc("revenue", "8400", false));
    t.c("wizard.account.create_chart.execute", json!([sid, {"properties": {"company": cid, "account_receivable": recv, "account_payable": pay}}, "create_properties"]));
    t.c("wizard.account.create_chart.delete", json!([sid]));
    let st_move = first_id(&t.c("model.ir.sequence.type.search", json!([[["name", "=", "Account Move"]], 0, 1, null])));
    let st_inv = first_id(&t.c("model.ir.sequence.type.search", json!([[["name", "=", "Invoice"]], 0, 1, null])));
    let smove = first_id(&t.c("model.ir.sequence.create", json!([[{"name": "2026", "sequence_type": st_move, "company": cid}]])));
    let sinv = first_id(&t.c("model.ir.sequence.strict.create", json!([[{"name": "2026", "sequence_type": st_inv, "company": cid, "prefix": "RE-2026-", "padding": 4}]])));
    let seqs = json!({"company": cid, "out_invoice_sequence": sinv, "in_invoice_sequence": sinv, "out_credit_note_sequence": sinv, "in_credit_note_sequence": sinv});
    let fy = first_id(&t.c("model.account.fiscalyear.create", json!([[{"name": "2026", "start_date": date(2026, 1, 1), "end_date": date(2026, 12, 31), "company": cid, "post_move_sequence": smove, "invoice_sequences": [["create", [seqs]]]}]])));
    t.c("model.account.fiscalyear.create_period", json!([[fy]]));
    let party = first_id(&t.c("model.party.party.create", json!([[{"name": "Kinderhaus Sonnenschein e.V.", "addresses": [["create", [{"street": "Hauptstr. 1", "postal_code": "10115", "city": "Berlin"}]]]}]])));
    let addr = t.c("model.party.party.read", json!([[party], ["addresses"]]))[0]["addresses"][0].as_i64().unwrap();
    let jrev = first_id(&t.c("model.account.journal.search", json!([[["type", "=", "revenue"]], 0, 1, null])));
    let invoice = |desc: &str, price: &str, dated: bool| {
        let mut v = json!({"type": "out", "company": cid, "currency": eur, "party": party, "invoice_address": addr, "account": recv, "journal": jrev,
            "lines": [["create", [{"type": "line", "description": desc, "quantity": 2.0, "unit_price": dec(price), "account": rev, "currency": eur, "company": cid}]]]});
        if dated {
            v["invoice_date"] = date(2026, 11, 28);
        }
        first_id(&t.c("model.account.invoice.create", json!([[v]])))
    };
    let posted = invoice("Beratung Eingliederungshilfe", "150.00", true);
    t.c("model.account.invoice.post", json!([[posted]]));
    invoice("Entwurf Fachleistungsstunden", "21.00", false);
    let number = t.c("model.account.invoice.read", json!([[posted], ["number"]]))[0]["number"].as_str().unwrap().to_string();
    (party, number)
}

/// The clients' invoices as (number, state, total) read through JSON-RPC.
fn tryton_invoices(port: u16, password: &str) -> Vec<(String, String, String)> {
    let t = Tryton::login(port, password);
    let l = t.c("model.account.invoice.search_read", json!([[["type", "=", "out"]], 0, null, [["id", "ASC"]], ["number", "state", "total_amount"]]));
    l.as_array()
        .unwrap()
        .iter()
        .map(|i| (i["number"].as_str().unwrap_or("").to_string(), i["state"].as_str().unwrap_or("").to_string(), i["total_amount"]["decimal"].as_str().unwrap_or("?").to_string()))
        .collect()
}

/// The shipped Tryton definition as it is (no edit, no registry running): 6.0 on PostgreSQL 15
/// with books in it moves to 7.0 on PostgreSQL 17 in its maintenance window, the images built
/// from their recipes (`upgrade.versions`), the database by dump and load, the migrations run;
/// the books are there on 7.0, and after `update rollback` on 6.0 again.
#[test]
fn tryton_6_0_moves_to_7_0_with_postgresql_17_in_its_window() {
    ensure_recipes(&["postgres15", "postgres17", "tryton60", "tryton70"]);
    let id = "tryton-up";
    let mut d = Daemon::new(&[(&root().join("stacks/tryton"), id)]);
    let target = d.dir.path().join("usb");
    // Automatic, but the window is closed now (it opens in two hours).
    let hour = |ahead: i64| (chrono::Utc::now() + chrono::Duration::hours(ahead)).format("%H").to_string().parse::<u32>().unwrap();
    let policy = |h: u32| format!("updates:\n  check_schedule: \"*/3 * * * * *\"\n  stacks:\n    {id}: {{mode: automatic, window: \"0 0 {h} * * *\"}}\n");
    let base = std::fs::read_to_string(&d.config).unwrap();
    d.append_config(&format!("backup_targets:\n  - name: usb\n    path: {}\n{}", target.display(), policy(hour(2))));
    d.start();
    d.ok(&["keys", "init"]);
    let port = free_port();
    d.ok(&["stack", "deploy", id, "--set", &format!("http_port={port}"), "--wait", "900"]);
    let pw = d.secret(id, "admin_password");
    let (party, number) = tryton_books(port, &pw);
    let before = tryton_invoices(port, &pw);
    assert_eq!(before.len(), 2, "{before:?}");
    let c = d.json(&["update", "check", id]);
    assert_eq!(c[0]["current"], "6.0", "{c}");
    assert_eq!(c[0]["path"], json!(["7.0"]), "{c}");
    assert_eq!(c[0]["decision"]["action"], "wait_for_window", "{c}");
    let plan = d.json(&["update", "plan", id, "--to", "7.0"]);
    assert_eq!(plan["hops"][0]["database_moves"], json!(["db"]), "{plan}");
    assert_eq!(plan["hops"][0]["migrations"].as_array().unwrap().len(), 3, "{plan}");
    // The new images are the recipes' (built from Debian's packages), not a registry's.
    assert!(plan["hops"][0]["images"]["server"][1].as_str().unwrap().starts_with("hafen/tryton70:"), "{plan}");
    assert!(plan["hops"][0]["images"]["db"][1].as_str().unwrap().starts_with("hafen/postgres17:"), "{plan}");
    let o = d.cli(&["update", "plan", id, "--to", "8.0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("6.0, 7.0"), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_secs(8));
    assert!(d.json(&["update", "list", id]).as_array().unwrap().is_empty(), "nothing happens outside the window");

    // The window opens (it began at the top of this hour): the updater moves it to 7.0.
    d.sigterm();
    std::fs::write(&d.config, format!("{base}backup_targets:\n  - name: usb\n    path: {}\n{}", target.display(), policy(hour(0)))).unwrap();
    d.start();
    let (list, _) = wait_for(Duration::from_secs(1200), || {
        let l = d.json(&["update", "list", id]);
        l.as_array().unwrap().iter().any(|u| u["state"] != "running" && u["state"] != "rolling_back").then_some(l)
    })
    .unwrap_or_else(|| panic!("no update ended:\n{}", tail(&d.log(), 80)));
    let u = &list[0];
    assert_eq!((u["state"].as_str(), u["to_version"].as_str(), u["actor"].as_str()), (Some("committed"), Some("7.0"), Some("updater")), "{list}\n{}", tail(&d.log(), 80));
    let downtime = u["downtime"].as_f64().unwrap();
    assert_eq!(psql_tryton(id, "SHOW server_version").split('.').next(), Some("17"));
    let version = tryton_rpc(port, "/", "common.server.version", json!([]));
    assert!(version.as_str().unwrap_or("").starts_with("7.0."), "the server runs 7.0: {version}");

    // The records are there, the web client answers, and 7.0 works with the migrated books.
    let (code, body) = http_get(&format!("http://127.0.0.1:{port}/"));
    assert!(code == 200 && body.to_lowercase().contains("tryton"), "{code}");
    let after = tryton_invoices(port, &pw);
    assert_eq!(after, before, "the invoices after the update");
    assert!(after.iter().any(|i| i.0 == number && i.1 == "posted" && i.2 == "300.00"), "{after:?}");
    let t = Tryton::login(port, &pw);
    let p = t.c("model.party.party.read", json!([[party], ["name"]]));
    assert_eq!(p[0]["name"], "Kinderhaus Sonnenschein e.V.");
    let cache = psql_tryton(id, &format!("SELECT total_amount_cache FROM account_invoice WHERE number = '{number}'"));
    assert_eq!(cache.parse::<f64>().ok(), Some(300.0), "the 7.0 migration note's amount cache was filled: {cache}");
    let draft = after.iter().position(|i| i.1 == "draft").unwrap();
    let draft_id = t.c("model.account.invoice.search", json!([[["state", "=", "draft"]], 0, 1, null]));
    t.c("model.account.invoice.post", json!([[first_id(&draft_id)]]));
    assert_eq!(tryton_invoices(port, &pw)[draft].1, "posted", "a draft from 6.0 posts in 7.0");

    // And back to 6.0 on PostgreSQL 15 with the books of the moment before the update.
    let rb = d.json(&["update", "rollback", id, "--yes"]);
    assert_eq!(rb["state"], "rolled_back", "{rb}");
    let rollback = rb["downtime"].as_f64().unwrap();
    assert_eq!(psql_tryton(id, "SHOW server_version").split('.').next(), Some("15"));
    let version = tryton_rpc(port, "/", "common.server.version", json!([]));
    assert!(version.as_str().unwrap_or("").starts_with("6.0."), "{version}");
    assert_eq!(tryton_invoices(port, &pw), before, "the books as before the update");
    let secs = |a: &serde_json::Value, b: &serde_json::Value| {
        let t = |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default()).ok();
        t(a).zip(t(b)).map(|(a, b)| (b - a).num_milliseconds() as f64 / 1000.0).unwrap_or(f64::NAN)
    };
    let total = secs(&u["started_at"], &u["finished_at"]);
    let events: Vec<serde_json::Value> = d.ok(&["events", "--stack", id, "--json"]).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let migrations: Vec<String> = events.iter().filter(|e| e["kind"] == "update_step" && e["detail"]["step"].as_str().is_some_and(|s| s.starts_with("migrate") || s.starts_with("load"))).map(|e| e["detail"]["detail"].as_str().unwrap_or_default().to_string()).collect();
    assert!(!migrations.is_empty(), "no migration was told as an event: {events:?}");
    eprintln!("MEASURED tryton (shipped file, images from recipes): 6.0/PostgreSQL 15 → 7.0/PostgreSQL 17 in {total:.1}s (backup, build, stop … probes), down {downtime:.1}s; rollback to 6.0 down {rollback:.1}s (stop → probes pass); loads and migrations: {}", migrations.join(" | "));
}

fn psql_tryton(stack: &str, sql: &str) -> String {
    sh(&["docker", "exec", &format!("hafen-{stack}-db"), "psql", "-U", "tryton", "-d", "tryton", "-tAc", sql])
}

#[test]
fn images_built_from_debian_packages_are_rebuilt_when_debian_has_updates() {
    ensure_images(); // the Debian base
    let id = "tiny-rb";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/tiny"), id)]);
    let (images, _) = d.unique_tiny_recipe();
    let target = d.dir.path().join("usb");
    d.append_config(&format!("backup_targets:\n  - name: usb\n    path: {}\n", target.display()));
    // The image as built some time ago: one package is behind what Debian has now (its
    // recorded version set back, as an outdated image would have it).
    d.ok(&["image", "build", "tiny"]);
    let tag = hafen_daemon::images::tag_for(&images, "tiny").unwrap();
    build(&tag, &format!("FROM {tag}\nUSER 0\nRUN sed -i '/^Package: base-files$/,/^$/ s/^Version: .*/Version: 0.0-outdated/' /var/lib/dpkg/status\nUSER 1000:1000\n"));
    d.start();
    d.ok(&["keys", "init"]);
    d.ok(&["stack", "deploy", id, "--wait", "120"]);
    let container = format!("hafen-{id}-idle");
    let version = || docker(&["exec", &container, "dpkg-query", "-W", "-f", "${Version}", "base-files"]);
    assert_eq!(version(), "0.0-outdated");

    // A throwaway rebuild on a fresh Debian base finds the difference.
    let c = d.json(&["update", "check", id, "--rebuild"]);
    assert_eq!(c[0]["rebuild"], true, "{c}");
    let changes = c[0]["changes"].as_array().unwrap();
    assert!(changes.iter().any(|x| x.as_str().unwrap().starts_with("idle: base-files 0.0-outdated → ")), "{c}");
    assert!(changes.len() < 10, "only what differs: {c}");
    let plan = d.json(&["update", "plan", id]);
    assert_eq!(plan["hops"][0]["to"], "rebuild", "{plan}");

    // Rolled out as an update: backup, stop, start on the rebuilt image, probes, commit.
    let r = d.json(&["update", "apply", id]);
    assert!(r["error"].is_null(), "{r}\n{}", tail(&d.log(), 40));
    assert_eq!(r["hops"][0]["state"], "committed", "{r}");
    let now = version();
    assert!(!now.is_empty() && now != "0.0-outdated", "{now}");
    let c = d.json(&["update", "check", id, "--rebuild"]);
    assert_eq!(c[0]["rebuild"], false, "nothing pending after the rebuild: {c}");
    // A later deploy keeps the rebuilt image.
    d.ok(&["stack", "deploy", id, "--wait", "120"]);
    assert_eq!(version(), now);

    // And back: the image from before the rebuild.
    d.ok(&["update", "rollback", id, "--yes"]);
    assert_eq!(version(), "0.0-outdated");
}
