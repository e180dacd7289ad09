//! The reconciler and daemon against the real engine, with a quick two-service fixture stack:
//! kill -9 in the middle of applying a plan, drift repair, a damaged or empty state store,
//! removal with and without purge, bad input, SIGTERM and the socket's permissions.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn duo() -> std::path::PathBuf {
    root().join("tests/fixtures/stacks/duo")
}

fn ports() -> [String; 2] {
    [format!("first_port={}", free_port()), format!("second_port={}", free_port())]
}

fn healthy(d: &Daemon, id: &str) -> bool {
    d.json(&["stack", "show", id])["summary"]["state"] == "healthy"
}

#[test]
fn kill_9_mid_apply_then_restart_converges_without_duplicates() {
    ensure_images();
    let id = "duo-kill";
    let mut d = Daemon::new(&[(&duo(), id)]);
    d.env.push(("HAFEN_TEST_PAUSE_AFTER".into(), format!("create:hafen-{id}-first")));
    d.start();
    let [p1, p2] = ports();
    let mut client = std::process::Command::new(bin())
        .arg("--config")
        .arg(&d.config)
        .args(["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(600), || d.state_dir().join("paused").exists().then_some(())).expect("daemon never reached the pause point");
    d.kill9();
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(containers_of(id), vec![format!("hafen-{id}-first")], "state at the kill");

    d.env.clear();
    std::fs::remove_file(d.state_dir().join("paused")).unwrap();
    d.start();
    wait_for(Duration::from_secs(120), || healthy(&d, id).then_some(())).expect("did not converge after restart");
    assert_eq!(containers_of(id), vec![format!("hafen-{id}-first"), format!("hafen-{id}-second")]);
    let again = d.ok(&["stack", "deploy", id, "--wait", "0"]);
    assert!(again.contains("Nothing to do"), "{again}");
}

#[test]
fn drift_stopped_and_changed_by_hand_is_repaired_and_recorded() {
    ensure_images();
    let id = "duo-drift";
    let mut d = Daemon::new(&[(&duo(), id)]);
    d.start();
    let [p1, p2] = ports();
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);

    let first = format!("hafen-{id}-first");
    docker(&["stop", &first]);
    wait_for(Duration::from_secs(60), || (docker(&["inspect", "-f", "{{.State.Running}}", &first]) == "true").then_some(())).expect("stopped service not restarted");

    let second = format!("hafen-{id}-second");
    let old = docker(&["inspect", "-f", "{{.Id}}", &second]);
    docker(&["update", "--memory", "200m", "--memory-swap", "200m", &second]);
    wait_for(Duration::from_secs(60), || {
        let now = docker(&["inspect", "-f", "{{.Id}} {{.HostConfig.Memory}}", &second]);
        (!now.starts_with(&old) && now.ends_with(&(128u64 << 20).to_string())).then_some(())
    })
    .expect("hand-changed service not recreated");
    // The new container is visible a moment before its action ends and the event is recorded.
    let repaired = |events: &str| events.contains("changed by hand: memory limit 209715200") && events.contains(&format!("drift repaired: start service {first}"));
    let events = wait_for(Duration::from_secs(30), || Some(d.ok(&["events", "--stack", id])).filter(|e| repaired(e)));
    assert!(events.is_some(), "{}", d.ok(&["events", "--stack", id]));
}

#[test]
fn damaged_or_empty_state_store_never_touches_running_stacks() {
    ensure_images();
    let id = "duo-store";
    let mut d = Daemon::new(&[(&duo(), id)]);
    d.start();
    let [p1, p2] = ports();
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);
    let ids = |_: ()| docker(&["ps", "-q", "--no-trunc", "--filter", &format!("label=org.hafen.stack={id}")]);
    let running = ids(());
    assert_eq!(running.lines().count(), 2);

    assert!(d.sigterm().success(), "SIGTERM must end the daemon cleanly");
    assert!(!d.socket().exists(), "socket left behind");

    // Damaged: hafen refuses to start, says why, and changes nothing.
    let db = d.state_dir().join("state.db");
    let good = std::fs::read(&db).unwrap();
    std::fs::write(&db, vec![0x5au8; good.len().max(8192)]).unwrap();
    let (st, err) = d.start_expect_failure();
    assert!(!st.success());
    assert!(err.contains("damaged") && err.contains("changed nothing"), "{err}");
    assert_eq!(ids(()), running);

    // Empty (moved aside): hafen starts, leaves the stack alone and reports it as unmanaged.
    std::fs::remove_file(&db).unwrap();
    d.start();
    let first = d.json(&["status"])["last_reconcile"].clone();
    wait_for(Duration::from_secs(30), || (d.json(&["status"])["last_reconcile"] != first).then_some(())).expect("no reconcile pass");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(ids(()), running, "running containers were changed");
    let status = d.json(&["status"]);
    assert!(status["unmanaged"].as_array().unwrap().iter().any(|s| s == id), "{status}");
}

