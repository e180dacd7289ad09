//! Scheduled backups through the real daemon and engine: runs on its cron schedule and keeps
//! only what the retention policy says; a run missed while the daemon was down runs exactly
//! once after start.

mod common;
use common::*;
use std::time::Duration;

fn finished_by_scheduler(d: &Daemon, id: &str) -> usize {
    let out = d.ok(&["events", "--stack", id, "--json"]);
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "backup_finished" && e["actor"] == "scheduler")
        .count()
}

fn setup(id: &str, extra: &str) -> Daemon {
    ensure_images();
    let d = Daemon::new(&[(&root().join("tests/fixtures/stacks/duo"), id)]);
    let target = d.dir.path().join("nas");
    d.append_config(&format!("backup_targets:\n  - name: nas\n    path: {}\n{extra}", target.display()));
    d.ok(&["keys", "init"]);
    d
}

#[test]
fn scheduled_backups_run_and_retention_keeps_the_last_two() {
    let id = "duo-sched";
    let mut d = setup(id, "backup_schedule: \"*/3 * * * * *\"\nbackup_retention:\n  keep_last: 2\n");
    d.start();
    let (p1, p2) = (format!("first_port={}", free_port()), format!("second_port={}", free_port()));
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);
    wait_for(Duration::from_secs(180), || {
        let n = finished_by_scheduler(&d, id);
        let snaps = d.json(&["backup", "list"]).as_array().map(|a| a.iter().filter(|s| s["label"] == id).count()).unwrap_or(0);
        (n >= 3 && snaps == 2).then_some(())
    })
    .expect("three scheduled runs with two snapshots kept");
    // hafen's own state is backed up with every nightly run, under the same retention.
    let list = d.json(&["backup", "list"]);
    let (mine, host): (Vec<_>, Vec<_>) = list.as_array().unwrap().iter().partition(|s| s["tags"].as_array().unwrap().iter().any(|t| t == &serde_json::json!(format!("stack:{id}"))));
    assert_eq!(mine.len(), 2, "{list}");
    assert!(host.len() <= 2 && !host.is_empty() && host.iter().all(|s| s["label"] == "hafen-host"), "{list}");
}

#[test]
fn a_missed_nightly_run_runs_once_after_start() {
    let id = "duo-catchup";
    let mut d = setup(id, "");
    d.start();
    let (p1, p2) = (format!("first_port={}", free_port()), format!("second_port={}", free_port()));
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);
    assert!(d.sigterm().success());
    // The box was off for two nights.
    let store = hafen::store::Store::open(&d.state_dir().join("state.db")).unwrap();
    store.set_job("nightly-backup", &(chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339(), None).unwrap();
    drop(store);
    d.start();
    wait_for(Duration::from_secs(120), || (finished_by_scheduler(&d, id) == 1).then_some(())).expect("no catch-up run");
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(finished_by_scheduler(&d, id), 1, "more than one catch-up run");
    let list = d.json(&["backup", "list"]);
    assert_eq!(list.as_array().unwrap().iter().filter(|s| s["label"] == id).count(), 1, "{list}");
    assert_eq!(list.as_array().unwrap().iter().filter(|s| s["label"] == "hafen-host").count(), 1, "{list}");
}
