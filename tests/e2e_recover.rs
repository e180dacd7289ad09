//! The worst nights, on the real engine: the box is lost (containers, volumes, hafen's state and
//! configuration gone) and comes back with `hafen restore --all` and only the recovery kit; and a
//! daemon killed with -9 in the middle of a backup leaves no snapshot counted, the next run
//! succeeds, and stock restic finds the repository sound; a daemon killed during an in-place
//! restore puts the previous data back at its next start; a daemon killed at each kind of
//! removal of a prune loses nothing retention keeps, and the next prune finishes the work.

mod common;
use common::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

/// Stock restic on `target`, opened with the repository key that the recovery kit's identity
/// unwraps.
fn restic(d: &Daemon, target: &std::path::Path, kit: &std::path::Path, args: &[&str]) -> std::process::Output {
    let kit_text = std::fs::read_to_string(kit).unwrap();
    let identity = kit_text.lines().map(str::trim).find(|l| l.starts_with("AGE-SECRET-KEY-1")).unwrap();
    let key = hafen_backup::keys::decrypt(identity, &std::fs::read(target.join("hafen-repo-key.age")).unwrap(), "key").unwrap();
    let pw = d.dir.path().join("pw");
    std::fs::write(&pw, key).unwrap();
    Command::new("restic").arg("-r").arg(target).arg("--password-file").arg(&pw).args(args).env("RESTIC_CACHE_DIR", d.dir.path().join("rc")).output().unwrap()
}

fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).map(|d| d.flatten().flat_map(|e| if e.path().is_dir() { files_below(&e.path()) } else { vec![e.path()] }).collect()).unwrap_or_default()
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| if e.path().is_dir() { count_files(&e.path()) } else { 1 }).sum())
        .unwrap_or(0)
}

