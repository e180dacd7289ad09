//! End to end on the real engine with the real Tryton stack: deploy, wait for hafen's probes,
//! fetch the web client, log in through JSON-RPC with the generated password, create a record,
//! redeploy (empty plan), remove a container by hand (it comes back), remove the stack (data
//! volumes kept), deploy again (the record is still there), purge.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

fn login(d: &Daemon, id: &str, port: u16) -> (i64, String) {
    let pw = d.secret(id, "admin_password");
    let r = tryton_rpc(port, "/tryton/", "common.db.login", json!(["admin", {"password": pw}, "en"]));
    (r[0].as_i64().expect("user id"), r[1].as_str().expect("session").to_string())
}

#[test]
fn tryton_deploy_login_drift_remove_keeps_data() {
    ensure_images();
    let id = "tryton-e2e";
    let mut d = Daemon::new(&[(&root().join("stacks/tryton"), id)]);
    d.start();
    let port = free_port();
    let set = format!("http_port={port}");

    let dry = d.ok(&["stack", "deploy", id, "--set", &set, "--dry-run"]);
    assert!(dry.contains("create service hafen-tryton-e2e-db") && dry.contains("dry run"), "{dry}");
    assert!(containers_of(id).is_empty(), "a dry run created containers");

    let out = d.ok(&["stack", "deploy", id, "--set", &set, "--wait", "900"]);
    assert!(out.contains("tryton-e2e is healthy"), "{out}");

    let (code, body) = http_get(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(code, 200);
    assert!(body.to_lowercase().contains("tryton"), "web client page: {}", &body[..body.len().min(300)]);

    let (uid, session) = login(&d, id, port);
    let created = tryton_session_rpc(port, "tryton", "admin", uid, &session, "model.party.party.create", json!([[{"name": "Kinderhaus Sonnenschein e.V."}], {}]));
    assert!(created[0].as_i64().is_some(), "{created}");

    // Redeploy: nothing to do.
    let again = d.ok(&["stack", "deploy", id, "--wait", "0"]);
    assert!(again.contains("Nothing to do"), "{again}");

    // The generated secrets are files with tight permissions, never in the environment.
    let env = docker(&["inspect", "-f", "{{json .Config.Env}}", "hafen-tryton-e2e-server"]);
    assert!(!env.contains(&d.secret(id, "admin_password")), "secret leaked into env");
    let meta = std::fs::metadata(d.state_dir().join("run/tryton-e2e/server/admin_password")).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!((meta.permissions().mode() & 0o777, meta.uid()), (0o400, 1001));

    // A container removed by hand comes back.
    let before = docker(&["inspect", "-f", "{{.Id}}", "hafen-tryton-e2e-server"]);
    docker(&["rm", "-f", "hafen-tryton-e2e-server"]);
    let (_, took) = wait_for(Duration::from_secs(60), || {
        let id2 = docker(&["inspect", "-f", "{{.Id}} {{.State.Running}}", "hafen-tryton-e2e-server"]);
        (id2.ends_with("true") && !id2.starts_with(&before)).then_some(())
    })
    .expect("removed container did not come back");
    println!("removed container was back after {:.1}s", took.as_secs_f64());
    assert_eq!(containers_of(id), vec!["hafen-tryton-e2e-db", "hafen-tryton-e2e-server"]);

    // Remove the stack: services and network go, data volumes stay.
    let rm = d.ok(&["stack", "remove", id]);
    assert!(rm.contains("Data volumes kept"), "{rm}");
    assert!(containers_of(id).is_empty());
    let vols = docker(&["volume", "ls", "-q", "--filter", "label=org.hafen.stack=tryton-e2e"]);
    assert!(vols.contains("hafen-tryton-e2e-db") && vols.contains("hafen-tryton-e2e-data"), "{vols}");

    // Deploy again: same data, same password.
    d.ok(&["stack", "deploy", id, "--wait", "900"]);
    let (uid, session) = login(&d, id, port);
    let found = tryton_session_rpc(
        port,
        "tryton",
        "admin",
        uid,
        &session,
        "model.party.party.search_read",
        json!([[["name", "=", "Kinderhaus Sonnenschein e.V."]], 0, null, null, ["name"], {}]),
    );
    assert_eq!(found.as_array().map(|a| a.len()), Some(1), "{found}");

    // Purge with confirmation deletes the volumes.
    d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
    assert!(docker(&["volume", "ls", "-q", "--filter", "label=org.hafen.stack=tryton-e2e"]).is_empty());
    let events = d.ok(&["events"]);
    assert!(events.contains("drift_repaired") && events.contains("stack_removed"), "{events}");
}
