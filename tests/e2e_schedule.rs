//! Scheduled backups through the real daemon and engine: runs on its cron schedule and keeps
//! only what the retention policy says, and pings the heartbeat URL after a good run; a run
//! missed while the daemon was down runs exactly once after start; a clock that jumps a year
//! forward or back runs no storm and removes no backup.

mod common;
use common::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A heartbeat receiver on 127.0.0.1: records the request line (`GET /path HTTP/1.1`) of every
/// request and answers 200 with an empty body. Returns its port and the lines seen so far.
fn heartbeat_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let mut r = BufReader::new(&conn);
            let mut request = String::new();
            if r.read_line(&mut request).unwrap_or(0) == 0 {
                continue;
            }
            loop {
                let mut header = String::new();
                if r.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            s.lock().unwrap().push(request.trim_end().to_string());
            let _ = (&conn).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, seen)
}

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
    let (hb_port, pings) = heartbeat_receiver();
    let mut d = setup(
        id,
        &format!("backup_schedule: \"*/3 * * * * *\"\nbackup_retention:\n  keep_last: 2\nnotify:\n  heartbeat_url: http://127.0.0.1:{hb_port}/ping/box1\n"),
    );
    d.start();
    let (p1, p2) = (format!("first_port={}", free_port()), format!("second_port={}", free_port()));
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);
    // Each run: the stack's backup, its retention, hafen's own state, its retention. Between two
    // runs (every 3 s) both keep exactly the last two; one listing must show that state.
    wait_for(Duration::from_secs(180), || {
        let n = finished_by_scheduler(&d, id);
        let list = d.json(&["backup", "list"]);
        let list = list.as_array()?;
        let mine = list.iter().filter(|s| s["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == &serde_json::json!(format!("stack:{id}"))))).count();
        let host = list.iter().filter(|s| s["label"] == "hafen-host").count();
        (n >= 3 && mine == 2 && host == 2 && list.len() == 4).then_some(())
    })
    .expect("three scheduled runs, the stack's and hafen's own state each keeping two snapshots");
    // A good nightly run queues the heartbeat; the notifier GETs the URL.
    let pinged = |p: &Vec<String>| p.iter().any(|l| l.starts_with("GET /ping/box1 "));
    wait_for(Duration::from_secs(60), || pinged(&pings.lock().unwrap()).then_some(()))
        .unwrap_or_else(|| panic!("no GET /ping/box1 after the scheduled runs; seen: {:?}\n{}", pings.lock().unwrap(), tail(&d.log(), 40)));
    let pings = pings.lock().unwrap().clone();
    assert!(pings.iter().all(|l| l.starts_with("GET /ping/box1 ")), "only heartbeat GETs reach the heartbeat URL: {pings:?}");
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
    let store = hafen_store::Store::open(&d.state_dir().join("state.db")).unwrap();
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

#[test]
fn the_rotating_read_check_runs_on_schedule_and_alerts_on_a_damaged_pack() {
    let id = "duo-readcheck";
    let mut d = setup(id, "backup_schedule: \"0 0 2 1 1 *\"\nbackup_check_schedule: \"*/3 * * * * *\"\nbackup_check_parts: 1\n");
    d.start();
    let (p1, p2) = (format!("first_port={}", free_port()), format!("second_port={}", free_port()));
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);
    assert!(d.json(&["backup", "run", id])["error"].is_null());
    let events = |kind: &str| -> Vec<serde_json::Value> {
        d.ok(&["events", "--json"]).lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).filter(|e| e["kind"] == kind && e["actor"] == "scheduler").collect()
    };
    wait_for(Duration::from_secs(60), || (!events("backup_checked").is_empty()).then_some(())).expect("no scheduled read check");
    assert_eq!(events("backup_checked")[0]["detail"]["subset"], "1/1");
    // Damage the largest pack: the next scheduled check alerts and names it.
    let target = d.dir.path().join("nas");
    let mut packs: Vec<std::path::PathBuf> = std::fs::read_dir(target.join("data"))
        .unwrap()
        .flat_map(|sub| std::fs::read_dir(sub.unwrap().path()).unwrap().map(|e| e.unwrap().path()))
        .collect();
    packs.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    let pack = &packs[0];
    let mut bytes = std::fs::read(pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(pack, bytes).unwrap();
    let name = pack.file_name().unwrap().to_string_lossy()[..8].to_string();
    let (failed, _) = wait_for(Duration::from_secs(60), || events("backup_check_failed").into_iter().next()).expect("no alert for the damaged pack");
    assert!(failed["message"].as_str().unwrap().contains(&name), "the alert does not name pack {name}: {failed}");
    // The alert goes out in the notifications' language (German by default), its finding too.
    let alerts = d.json(&["alerts"]).to_string();
    assert!(alerts.contains(&format!("Packdatei {name}")) && alerts.contains("beschädigt") && !alerts.contains("damaged"), "{alerts}");
}

/// TM-03, TM-04, TM-05: the box's clock jumps a year forward and back while hafen runs, and the
/// daemon then starts with a clock behind its newest snapshot. libfaketime sits in front of the
/// real daemon (its offset file is read at every call; the machine's clock is never touched).
/// Forward: exactly one catch-up run, not one per missed night, and retention (keep the last
/// one) removes nothing while the clock was just set — an event and one alert say so. Back:
/// no run at once, the nightly job waits for its next regular time instead of for a year. A
/// restart with the clock behind the newest snapshot removes nothing and alerts. Every snapshot
/// taken is still there at the end.
#[test]
fn the_clock_jumping_a_year_forward_and_back_runs_no_storm_and_removes_no_backup() {
    let id = "duo-clock";
    let mut d = setup(id, "backup_retention:\n  keep_last: 1\n");
    let offset = d.dir.path().join("faketime-offset");
    std::fs::write(&offset, "+0\n").unwrap();
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    assert!(std::path::Path::new(lib).exists(), "libfaketime is missing ({lib}): tests/run installs Debian's faketime");
    d.env = vec![
        ("LD_PRELOAD".into(), lib.into()),
        ("FAKETIME_TIMESTAMP_FILE".into(), offset.display().to_string()),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        // Timers and the boot clock run true; only the wall clock jumps.
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ];
    d.start();
    let (p1, p2) = (format!("first_port={}", free_port()), format!("second_port={}", free_port()));
    d.ok(&["stack", "deploy", id, "--set", &p1, "--set", &p2, "--wait", "120"]);
    assert!(d.json(&["backup", "run", id])["error"].is_null());
    let ids = |d: &Daemon| -> Vec<String> { d.json(&["backup", "list"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect() };
    let first = ids(&d);
    assert_eq!(first.len(), 1, "{first:?}");
    let events = |d: &Daemon, kind: &str| -> Vec<serde_json::Value> {
        d.ok(&["events", "--json"]).lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).filter(|e| e["kind"] == kind).collect()
    };

    // A year forward: one catch-up run (the nightly at 02:00 was missed 365 times).
    std::fs::write(&offset, "+365d\n").unwrap();
    wait_for(Duration::from_secs(120), || (finished_by_scheduler(&d, id) == 1).then_some(()))
        .unwrap_or_else(|| panic!("no catch-up run after the clock jumped forward:\n{}", tail(&d.log(), 30)));
    wait_for(Duration::from_secs(60), || (!events(&d, "retention_skipped").is_empty()).then_some(())).expect("retention was not skipped");
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(finished_by_scheduler(&d, id), 1, "more than one run after the jump:\n{}", tail(&d.log(), 30));
    let after_forward = ids(&d);
    assert_eq!(after_forward.len(), 3, "the stack's two snapshots and hafen's own state, nothing removed: {after_forward:?}");
    assert!(first.iter().all(|s| after_forward.contains(s)));
    let skipped = events(&d, "retention_skipped");
    assert!(skipped.iter().all(|e| e["detail"]["why"] == "clock_jumped"), "{skipped:?}");
    let jumped = events(&d, "clock_jumped");
    assert_eq!(jumped.len(), 1, "{jumped:?}");
    assert!(jumped[0]["detail"]["by_secs"].as_i64().unwrap() > 364 * 86_400, "{jumped:?}");
    let raised = |d: &Daemon, key: &str| events(d, "alert_raised").iter().filter(|e| e["detail"]["key"] == key).count();
    assert_eq!(raised(&d, "clock_jumped"), 1);
    let alerts = d.ok(&["alerts"]);
    assert!(alerts.contains("clock was set"), "{alerts}");
    let de = d.cli_in("de", &["alerts"]);
    let de = String::from_utf8_lossy(&de.stdout);
    assert!(de.contains("Die Uhr wurde verstellt") && !de.contains("clock"), "{de}");

    // Back a year: a second jump, no run at once; the job's last run (a year ahead) is set to
    // now, so the nightly runs at its next regular time.
    std::fs::write(&offset, "+0\n").unwrap();
    wait_for(Duration::from_secs(60), || (events(&d, "clock_jumped").len() == 2).then_some(())).unwrap_or_else(|| panic!("the jump back was not seen:\n{}", tail(&d.log(), 30)));
    wait_for(Duration::from_secs(30), || d.log().contains("the clock went back behind this job's last run").then_some(()))
        .unwrap_or_else(|| panic!("the nightly job still waits for its old last run:\n{}", tail(&d.log(), 30)));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(finished_by_scheduler(&d, id), 1, "a run right after the clock went back");
    assert!(d.sigterm().success());

    // The box starts with a clock behind its newest snapshot (taken a year ahead): a prune
    // removes nothing and the clock alert names the target.
    d.start();
    let pruned = d.json(&["backup", "prune"]);
    assert_eq!(pruned["forgotten"].as_array().unwrap().len(), 0, "{pruned}");
    assert!(pruned["skipped"].as_str().unwrap().contains("the clock says"), "{pruned}");
    assert!(events(&d, "retention_skipped").iter().any(|e| e["detail"]["why"] == "clock_behind"));
    assert_eq!(raised(&d, "clock_behind:nas"), 1);
    assert_eq!(ids(&d), after_forward, "every snapshot is still there");
    let check = d.json(&["backup", "check"]);
    assert!(check["problems"].as_array().is_some_and(|p| p.is_empty()), "{check}");
}