#[test]
fn whole_box_restore_on_a_bare_host_with_only_the_recovery_kit() {
    ensure_images();
    let id = "tryton-box";
    let mut d = Daemon::new(&[(&root().join("stacks/tryton"), id)]);
    let target = d.dir.path().join("usb");
    d.append_config(&format!("backup_targets:\n  - name: usb\n    path: {}\n", target.display()));
    d.start();
    let kit = d.dir.path().join("kit.txt");
    d.ok(&["keys", "init", "--label", "tresor", "--out", kit.to_str().unwrap()]);
    let port = free_port();
    d.ok(&["stack", "deploy", id, "--set", &format!("http_port={port}"), "--wait", "900"]);
    let pw = d.secret(id, "admin_password");
    let r = tryton_rpc(port, "/tryton/", "common.db.login", json!(["admin", {"password": pw}, "en"]));
    let (uid, session) = (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string());
    tryton_session_rpc(port, "tryton", "admin", uid, &session, "model.party.party.create", json!([[{"name": "Kinder- und Jugendhilfe Ost e.V."}], {}]));
    let snap = d.json(&["backup", "run", id]);
    assert!(snap["error"].is_null(), "{snap}");
    let host = d.json(&["backup", "run", "--host"]);
    assert!(host["error"].is_null(), "{host}");
    assert_eq!(host["snapshot"]["label"], "hafen-host");
    // Every file of hafen's state is its own (the store, its log and shared memory, the audit
    // head, the lock, keys, secrets, marks); the repository cache, whose files are encrypted
    // copies from the repository (as restic keeps them), is a directory only hafen may enter.
    let private = |d: &Daemon| {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(d.state_dir()).unwrap().permissions().mode() & 0o777, 0o700, "the state directory");
        if let Ok(m) = std::fs::metadata(d.state_dir().join("cache")) {
            assert_eq!(m.permissions().mode() & 0o777, 0o700, "the repository cache");
        }
        let cache = d.state_dir().join("cache").display().to_string();
        let open: Vec<String> = open_to_others(&d.state_dir()).into_iter().filter(|f| !f.starts_with(&cache)).collect();
        assert_eq!(open, Vec::<String>::new(), "state files others can read");
    };
    private(&d);

    // The box is lost: no containers, no volumes, no hafen state, no configuration.
    assert!(d.sigterm().success());
    d.cleanup_engine();
    assert!(containers_of(id).is_empty());
    let config_text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::remove_file(&d.config).unwrap();
    std::fs::remove_dir_all(d.state_dir()).unwrap();
    std::fs::remove_dir_all(d.dir.path().join("stacks")).unwrap();

    // Only the kit and the backup disk.
    let config = d.config.clone();
    let restore = |extra: &[&str]| {
        Command::new(bin())
            .arg("--config")
            .arg(&config)
            .args(["restore", "--repo", target.to_str().unwrap(), "--identity", kit.to_str().unwrap(), "--all"])
            .args(extra)
            .env("HAFEN_LANG", "en")
            .output()
            .unwrap()
    };
    let o = restore(&["--json"]);
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["host_snapshot"], host["snapshot"]["id"], "{report}");
    assert_eq!(report["stacks"][0]["stack"], id, "{report}");
    assert!(report["stacks"][0]["error"].is_null(), "{report}");
    assert_eq!(report["stacks"][0]["snapshot"], snap["snapshot"]["id"], "{report}");
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), config_text, "the configuration came back changed");
    assert_eq!(d.secret(id, "admin_password"), pw);

    // The daemon starts on the restored state; the record is there; the web client answers.
    d.start();
    wait_for(Duration::from_secs(300), || (d.json(&["stack", "show", id])["summary"]["state"] == "healthy").then_some(())).expect("not healthy after the whole-box restore");
    let r = tryton_rpc(port, "/tryton/", "common.db.login", json!(["admin", {"password": pw}, "en"]));
    let (uid, session) = (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string());
    let found = tryton_session_rpc(port, "tryton", "admin", uid, &session, "model.party.party.search_read", json!([[["name", "=", "Kinder- und Jugendhilfe Ost e.V."]], 0, null, null, ["name"], {}]));
    assert_eq!(found.as_array().map(|a| a.len()), Some(1), "{found}");
    assert_eq!(http_get(&format!("http://127.0.0.1:{port}/")).0, 200);
    private(&d);

    // A host with hafen state is never overwritten.
    let o = restore(&[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already has hafen state"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), config_text);
}

#[test]
fn kill_9_during_a_backup_counts_no_snapshot_and_the_next_run_succeeds() {
    ensure_images();
    let id = "duo-kill";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/duo"), id)]);
    let target = d.dir.path().join("nas");
    d.append_config(&format!("backup_targets:\n  - name: nas\n    path: {}\n", target.display()));
    d.start();
    let kit = d.dir.path().join("kit.txt");
    d.ok(&["keys", "init", "--out", kit.to_str().unwrap()]);
    let (p1, p2) = (format!("first_port={}", free_port()), format!("second_port={}", free_port()));
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);
    // Enough incompressible data that the backup is surely still running when it is killed.
    let vol = docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &format!("hafen-{id}-one")]);
    let st = Command::new("sh").arg("-c").arg(format!("head -c 400000000 /dev/urandom > {}/big.bin", vol.trim())).status().unwrap();
    assert!(st.success());

    let mut run = d.spawn_cli(&["backup", "run", id]);
    wait_for(Duration::from_secs(60), || (count_files(&target.join("data")) >= 2).then_some(())).expect("the backup never wrote a pack");
    assert_eq!(count_files(&target.join("snapshots")), 0, "the backup finished before the kill; the test needs more data");
    d.kill9();
    let _ = run.wait();

    d.start();
    let list = d.json(&["backup", "list"]);
    assert!(list.as_array().unwrap().iter().all(|s| s["label"] != id), "a killed backup left a snapshot: {list}");
    let r = d.json(&["backup", "run", id]);
    assert!(r["error"].is_null(), "{r}");
    let list = d.json(&["backup", "list"]);
    assert_eq!(list.as_array().unwrap().iter().filter(|s| s["label"] == id).count(), 1, "{list}");

    // Stock restic agrees the repository is sound, reading every pack.
    let o = restic(&d, &target, &kit, &["check", "--read-data"]);
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let r = d.dir.path().join("r");
    let o = restic(&d, &target, &kit, &["restore", "latest", "--tag", &format!("stack:{id}"), "--include", "/volumes/one/big.bin", "--target", r.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let same = Command::new("cmp").arg(format!("{}/big.bin", vol.trim())).arg(d.dir.path().join("r/volumes/one/big.bin")).status().unwrap();
    assert!(same.success(), "the restored file differs");
}

/// RS-10: the daemon killed during an in-place restore, after the volumes were swapped and
/// while the services were being started again. At the next start the restore is rolled back
/// before anything else runs: the data from before the restore is back in the volume, nothing is
/// left beside it, the stack runs again, and the interruption is an event and an audit record.
#[test]
fn kill_9_during_an_in_place_restore_puts_the_previous_data_back() {
    ensure_images();
    let id = "duo-rs10";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/duo"), id)]);
    let target = d.dir.path().join("nas");
    d.append_config(&format!("backup_targets:\n  - name: nas\n    path: {}\n", target.display()));
    d.start();
    d.ok(&["keys", "init", "--out", d.dir.path().join("kit.txt").to_str().unwrap()]);
    let (p1, p2) = (format!("first_port={}", free_port()), format!("second_port={}", free_port()));
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);
    let vol = std::path::PathBuf::from(docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &format!("hafen-{id}-one")]).trim());
    std::fs::write(vol.join("akte.txt"), "Stand der Sicherung\n").unwrap();
    // Enough incompressible data that staging it takes a moment (the staging kill below).
    let st = Command::new("sh").arg("-c").arg(format!("head -c 150000000 /dev/urandom > {}/big.bin", vol.display())).status().unwrap();
    assert!(st.success());
    let r = d.json(&["backup", "run", id]);
    assert!(r["error"].is_null(), "{r}");
    std::fs::write(vol.join("akte.txt"), "Stand danach\n").unwrap();

    // Pause the restore once the volumes are swapped and the first service is created again.
    d.kill9();
    d.env.push(("HAFEN_TEST_PAUSE_AFTER".into(), format!("create:hafen-{id}-first")));
    d.start();
    let mut client = d.spawn_cli(&["restore", "--stack", id]);
    wait_for(Duration::from_secs(300), || d.state_dir().join("paused").exists().then_some(())).expect("the restore never reached the pause point");
    d.kill9();
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(std::fs::read_to_string(vol.join("akte.txt")).unwrap(), "Stand der Sicherung\n", "the kill came before the swap");
    assert!(d.state_dir().join("restore").join(format!("{id}.journal")).is_file(), "no journal of the restore");

    d.env.clear();
    std::fs::remove_file(d.state_dir().join("paused")).unwrap();
    d.start();
    assert_eq!(std::fs::read_to_string(vol.join("akte.txt")).unwrap(), "Stand danach\n", "the previous data is not back");
    let parent = vol.parent().unwrap();
    let beside: Vec<String> = std::fs::read_dir(parent).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).filter(|n| n != "_data").collect();
    assert!(beside.is_empty(), "left beside the volume: {beside:?}");
    assert!(std::fs::read_dir(d.state_dir().join("restore")).unwrap().next().is_none(), "journal or staging left behind");
    wait_for(Duration::from_secs(120), || (d.json(&["stack", "show", id])["summary"]["state"] == "healthy").then_some(())).expect("the stack did not run again");
    let audit: Vec<serde_json::Value> = d.ok(&["audit", "export"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(audit.iter().any(|r| r["action"] == "restore_failed" && r["outcome"] == "failed" && r.to_string().contains("interrupted")), "no audit record of the interrupted restore");

    // More kills, one at each step of the restore; after each and a restart the data is the
    // one before the restore (or, once the restore committed, the restored one), nothing is
    // left beside the volume or in the restore directory, and the stack runs again.
    let settled = |d: &Daemon, want: &str, what: &str| {
        assert_eq!(std::fs::read_to_string(vol.join("akte.txt")).unwrap(), want, "killed {what}: wrong data in the volume");
        let beside: Vec<String> = std::fs::read_dir(parent).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).filter(|n| n != "_data").collect();
        assert!(beside.is_empty(), "killed {what}: left beside the volume: {beside:?}");
        assert!(std::fs::read_dir(d.state_dir().join("restore")).unwrap().next().is_none(), "killed {what}: journal or staging left behind");
        wait_for(Duration::from_secs(120), || (d.json(&["stack", "show", id])["summary"]["state"] == "healthy").then_some(())).unwrap_or_else(|| panic!("killed {what}: the stack did not run again"));
    };

    // While the snapshot is restored into staging (enough data that it takes a while).
    let restore_dir = d.state_dir().join("restore");
    let mut client = d.spawn_cli(&["restore", "--stack", id]);
    wait_for(Duration::from_secs(120), || {
        let staged = std::fs::read_dir(&restore_dir).ok()?.flatten().find(|e| e.path().is_dir())?;
        std::fs::read_dir(staged.path().join("volumes")).ok()?.next().map(|_| ())
    })
    .expect("the restore never began to stage");
    d.kill9();
    let _ = client.wait();
    d.start();
    settled(&d, "Stand danach\n", "while staging");

    // At the system call that moves the restored data into its place (the previous data already
    // aside): strace attaches while the snapshot is staged and watches the staged directory (the
    // move is a rename, or — when the staging area is on another file system — tried as one
    // before a child process copies it).
    let mut client = d.spawn_cli(&["restore", "--stack", id]);
    let (staged, _) = wait_for(Duration::from_secs(120), || {
        let staged = std::fs::read_dir(&restore_dir).ok()?.flatten().find(|e| e.path().is_dir())?.path().join("volumes").join("one");
        staged.is_dir().then_some(staged)
    })
    .expect("the restore never began to stage");
    let log = d.dir.path().join("strace-in.log");
    let mut strace = d.strace(&log, "rename,renameat,renameat2", "signal=KILL:when=1", &[staged.as_path()]);
    let st = client.wait().unwrap();
    assert!(!st.success(), "the restore finished although the daemon was to be killed before the restored data is moved into place:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    let _ = strace.wait();
    let _ = d.child.take().unwrap().wait();
    let aside = std::fs::read_dir(parent).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with("_data.pre-restore-"));
    assert!(aside, "the kill came before the volume was moved aside");
    d.start();
    settled(&d, "Stand danach\n", "before the restored data is moved into place");

    // At the system call that moves the volume aside (the journal written, nothing moved).
    let log = d.dir.path().join("strace-aside.log");
    let mut strace = d.strace(&log, "rename,renameat,renameat2", "signal=KILL:when=1", &[vol.as_path()]);
    let o = d.cli(&["restore", "--stack", id]);
    assert!(!o.status.success(), "the restore finished although the daemon was to be killed before the volume is moved aside:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    let _ = strace.wait();
    let _ = d.child.take().unwrap().wait();
    d.start();
    settled(&d, "Stand danach\n", "before the volume is moved aside");

    // At the commit (the stack runs on the restored data; the journal, which names both volumes,
    // is about to be marked committed), and after it, while the journal is removed (the previous
    // data already deleted). strace attaches once the journal names both volumes and watches the
    // journal's new version (renamed over it) and the journal itself (strace matches the first
    // path of a rename).
    let journal = restore_dir.join(format!("{id}.journal"));
    let new_journal = restore_dir.join(format!("{id}.journal.new"));
    for (calls, watched, want, what) in [
        ("rename,renameat,renameat2", &new_journal, "Stand danach\n", "before the restore is committed"),
        ("unlink,unlinkat", &journal, "Stand der Sicherung\n", "after the commit"),
    ] {
        let mut client = d.spawn_cli(&["restore", "--stack", id]);
        wait_for(Duration::from_secs(120), || {
            let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&journal).ok()?).ok()?;
            (j["pairs"].as_array()?.len() == 2).then_some(())
        })
        .expect("the restore never moved both volumes");
        let log = d.dir.path().join(format!("strace-{}.log", calls.split(',').next().unwrap()));
        let mut strace = d.strace(&log, calls, "signal=KILL:when=1", &[watched.as_path()]);
        let st = client.wait().unwrap();
        assert!(!st.success(), "the restore finished although the daemon was to be killed {what}:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        let _ = strace.wait();
        let _ = d.child.take().unwrap().wait();
        d.start();
        settled(&d, want, what);
    }
}