#[test]
fn remove_keeps_data_and_purge_needs_confirmation() {
    ensure_images();
    let id = "duo-remove";
    let mut d = Daemon::new(&[(&duo(), id)]);
    d.start();
    let [p1, p2] = ports();
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);

    // --purge without confirmation (stdin is empty) is refused; nothing is removed.
    let o = d.cli(&["stack", "remove", id, "--purge"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Not confirmed"));
    assert_eq!(containers_of(id).len(), 2);
    // The API refuses it too without the id.
    let o = d.cli(&["stack", "remove", id, "--purge", "--confirm", "wrong"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("confirm"), "{}", String::from_utf8_lossy(&o.stderr));

    let out = d.ok(&["stack", "remove", id]);
    assert!(out.contains(&format!("hafen-{id}-one")), "{out}");
    assert!(containers_of(id).is_empty());
    // The reconciler must not bring a removed stack back.
    std::thread::sleep(Duration::from_secs(6));
    assert!(containers_of(id).is_empty());
    let vols = docker(&["volume", "ls", "-q", "--filter", &format!("label=org.hafen.stack={id}")]);
    assert_eq!(vols.lines().count(), 2, "{vols}");

    d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
    assert!(docker(&["volume", "ls", "-q", "--filter", &format!("label=org.hafen.stack={id}")]).is_empty());
    assert!(!d.state_dir().join("secrets").join(id).exists());
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    require_docker();
    let id = "duo-bad";
    let mut d = Daemon::new(&[(&duo(), id)]);
    d.start();
    let o = d.cli(&["stack", "deploy", id, "--set", "first_port=eighty", "--set", "colour=red"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nothing was changed") && err.contains("first_port") && err.contains("no setting `colour`"), "{err}");
    assert!(containers_of(id).is_empty());
    assert!(d.json(&["status"])["stacks"].as_array().unwrap().is_empty());

    let o = d.cli(&["stack", "deploy", "nosuchstack"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no stack `nosuchstack`") && err.contains(id), "{err}");

    // One code for every client, in the reader's language: the daemon speaks English here, the
    // API answers with the code and its arguments, and a German CLI shows German.
    let (status, e) = d.api("POST", "/v1/stacks/nosuchstack/deploy", "{}");
    assert_eq!(status, 404, "{e}");
    assert_eq!((e["kind"].as_str(), e["code"].as_str(), e["args"]["id"].as_str()), (Some("not_found"), Some("app_not_found"), Some("nosuchstack")), "{e}");
    assert!(e["error"].as_str().unwrap().starts_with("no stack `nosuchstack`"), "the daemon's own rendering (English): {e}");
    let o = d.cli_in("de", &["stack", "deploy", "nosuchstack"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("Kein Stack `nosuchstack`") && err.contains("vorhanden") && !err.contains("no stack"), "{err}");

    // One daemon per state directory: a second `hafen serve` on the same state, with another
    // socket and its metrics off, stops at once and says why; the first one keeps answering.
    let config = std::fs::read_to_string(&d.config).unwrap();
    let second = d.dir.path().join("second.yaml");
    let other_socket = d.dir.path().join("second.sock");
    let text: String = config.lines().filter(|l| !l.starts_with("socket:") && !l.starts_with("metrics_listen:")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&second, format!("{text}socket: {}\n", other_socket.display())).unwrap();
    let o = std::process::Command::new(bin()).arg("--config").arg(&second).arg("serve").env("HAFEN_LANG", "de").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("läuft bereits mit dem Zustandsverzeichnis") && !err.contains("panicked"), "{err}");
    assert!(!other_socket.exists(), "the second daemon bound its socket");
    assert!(d.cli(&["healthcheck"]).status.success());

    // A request body far larger than any request of this API is refused before it is read.
    let (status, _) = d.api("POST", "/v1/stacks/nosuchstack/deploy", &format!("{{\"settings\": {{\"x\": \"{}\"}}}}", "y".repeat(hafen_daemon::server::MAX_REQUEST_BYTES)));
    assert_eq!(status, 413);

    let o = d.cli(&["stack", "deploy", id, "--set", "novalue"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("KEY=VALUE"));

    // The socket is 0660 and hafen healthcheck fails with exit 3 once the daemon is gone.
    let mode = std::fs::metadata(d.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    assert!(d.sigterm().success());
    let o = d.cli(&["healthcheck"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("hafen serve"));
}

#[test]
/// Regression: containers inherit image labels, so a stranger's container made from a hafen-built
/// image once looked like hafen's own (it carried `org.hafen.managed`).
fn foreign_container_from_a_hafen_image_is_never_touched() {
    ensure_images();
    let id = "duo-foreign";
    let mut d = Daemon::new(&[(&duo(), id)]);
    d.start();
    // Someone else's container under the name hafen would use.
    let image = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", "hafen/radicale"]).lines().next().unwrap().to_string();
    let foreign = format!("hafen-{id}-first");
    docker(&["rm", "-f", "-v", &foreign]);
    let cid = docker(&["run", "-d", "--name", &foreign, "--entrypoint", "sleep", &image, "600"]);
    assert!(!cid.is_empty());
    let [p1, p2] = ports();
    let o = d.cli(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("was not created by hafen"), "{err}");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(docker(&["inspect", "-f", "{{.Id}} {{.State.Running}}", &foreign]), format!("{cid} true"), "foreign container was touched");
    let status = d.json(&["status"]);
    assert!(status["last_reconcile_error"].as_str().unwrap_or("").contains("not created by hafen"), "{status}");
    docker(&["rm", "-f", "-v", &foreign]);
    // Once the name is free, the reconciler finishes the deploy by itself.
    wait_for(Duration::from_secs(120), || healthy(&d, id).then_some(())).expect("did not converge once the name was free");
}

#[test]
fn logs_and_json_views() {
    ensure_images();
    let id = "duo-logs";
    let mut d = Daemon::new(&[(&duo(), id)]);
    d.start();
    let [p1, p2] = ports();
    let r = d.json(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "0"]);
    assert_eq!(r["plan"]["actions"].as_array().unwrap().len(), 5, "{r}");
    wait_for(Duration::from_secs(120), || healthy(&d, id).then_some(())).expect("not healthy");
    let logs = d.json(&["stack", "logs", id, "first", "--tail", "20"]);
    assert!(!logs["logs"]["first"].as_str().unwrap().is_empty(), "{logs}");
    assert!(logs["logs"].get("second").is_none());
    let text = d.ok(&["stack", "logs", id]);
    assert!(text.contains("     first | ") && text.contains("    second | "), "{text}");
    let list = d.json(&["stack", "list"]);
    let me = list.as_array().unwrap().iter().find(|s| s["id"] == id).unwrap();
    assert_eq!(me["state"], "healthy");
    assert!(me["services"][0]["ports"][0].as_str().unwrap().starts_with("127.0.0.1:"), "{me}");
    let show = d.ok(&["stack", "show", id]);
    assert!(show.contains(&format!("hafen-{id}-one")), "{show}");
    // German is the default language of the CLI.
    let o = std::process::Command::new(bin()).arg("--config").arg(&d.config).args(["stack", "deploy", id, "--wait", "0"]).env_remove("LANG").env_remove("LC_ALL").env_remove("LC_MESSAGES").env_remove("HAFEN_LANG").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("Nichts zu tun"), "{}", String::from_utf8_lossy(&o.stdout));
}

/// German really first: the main commands, run in German against a daemon that speaks English,
/// print none of these English words (state words, event lines, plan actions, worker lines with
/// the host checks' details). Texts that come from elsewhere (an engine's error) are not covered.
#[test]
fn main_commands_in_german_print_no_english() {
    ensure_images();
    let id = "duo-deutsch";
    let mut d = Daemon::new(&[(&duo(), id)]);
    d.start();
    let [p1, p2] = ports();
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "0"]);
    wait_for(Duration::from_secs(120), || healthy(&d, id).then_some(())).expect("not healthy");
    const ENGLISH: &[&str] = &[
        "healthy", "running", "starting", "stopped", "not deployed", "since", "deploy of", "requested", "create ", "network", "service ",
        "every ", "waiting", "first round", "on engine events", "following", "as desired", "open alerts", "probes run", "DELETE", "remove ",
        "free of", "available of", "full in", "mounted", "clock", "synchronised", "backed up", "no disks", "processes",
    ];
    let de = |args: &[&str]| {
        let o = d.cli_in("de", args);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    // Every worker, the host checks too; the first column is the worker's name, an identifier.
    let workers: String = de(&["worker", "list"]).lines().skip(1).map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ") + "\n").collect();
    assert_eq!(workers.lines().count(), 14, "{workers}");
    let outputs = [
        ("status", de(&["status"])),
        ("stack list", de(&["stack", "list"])),
        ("stack show", de(&["stack", "show", id]).split("\n\n").next().unwrap_or("").to_string()),
        // The kind column is an identifier (`stack_deploy_requested`), not a word for people.
        ("events", de(&["events", "--stack", id]).lines().map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" ") + "\n").collect()),
        ("remove --purge --dry-run", de(&["stack", "remove", id, "--purge", "--dry-run"])),
        ("worker list", workers),
    ];
    for (cmd, out) in &outputs {
        // Names of hafen's own objects (hafen-duo-deutsch-first) are not words.
        let text = out.replace(&format!("hafen-{id}"), "NAME");
        let found: Vec<&&str> = ENGLISH.iter().filter(|w| text.contains(**w)).collect();
        assert!(found.is_empty(), "`hafen {cmd}` in German printed English {found:?}:\n{out}");
    }
    assert!(outputs[0].1.contains("gesund") && outputs[3].1.contains("Bereitstellung von") && outputs[4].1.contains("LÖSCHEN"), "{outputs:?}");
}

/// HD-05: a stack's secret appears nowhere an admin or another user can read it: not in any
/// container's `docker inspect` (environment, labels, command, mounts), not in the stack's
/// views (`stack show`, `stack render`), not in events, the audit export or the daemon's log.
#[test]
fn a_secret_appears_in_no_inspect_label_view_event_audit_record_or_log() {
    ensure_images();
    let id = "secret-e2e";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/watch"), id)]);
    d.start();
    d.ok(&["stack", "deploy", id, "--set", &format!("port={}", free_port()), "--wait", "120"]);
    let secret = d.secret(id, "admin_password");
    assert!(secret.trim().len() >= 16, "the fixture's secret is too short to search for: {secret:?}");
    let secret = secret.trim();
    let names = containers_of(id);
    assert_eq!(names.len(), 2, "{names:?}");
    for n in &names {
        let inspect = docker(&["inspect", n]);
        assert!(inspect.contains("org.hafen.stack"), "inspect of {n} read nothing: {inspect}");
        assert!(!inspect.contains(secret), "the secret is in `docker inspect {n}`");
    }
    for (what, text) in [
        ("stack show", d.ok(&["stack", "show", id, "--json"])),
        ("stack render", d.ok(&["stack", "render", id])),
        ("events", d.ok(&["events", "--json"])),
        ("audit export", d.ok(&["audit", "export"])),
        ("the daemon's log", d.log()),
    ] {
        assert!(!text.is_empty(), "{what} is empty, so the test would prove nothing");
        assert!(!text.contains(secret), "the secret is in {what}");
    }
    d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
}

/// The end of `n` more reconcile passes (their time in `status`; the interval here is 2 s).
fn passes(d: &Daemon, n: usize) {
    let at = |d: &Daemon| d.json(&["status"])["last_reconcile"].as_str().unwrap_or_default().to_string();
    for _ in 0..n {
        let before = at(d);
        wait_for(Duration::from_secs(60), || (at(d) != before).then_some(())).expect("no reconcile pass ended");
    }
}

fn container_ids(id: &str) -> String {
    docker(&["ps", "-aq", "--no-trunc", "--filter", &format!("label=org.hafen.stack={id}")])
}

/// Issue 23 (2): a deployed stack keeps the definition it was deployed with. A changed file is a
/// change waiting for its deploy (shown in `stack list` and `stack show` with its plan) and no
/// reconcile pass recreates anything for it; drift repair restores the recorded definition;
/// `stack deploy` applies the file. A file that no longer validates leaves the stack running as
/// it was, with an alert naming the file and line, closed once the file is mended.
#[test]
fn a_changed_definition_waits_for_its_deploy_and_a_broken_one_changes_nothing() {
    ensure_images();
    let id = "duo-def";
    let mut d = Daemon::new(&[(&duo(), id)]);
    d.start();
    let [p1, p2] = ports();
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);
    let file = d.dir.path().join("stacks").join(id).join("stack.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let before = container_ids(id);
    let memory = |service: &str| docker(&["inspect", "-f", "{{.HostConfig.Memory}}", &format!("hafen-{id}-{service}")]);

    // A new memory limit in the file while the daemon runs: nothing is recreated.
    let changed = text.replace("mem_limit: 128m", "mem_limit: 160m");
    std::fs::write(&file, &changed).unwrap();
    passes(&d, 3);
    assert_eq!(container_ids(id), before, "a changed file recreated containers without a deploy:\n{}", d.ok(&["events", "--stack", id]));
    let list = d.json(&["stack", "list"]);
    let mine = list.as_array().unwrap().iter().find(|s| s["id"] == id).unwrap().clone();
    assert_eq!(mine["pending_change"], true, "{mine}");
    assert!(d.ok(&["stack", "list"]).contains("change ready"));
    let de = d.cli_in("de", &["stack", "show", id]);
    let de = String::from_utf8_lossy(&de.stdout).to_string();
    assert!(de.contains("Änderung bereit") && !de.contains("change ready"), "{de}");
    let show = d.json(&["stack", "show", id]);
    let plan = show["pending_plan"]["actions"].as_array().cloned().unwrap_or_default();
    assert_eq!(plan.len(), 2, "the pending plan does not recreate both services: {show}");
    assert!(d.json(&["status"]).to_string().contains("\"pending_change\":true"));

    // Drift repair brings back what was deployed (128m), not the file's 160m.
    docker(&["rm", "-f", &format!("hafen-{id}-first")]);
    wait_for(Duration::from_secs(60), || (memory("first") == (128u64 << 20).to_string()).then_some(())).expect("the removed container did not come back as deployed");

    // The deploy applies the file.
    d.ok(&["stack", "deploy", id, "--wait", "120"]);
    assert_eq!(memory("first"), (160u64 << 20).to_string());
    assert_eq!(memory("second"), (160u64 << 20).to_string());
    assert_eq!(d.json(&["stack", "show", id])["summary"]["pending_change"], false);

    // A file that no longer validates: the stack runs on as deployed, and an alert names the
    // file and the line.
    let deployed = container_ids(id);
    std::fs::write(&file, changed.replace("mem_limit: 160m", "mem_limit: lots")).unwrap();
    let key = format!("definition_invalid:{id}");
    let (alerts, _) = wait_for(Duration::from_secs(60), || Some(d.json(&["alerts"]).to_string()).filter(|a| a.contains(&key))).expect("no alert for the broken file");
    assert!(alerts.contains(&format!("{}:", file.display())) && alerts.contains("mem_limit"), "the alert names neither file, line nor field: {alerts}");
    passes(&d, 2);
    assert_eq!(container_ids(id), deployed, "a broken file changed containers");
    assert!(healthy(&d, id));
    // A deploy of the broken file is refused and changes nothing.
    assert!(!d.cli(&["stack", "deploy", id]).status.success());
    assert_eq!(container_ids(id), deployed);
    // Mended, the alert closes.
    std::fs::write(&file, &changed).unwrap();
    wait_for(Duration::from_secs(60), || (!d.json(&["alerts"]).to_string().contains(&key)).then_some(())).expect("the alert stayed after the file was mended");
    d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
}

/// Issue 23 (3): a stack removed while a reconcile pass waits to act on it stays removed. The
/// test hook pauses the pass after it read the list of stacks and before it takes the
/// operation lock; the stack is removed meanwhile (once keeping its data, once with purge), and
/// the pass, let go, brings nothing back.
#[test]
fn a_stack_removed_while_a_reconcile_pass_waits_stays_removed() {
    ensure_images();
    for purge in [false, true] {
        let id = if purge { "duo-gone-p" } else { "duo-gone" };
        let mut d = Daemon::new(&[(&duo(), id)]);
        d.start();
        let [p1, p2] = ports();
        d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);
        d.kill9();
        d.env.push(("HAFEN_TEST_PAUSE_RECONCILE".into(), id.into()));
        d.start();
        let mark = d.state_dir().join("paused-reconcile");
        wait_for(Duration::from_secs(60), || mark.exists().then_some(())).expect("no reconcile pass reached the stack");
        let mut args = vec!["stack", "remove", id];
        if purge {
            args.extend(["--purge", "--confirm", id]);
        }
        d.ok(&args);
        assert_eq!(container_ids(id), "", "the remove left containers");
        std::fs::remove_file(&mark).unwrap();
        passes(&d, 3);
        assert_eq!(container_ids(id), "", "the waiting pass brought the removed stack back:\n{}", d.ok(&["events", "--stack", id]));
        let volumes = docker(&["volume", "ls", "-q", "--filter", &format!("label=org.hafen.stack={id}")]);
        assert_eq!(volumes.lines().count(), if purge { 0 } else { 2 }, "{volumes}");
        let list = d.json(&["stack", "list"]);
        let mine = list.as_array().unwrap().iter().find(|s| s["id"] == id).unwrap().clone();
        assert_eq!(mine["enabled"], false, "{mine}");
        assert_eq!(mine["state"], "not deployed", "{mine}");
        if !purge {
            d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
        }
    }
}
