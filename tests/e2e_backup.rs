//! Backups of the real Tryton stack: refused without a recovery recipient; after `keys init`,
//! one app-consistent snapshot (streamed pg_dump, volumes, hafen's record and secrets) in a
//! restic-format repository; the data comes back with only the recovery identity and Debian's
//! stock restic; a full read check passes; a damaged pack is found by the read check and
//! repaired (planned first, offline with only the kit and through the daemon).

mod common;
use common::*;
use serde_json::json;

/// Flips one byte in the middle of the repository's largest pack (bit rot); returns its path.
fn flip_a_byte_in_the_largest_pack(repo: &std::path::Path) -> std::path::PathBuf {
    let mut packs: Vec<std::path::PathBuf> = Vec::new();
    let mut dirs = vec![repo.join("data")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { dirs.push(p) } else { packs.push(p) }
        }
    }
    let pack = packs.into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&pack, &bytes).unwrap();
    pack
}

#[test]
fn tryton_backup_restores_with_only_the_recovery_identity_and_stock_restic() {
    ensure_images();
    let id = "tryton-bk";
    let mut d = Daemon::new(&[(&root().join("stacks/tryton"), id)]);
    let target = d.dir.path().join("usb");
    d.append_config(&format!("backup_targets:\n  - name: usb\n    path: {}\n", target.display()));
    d.start();
    let port = free_port();
    d.ok(&["stack", "deploy", id, "--set", &format!("http_port={port}"), "--wait", "900"]);
    let pw = d.secret(id, "admin_password");
    let r = tryton_rpc(port, "/tryton/", "common.db.login", json!(["admin", {"password": pw}, "en"]));
    let (uid, session) = (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string());
    tryton_session_rpc(port, "tryton", "admin", uid, &session, "model.party.party.create", json!([[{"name": "Jugendhilfe Nordstadt gGmbH"}], {}]));

    // Without a recovery recipient no repository is created: its data could only be read here.
    let o = d.cli(&["backup", "run", id]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("hafen keys init"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!target.join("config").exists());

    let kit = d.ok(&["keys", "init", "--label", "tresor"]);
    let identity = kit.lines().map(str::trim).find(|l| l.starts_with("AGE-SECRET-KEY-1")).expect("identity in the kit").to_string();

    let report = d.json(&["backup", "run", id]);
    assert!(report["error"].is_null(), "{report}");
    assert!(report["snapshot"]["id"].is_string(), "{report}");
    assert!(report["steps"].as_array().unwrap().iter().any(|s| s["step"] == "dump tryton.sql" && s["ok"] == true), "{report}");
    let list = d.json(&["backup", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0]["tags"].as_array().unwrap().iter().any(|t| t == "stack:tryton-bk"));
    let check = d.json(&["backup", "check", "--read-data"]);
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");

    // The emergency path: recovery identity + the key file in the target + stock restic.
    let wrapped = std::fs::read(target.join("hafen-repo-key.age")).expect("key file in the target");
    let key = hafen_backup::keys::decrypt(&identity, &wrapped, "repo key").expect("the recovery identity opens the repository key");
    let pwfile = d.dir.path().join("repo.pw");
    std::fs::write(&pwfile, &key).unwrap();
    let restored = d.dir.path().join("restored");
    let out = std::process::Command::new("restic")
        .arg("-r")
        .arg(&target)
        .arg("--password-file")
        .arg(&pwfile)
        .args(["restore", "latest", "--tag", "stack:tryton-bk", "--target"])
        .arg(&restored)
        .env("RESTIC_CACHE_DIR", d.dir.path().join("restic-cache"))
        .output()
        .expect("restic");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dump = std::fs::read_to_string(restored.join("dumps/tryton.sql")).unwrap();
    assert!(dump.contains("PostgreSQL database dump complete"), "dump is incomplete");
    assert!(dump.contains("Jugendhilfe Nordstadt gGmbH"), "the record is not in the dump");
    assert_eq!(std::fs::read_to_string(restored.join("hafen/secrets/admin_password")).unwrap(), pw);
    assert!(restored.join("hafen/meta/stack.yaml").is_file() && restored.join("hafen/meta/run.json").is_file());
    assert!(restored.join("volumes/data").is_dir());
    // hafen's own emergency restore: offline, with only the repository and the recovery identity.
    let idfile = d.dir.path().join("recovery.txt");
    std::fs::write(&idfile, format!("{identity}\n")).unwrap();
    let restore = |args: &[&str]| {
        std::process::Command::new(bin())
            .args(["restore", "--repo"])
            .arg(&target)
            .arg("--identity")
            .arg(&idfile)
            .args(args)
            .env("HAFEN_LANG", "en")
            .output()
            .unwrap()
    };
    let o = restore(&["--list", "--stack", id, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snaps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    let mine = d.dir.path().join("mine");
    let mine_s = mine.to_str().unwrap().to_string();
    let o = restore(&["latest", "--stack", id, "--path", "/dumps/tryton.sql", "--to", &mine_s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(mine.join("tryton.sql")).unwrap(), dump);
    let o = restore(&["latest", "--stack", id, "--to", &mine_s]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("is not empty"), "{}", String::from_utf8_lossy(&o.stderr));
    // A copy of the target with one flipped byte in its largest data pack, as an admin in an
    // emergency would meet it: the offline restore refuses in German, names the damage, shows
    // no panic and leaves nothing; the offline check with only the kit names the pack.
    let copy = d.dir.path().join("usb-copy");
    assert!(std::process::Command::new("cp").arg("-a").arg(&target).arg(&copy).status().unwrap().success());
    let pack = flip_a_byte_in_the_largest_pack(&copy);
    let in_german = |args: &[&str]| std::process::Command::new(bin()).args(["restore", "--repo"]).arg(&copy).arg("--identity").arg(&idfile).args(args).env("HAFEN_LANG", "de").output().unwrap();
    let damaged_to = d.dir.path().join("from-damaged");
    let o = in_german(&["latest", "--stack", id, "--to", damaged_to.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("beschädigte Daten") && err.contains("--check --read-data"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace") && !err.contains("MAC"), "{err}");
    assert!(!damaged_to.exists() || std::fs::read_dir(&damaged_to).unwrap().next().is_none(), "the damaged restore left files");
    let o = in_german(&["--check", "--read-data"]);
    let name = pack.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&name[..8]), "the check names pack {name}: {}", String::from_utf8_lossy(&o.stdout));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("beschädigt") && !said.contains("damaged") && !said.contains("pack "), "the check's finding is not in German: {said}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Problem"), "{}", String::from_utf8_lossy(&o.stderr));
    // A truncated snapshot file is skipped and named; listing still works.
    let snap_file = std::fs::read_dir(copy.join("snapshots")).unwrap().next().unwrap().unwrap().path();
    let bytes = std::fs::read(&snap_file).unwrap();
    std::fs::write(&snap_file, &bytes[..bytes.len() / 2]).unwrap();
    let o = in_german(&["--list"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("wird übersprungen") && err.contains(&*snap_file.file_name().unwrap().to_string_lossy()), "{err}");
    // The repair with only the kit, in German: the plan first (it names the pack and the
    // snapshot file and changes nothing), then applied; afterwards the full check passes.
    let o = in_german(&["--repair"]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string());
    assert!(o.status.success() && out.contains("Reparaturplan") && out.contains(&name[..8]) && out.contains("--repair --apply"), "{out}{err}");
    assert!(out.contains(&snap_file.file_name().unwrap().to_string_lossy()[..8]), "the plan names the snapshot file: {out}");
    assert!(pack.exists() && snap_file.exists(), "the plan changed the repository");
    let english = ["damaged", "lost", "blob", "index file", "nothing", "panicked"];
    assert!(english.iter().all(|w| !out.contains(w) && !err.contains(w)), "English in a German repair plan:\n{out}{err}");
    let o = in_german(&["--repair", "--apply"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success() && out.contains("repariert"), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(!pack.exists() && !snap_file.exists(), "the damaged pack and snapshot file are gone");
    let o = in_german(&["--check", "--read-data"]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));

    let stranger = hafen_backup::keys::generate_identity();
    std::fs::write(&idfile, stranger.expose_secret()).unwrap();
    let o = restore(&["--list"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("cannot decrypt"), "{}", String::from_utf8_lossy(&o.stderr));

    // Damage on the live target: the read check names it; the repair through the daemon is
    // planned first (in German), then applied — an event and an audit record — and the next
    // backup runs and is whole.
    let live_pack = flip_a_byte_in_the_largest_pack(&target);
    let o = d.cli(&["backup", "check", "--read-data", "--json"]);
    let check: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let problems = check["problems"].as_array().unwrap();
    let pack_name = live_pack.file_name().unwrap().to_string_lossy().to_string();
    assert!(!o.status.success() && problems.iter().any(|p| p.as_str().unwrap().contains(&pack_name[..8])), "{check}");
    // One line each, fit for an alert mail: no backtrace, no library explanation.
    assert!(problems.iter().all(|p| !p.as_str().unwrap().contains('\n') && !p.as_str().unwrap().contains("Backtrace")), "{check}");
    let o = d.cli_in("de", &["backup", "repair"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success() && out.contains("Reparaturplan") && out.contains("hafen backup repair --apply"), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(live_pack.exists());
    let repaired = d.json(&["backup", "repair", "--apply"]);
    assert!(repaired["applied"] == true && repaired["damaged_packs"].as_array().unwrap().len() == 1, "{repaired}");
    assert!(!live_pack.exists());
    let report = d.json(&["backup", "run", id]);
    assert!(report["error"].is_null(), "{report}");
    let new_snap = report["snapshot"]["id"].as_str().unwrap().to_string();
    let plan = d.json(&["backup", "repair"]);
    assert!(plan["damaged_packs"].as_array().unwrap().is_empty(), "{plan}");
    assert!(!plan["snapshots_incomplete"].as_array().unwrap().iter().any(|s| s["snapshot"]["id"] == new_snap.as_str()), "the new snapshot is incomplete: {plan}");
    let audit: Vec<serde_json::Value> = d.ok(&["audit", "export"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(audit.iter().any(|r| r["action"] == "backup_repaired" && r["target"] == "target:usb"), "no audit record of the repair");

    // Restore in place: what was added after the backup is gone, what was backed up is back.
    tryton_session_rpc(port, "tryton", "admin", uid, &session, "model.party.party.create", json!([[{"name": "Nach der Sicherung"}], {}]));
    let report = d.json(&["restore", "--stack", id]);
    assert!(report["error"].is_null(), "{report}");
    assert!(report["steps"].as_array().unwrap().iter().any(|s| s["step"] == "load tryton.sql" && s["ok"] == true), "{report}");
    let r = tryton_rpc(port, "/tryton/", "common.db.login", json!(["admin", {"password": pw}, "en"]));
    let (uid, session) = (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string());
    let names = |name: &str| {
        tryton_session_rpc(port, "tryton", "admin", uid, &session, "model.party.party.search_read", json!([[["name", "=", name]], 0, null, null, ["name"], {}]))
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0)
    };
    assert_eq!(names("Jugendhilfe Nordstadt gGmbH"), 1);
    assert_eq!(names("Nach der Sicherung"), 0);
    assert_eq!(http_get(&format!("http://127.0.0.1:{port}/")).0, 200);
    // A restore that fails (here: loading the dump) puts the previous state back.
    tryton_session_rpc(port, "tryton", "admin", uid, &session, "model.party.party.create", json!([[{"name": "Nach der Wiederherstellung"}], {}]));
    let def = d.dir.path().join("stacks").join(id).join("stack.yaml");
    let text = std::fs::read_to_string(&def).unwrap();
    std::fs::write(&def, text.replace("restore: [psql, -U, tryton, -d, tryton, -v, ON_ERROR_STOP=1, -q]", "restore: [sh, -c, 'cat >/dev/null; echo simulated failure >&2; exit 3']")).unwrap();
    // (A deployed stack runs by the definition it was deployed with: the edit counts once
    // deployed; it changes no service, so nothing is recreated.)
    d.ok(&["stack", "deploy", id]);
    // Read in German (the daemon speaks English): the steps and the failure in German, and the
    // command's own words (`simulated failure`) as they came.
    let o = d.cli_in("de", &["restore", "--stack", id]);
    assert!(!o.status.success());
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(err.contains("simulated failure") && err.contains("endete mit 3"), "{err}");
    assert!(out.contains("bisherige Volumes zurückgelegt") && out.contains("Dienste angehalten") && out.contains("Zwischenbereich"), "{out}");
    let english = ["exited with", "services stopped", "swapped", "staging", "previous volumes", "loaded", "failed", "restore of"];
    let shown = format!("{out}{err}").replace("simulated failure", "");
    let found: Vec<&&str> = english.iter().filter(|w| shown.contains(**w)).collect();
    assert!(found.is_empty(), "a German restore printed English {found:?}:\n{out}{err}");
    std::fs::write(&def, text).unwrap();
    d.ok(&["stack", "deploy", id]);
    wait_for(std::time::Duration::from_secs(300), || (d.json(&["stack", "show", id])["summary"]["state"] == "healthy").then_some(())).expect("not healthy after the rollback");
    let r = tryton_rpc(port, "/tryton/", "common.db.login", json!(["admin", {"password": pw}, "en"]));
    let (uid, session) = (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string());
    let after = tryton_session_rpc(port, "tryton", "admin", uid, &session, "model.party.party.search_read", json!([[["name", "=", "Nach der Wiederherstellung"]], 0, null, null, ["name"], {}]));
    assert_eq!(after.as_array().map(|a| a.len()), Some(1), "the rollback lost data: {after}");

    // No old data left lying around beside the volumes.
    let leftovers = std::process::Command::new("sh").arg("-c").arg("ls -d /var/lib/docker/volumes/hafen-tryton-bk-*/_data.* 2>/dev/null | wc -l").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&leftovers.stdout).trim(), "0");

    let events = d.ok(&["events", "--stack", id]);
    assert!(events.contains("backup_failed") && events.contains("backup_finished") && events.contains("restore_finished") && events.contains("restore_failed"), "{events}");

    // Every failure is an event and an audit record, and leaves no staging behind: a restore
    // that stops with an error (no such snapshot), an export that cannot be written.
    let o = d.cli(&["restore", "--stack", id, "0badc0de"]);
    assert!(!o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let o = d.cli(&["backup", "export", id, "--out", "/nonexistent-hafen-dir/x.tar.zst.age"]);
    assert!(!o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let audit: Vec<serde_json::Value> = d.ok(&["audit", "export"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failed = |action: &str, needle: &str| audit.iter().any(|r| r["action"] == action && r["outcome"] == "failed" && r.to_string().contains(needle));
    assert!(failed("restore_failed", "0badc0de"), "no audit record of the failed restore");
    assert!(failed("export_failed", "/nonexistent-hafen-dir"), "no audit record of the failed export");
    let staging = d.state_dir().join("restore");
    assert!(!staging.exists() || std::fs::read_dir(&staging).unwrap().next().is_none(), "staging left behind: {:?}", std::fs::read_dir(&staging).unwrap().collect::<Vec<_>>());
}
