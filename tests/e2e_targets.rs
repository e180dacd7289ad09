//! The Tryton stack backed up to real remote servers that the test starts on 127.0.0.1:
//! OpenSSH's sshd (SFTP), Garage (S3) and `rclone serve restic --append-only` (REST). The
//! records come back from SFTP and from S3 after the stack and its volumes were destroyed; the
//! append-only target refuses prune; stock restic reads the S3 and REST repositories; the offline
//! restore reaches SFTP and S3 with only the recovery kit and the target's credentials.

mod common;
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A server started by a `tests/servers/*.sh` script; stopped when dropped.
struct Server {
    dir: PathBuf,
    env: BTreeMap<String, String>,
}

impl Server {
    fn start(script: &str, dir: &Path, args: &[&str]) -> Server {
        let o = Command::new(root().join("tests/servers").join(script)).arg(dir).args(args).output().unwrap();
        assert!(o.status.success(), "{script}: {}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        let env = String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Server { dir: dir.to_path_buf(), env }
    }

    fn get(&self, k: &str) -> &str {
        self.env.get(k).unwrap_or_else(|| panic!("the server printed no {k}: {:?}", self.env))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(root().join("tests/servers/stop.sh")).arg(&self.dir).status();
    }
}

fn party_count(port: u16, pw: &str, name: &str) -> usize {
    let r = tryton_rpc(port, "/tryton/", "common.db.login", json!(["admin", {"password": pw}, "en"]));
    let (uid, session) = (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string());
    tryton_session_rpc(port, "tryton", "admin", uid, &session, "model.party.party.search_read", json!([[["name", "=", name]], 0, null, null, ["name"], {}]))
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0)
}

fn create_party(port: u16, pw: &str, name: &str) {
    let r = tryton_rpc(port, "/tryton/", "common.db.login", json!(["admin", {"password": pw}, "en"]));
    let (uid, session) = (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string());
    tryton_session_rpc(port, "tryton", "admin", uid, &session, "model.party.party.create", json!([[{"name": name}], {}]));
}