/// The fixture whose backup quiesces the app (pre-hook: maintenance mode) and whose dump hangs,
/// deployed with a backup target and a recovery key.
fn slowdump(id: &str) -> Daemon {
    ensure_images();
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/slowdump"), id)]);
    let target = d.dir.path().join("nas");
    d.append_config(&format!("backup_targets:\n  - name: nas\n    path: {}\n", target.display()));
    d.start();
    d.ok(&["keys", "init"]);
    d.ok(&["stack", "deploy", id, "--set", &format!("port={}", free_port()), "--wait", "120"]);
    d
}

#[test]
fn the_quiesce_limit_stops_the_capture_and_runs_the_post_hooks_at_once() {
    let id = "slowdump-q";
    let d = slowdump(id);
    let o = d.cli(&["backup", "run", id, "--json"]);
    assert!(!o.status.success());
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["error"].as_str().unwrap_or("").contains("max_quiesce (4s)"), "{r}");
    let steps = r["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["step"] == "quiesce limit" && s["ok"] == false), "{r}");
    assert!(steps.iter().any(|s| s["step"] == "post-hook" && s["ok"] == true), "the post-hook did not run: {r}");
    // The app left maintenance mode well before the hanging dump would have ended (120 s).
    assert!(r["quiesced_seconds"].as_f64().unwrap() < 60.0, "{r}");
    let vol = docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &format!("hafen-{id}-data")]);
    assert!(!std::path::Path::new(vol.trim()).join(".maintenance").exists(), "still in maintenance mode");
    let list = d.json(&["backup", "list"]);
    assert!(list.as_array().unwrap().iter().all(|s| s["label"] != id), "a bounded-out capture left a snapshot: {list}");
}