#[test]
fn tryton_backs_up_to_sftp_s3_and_append_only_rest_and_comes_back() {
    ensure_images();
    let id = "tryton-remote";
    let mut d = Daemon::new(&[(&root().join("stacks/tryton"), id)]);
    let sftp = Server::start("sftp.sh", &d.dir.path().join("srv-sftp"), &[]);
    let s3 = Server::start("s3.sh", &d.dir.path().join("srv-s3"), &[]);
    let rest = Server::start("rest.sh", &d.dir.path().join("srv-rest"), &[]);
    let creds = d.dir.path().join("s3.env");
    std::fs::write(&creds, format!("AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n", s3.get("ACCESS_KEY_ID"), s3.get("SECRET_ACCESS_KEY"))).unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    d.append_config(&format!(
        "backup_targets:\n  - name: offsite\n    type: sftp\n    host: 127.0.0.1\n    port: {port}\n    user: {user}\n    path: {root}/hafen\n    ssh_key: {key}\n    known_hosts: {kh}\n  - name: cloud\n    type: s3\n    endpoint: {ep}\n    region: {region}\n    bucket: {bucket}\n    path: box1\n    credentials: {creds}\n  - name: vault\n    type: rest\n    url: {url}\n    append_only: true\n",
        port = sftp.get("PORT"),
        user = sftp.get("USER"),
        root = sftp.get("ROOT"),
        key = sftp.get("KEY"),
        kh = sftp.get("KNOWN_HOSTS"),
        ep = s3.get("ENDPOINT"),
        region = s3.get("REGION"),
        bucket = s3.get("BUCKET"),
        creds = creds.display(),
        url = rest.get("URL"),
    ));
    d.start();
    let kit = d.dir.path().join("kit.txt");
    d.ok(&["keys", "init", "--label", "tresor", "--out", kit.to_str().unwrap()]);
    let kit_text = std::fs::read_to_string(&kit).unwrap();
    for loc in [format!("s3:{}/{}/box1", s3.get("ENDPOINT"), s3.get("BUCKET")), format!("rest:{}", rest.get("URL"))] {
        assert!(kit_text.contains(&loc), "the kit does not name {loc}");
    }
    let port = free_port();
    d.ok(&["stack", "deploy", id, "--set", &format!("http_port={port}"), "--wait", "900"]);
    let pw = d.secret(id, "admin_password");
    create_party(port, &pw, "Wohngruppe Lindenhof");

    for t in ["offsite", "cloud", "vault"] {
        let r = d.json(&["backup", "run", id, "--target", t]);
        assert!(r["error"].is_null(), "{t}: {r}");
        let list = d.json(&["backup", "list", "--target", t]);
        assert_eq!(list.as_array().unwrap().len(), 1, "{t}: {list}");
    }
    // Nothing secret in the daemon's log.
    assert!(!d.log().contains(s3.get("SECRET_ACCESS_KEY")), "the S3 secret key is in the log");

    // Append-only: hafen never deletes there and says what to do instead.
    let o = d.cli(&["backup", "prune", "--target", "vault"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("append-only") && err.contains("restic forget --prune"), "{err}");
    let pruned = d.json(&["backup", "prune", "--target", "cloud"]);
    assert_eq!(pruned["kept"].as_array().unwrap().len(), 1, "{pruned}");

    // Stock restic reads the S3 and REST repositories with the key from the recovery kit.
    let identity = kit_text.lines().map(str::trim).find(|l| l.starts_with("AGE-SECRET-KEY-1")).unwrap().to_string();
    let block = |loc: &str| -> Vec<u8> {
        let mut lines = kit_text.lines().map(str::trim).skip_while(|l| !l.ends_with(&format!(": {loc}"))).skip_while(|l| !l.starts_with("-----BEGIN"));
        let mut out = String::new();
        for l in lines.by_ref() {
            out.push_str(l);
            out.push('\n');
            if l.starts_with("-----END") {
                break;
            }
        }
        out.into_bytes()
    };
    let s3_loc = format!("s3:{}/{}/box1", s3.get("ENDPOINT"), s3.get("BUCKET"));
    let rest_loc = format!("rest:{}", rest.get("URL"));
    for loc in [&s3_loc, &rest_loc] {
        let key = hafen_backup::keys::decrypt(&identity, &block(loc), loc).expect("the kit's key block opens with the identity");
        let pwfile = d.dir.path().join("pw");
        std::fs::write(&pwfile, key).unwrap();
        let o = Command::new("restic")
            .args(["-r", loc, "--password-file"])
            .arg(&pwfile)
            .args(["snapshots", "--json"])
            .env("AWS_ACCESS_KEY_ID", s3.get("ACCESS_KEY_ID"))
            .env("AWS_SECRET_ACCESS_KEY", s3.get("SECRET_ACCESS_KEY"))
            .env("AWS_DEFAULT_REGION", s3.get("REGION"))
            .env("RESTIC_CACHE_DIR", d.dir.path().join("rc"))
            .output()
            .unwrap();
        assert!(o.status.success(), "restic on {loc}: {}", String::from_utf8_lossy(&o.stderr));
        let snaps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let snaps = snaps.as_array().unwrap();
        let tagged = |t: &str| snaps.iter().filter(|s| s["tags"].as_array().is_some_and(|a| a.iter().any(|x| x == t))).count();
        assert_eq!(tagged(&format!("stack:{id}")), 1, "{loc}: {snaps:?}");
        // One snapshot per run, written once its capture succeeded: nothing to delete
        // afterwards, also on the append-only server.
        assert_eq!(snaps.len(), 1, "{loc}: {snaps:?}");
    }

    // Destroy the stack with its volumes, deploy it fresh, restore from SFTP, then from S3.
    for t in ["offsite", "cloud"] {
        create_party(port, &pw, &format!("Nach der Sicherung {t}"));
        d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
        assert!(docker(&["volume", "ls", "-q", "--filter", &format!("label=org.hafen.stack={id}")]).trim().is_empty(), "volumes survived the purge");
        d.ok(&["stack", "deploy", id, "--set", &format!("http_port={port}"), "--wait", "900"]);
        let pw_new = d.secret(id, "admin_password");
        assert_eq!(party_count(port, &pw_new, "Wohngruppe Lindenhof"), 0, "a fresh stack already has the record");
        let r = d.json(&["restore", "--stack", id, "--target", t]);
        assert!(r["error"].is_null(), "{t}: {r}");
        // The restored database belongs with the restored secrets.
        let pw_back = d.secret(id, "admin_password");
        assert_eq!(pw_back, pw, "{t}: the admin password did not come back");
        assert_eq!(party_count(port, &pw, "Wohngruppe Lindenhof"), 1, "{t}: the record did not come back");
        assert_eq!(party_count(port, &pw, &format!("Nach der Sicherung {t}")), 0, "{t}");
    }

    // Offline, on "another machine": only the kit and the target's own credentials.
    let offline = |args: &[&str]| Command::new(bin()).args(["restore", "--identity", kit.to_str().unwrap()]).args(args).env("HAFEN_LANG", "en").output().unwrap();
    let sftp_loc = format!("sftp://{}@127.0.0.1:{}/{}/hafen", sftp.get("USER"), sftp.get("PORT"), sftp.get("ROOT").trim_start_matches('/'));
    let out = d.dir.path().join("from-sftp");
    let o = offline(&["--repo", &sftp_loc, "--ssh-key", sftp.get("KEY"), "--known-hosts", sftp.get("KNOWN_HOSTS"), "latest", "--stack", id, "--path", "/dumps/tryton.sql", "--to", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_to_string(out.join("tryton.sql")).unwrap().contains("Wohngruppe Lindenhof"));
    let o = offline(&["--repo", &s3_loc, "--credentials", creds.to_str().unwrap(), "--region", s3.get("REGION"), "--list", "--stack", id, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snaps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
    // Credentials a stranger could read are refused before anything is sent.
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = offline(&["--repo", &s3_loc, "--credentials", creds.to_str().unwrap(), "--region", s3.get("REGION"), "--list"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("chmod 600"), "{}", String::from_utf8_lossy(&o.stderr));
}