/// BK-03 while quiesced: the daemon killed after a backup's pre-hook put the app into
/// maintenance mode and before its post-hook took it out. At the next start the post-hook runs
/// before anything else, the app leaves maintenance mode, no snapshot counts, and the
/// interrupted backup is a failed backup: an event, an audit record and an alert.
#[test]
fn kill_9_while_a_stack_is_quiesced_runs_its_post_hooks_at_the_next_start() {
    let id = "slowdump-k";
    let mut d = slowdump(id);
    let vol = std::path::PathBuf::from(docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &format!("hafen-{id}-data")]).trim());
    let maintenance = vol.join(".maintenance");
    let mut run = d.spawn_cli(&["backup", "run", id]);
    // The pre-hook has run; the dump hangs (the fixture's quiesce limit is 4 s).
    wait_for(Duration::from_secs(30), || maintenance.exists().then_some(())).expect("the pre-hook never ran");
    d.kill9();
    let _ = run.wait();
    assert!(maintenance.exists(), "the post-hook ran before the kill; the test needs the kill inside the quiesce");
    assert!(d.state_dir().join("quiesce").join(id).is_file(), "no mark of the quiesced stack");

    d.start();
    assert!(!maintenance.exists(), "the app is still in maintenance mode after the restart");
    assert!(!d.state_dir().join("quiesce").join(id).exists(), "the mark stayed after the post-hook ran");
    let list = d.json(&["backup", "list"]);
    assert!(list.as_array().unwrap().iter().all(|s| s["label"] != id), "an interrupted backup left a snapshot: {list}");
    let audit: Vec<serde_json::Value> = d.ok(&["audit", "export"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        audit.iter().any(|r| r["action"] == "backup_failed" && r["outcome"] == "failed" && r["target"] == format!("stack:{id}") && r.to_string().contains("post-hooks ran")),
        "no audit record of the interrupted backup"
    );
    let alerts = d.json(&["alerts"]).to_string();
    assert!(alerts.contains(&format!("backup_failed:{id}")), "no alert for the interrupted backup: {alerts}");
    // The next backup runs as usual (it stops at the fixture's quiesce limit again, and takes
    // the app out of maintenance mode itself).
    let o = d.cli(&["backup", "run", id, "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["steps"].as_array().unwrap().iter().any(|s| s["step"] == "post-hook" && s["ok"] == true), "{r}");
    assert!(!maintenance.exists());
    assert!(!d.state_dir().join("quiesce").join(id).exists());
}

/// BK-11: the daemon killed during a prune, at the first removal of each kind — a snapshot file
/// (forget), an old index file and an old pack (prune, after the new index is written). strace
/// attached to the real daemon kills it at that system call, before the file is gone. After each
/// kill and a restart, the snapshot retention keeps is listed and restores with stock restic,
/// whose `check --read-data` passes; the next prune finishes what the killed one began.
#[test]
fn kill_9_at_each_kind_of_removal_in_a_prune_keeps_what_retention_keeps() {
    ensure_images();
    let id = "duo-prune";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/duo"), id)]);
    let target = d.dir.path().join("nas");
    d.append_config(&format!("backup_targets:\n  - name: nas\n    path: {}\nbackup_retention:\n  keep_last: 1\n", target.display()));
    d.start();
    let kit = d.dir.path().join("kit.txt");
    d.ok(&["keys", "init", "--out", kit.to_str().unwrap()]);
    let (p1, p2) = (format!("first_port={}", free_port()), format!("second_port={}", free_port()));
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);
    let vol = std::path::PathBuf::from(docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &format!("hafen-{id}-one")]).trim());
    // Three backups, each of other data: the first two become garbage once forgotten.
    let mut newest = String::new();
    for n in 1..=3 {
        let _ = std::fs::remove_file(vol.join(format!("akte-{}.bin", n - 1)));
        let st = Command::new("sh").arg("-c").arg(format!("head -c 3000000 /dev/urandom > {}/akte-{n}.bin", vol.display())).status().unwrap();
        assert!(st.success());
        // (Often within one second: retention orders them by their full time.)
        let r = d.json(&["backup", "run", id]);
        assert!(r["error"].is_null(), "{r}");
        newest = r["snapshot"]["id"].as_str().unwrap()[..8].to_string();
    }
    let original = std::fs::read(vol.join("akte-3.bin")).unwrap();

    for kind in ["snapshots", "index", "data"] {
        let paths = files_below(&target.join(kind));
        assert!(!paths.is_empty(), "no {kind} files");
        let log = d.dir.path().join(format!("strace-{kind}.log"));
        let mut strace = d.strace(&log, "unlink,unlinkat", "signal=KILL:when=1", &paths.iter().map(|p| p.as_path()).collect::<Vec<_>>());
        let o = d.cli(&["backup", "prune"]);
        assert!(!o.status.success(), "the prune finished although it was to be killed at the first removal below {kind}/: {}", String::from_utf8_lossy(&o.stdout));
        let _ = strace.wait();
        let traced = std::fs::read_to_string(&log).unwrap();
        assert!(traced.contains("killed by SIGKILL"), "{traced}");
        let removed: Vec<&str> = traced.lines().filter(|l| l.contains("unlink(") || l.contains("unlinkat(")).collect();
        assert!(!removed.is_empty(), "{traced}");
        assert!(removed.iter().all(|l| l.contains(&format!("/{kind}/"))), "killed elsewhere than at a removal below {kind}/: {removed:?}");
        let _ = d.child.take().unwrap().wait();

        d.start();
        let list = d.json(&["backup", "list"]);
        assert!(list.as_array().unwrap().iter().any(|s| s["id"].as_str().is_some_and(|i| i.starts_with(&newest))), "the snapshot retention keeps is gone after a kill at {kind}: {list}");
        let o = restic(&d, &target, &kit, &["check", "--read-data"]);
        assert!(o.status.success(), "after a kill at {kind}: {}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        let r = d.dir.path().join(format!("r-{kind}"));
        let o = restic(&d, &target, &kit, &["restore", &newest, "--include", "/volumes/one/akte-3.bin", "--target", r.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(std::fs::read(r.join("volumes/one/akte-3.bin")).unwrap(), original, "restored data differs after a kill at {kind}");
    }

    // The next prune finishes: one snapshot, and of the three files of random data only the
    // newest is still stored (each is 3 MB that no compression shrinks).
    let size = |dir: &std::path::Path| files_below(dir).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum::<u64>();
    let pruned = d.json(&["backup", "prune"]);
    assert!(pruned["skipped"].is_null(), "{pruned}");
    let list = d.json(&["backup", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let data = size(&target.join("data"));
    assert!((3_000_000..4_500_000).contains(&data), "unused data left after the prune: {data} bytes in data/");
    let o = restic(&d, &target, &kit, &["check", "--read-data"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}
