//! End-to-end: watching, healing and alerting on the real engine. A killed service is restarted
//! (seen through the engine's events, recorded in the audit log); a probe that starts failing
//! makes the stack degraded, then unhealthy, with one alert and one resolved message; a service
//! that crashes at start is a crash loop: restarts stop, one alert; the engine cut off by a
//! proxy in front of its socket is reported, the API keeps answering, and after it returns
//! hafen resyncs without duplicate containers; a small backup disk filling up gives a warning,
//! then a critical alert with a forecast; a changed audit record is found.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

fn events_of(d: &Daemon, stack: &str) -> Vec<serde_json::Value> {
    d.ok(&["events", "--stack", stack, "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn audit(d: &Daemon) -> Vec<serde_json::Value> {
    d.ok(&["audit", "export"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn stack_health(d: &Daemon, stack: &str) -> String {
    let v = d.json(&["stack", "show", stack]);
    v["summary"]["health"].as_str().unwrap_or("?").to_string()
}

fn pid_of(container: &str) -> u32 {
    docker(&["inspect", "-f", "{{.State.Pid}}", container]).parse().unwrap_or(0)
}

#[test]
fn kill9_is_healed_a_failing_probe_alerts_once_and_the_audit_log_shows_tampering() {
    ensure_images();
    let hook = Receiver::start();
    let id = "watch-e2e";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/watch"), id)]);
    let port = free_port();
    d.append_config(&format!("notify:\n  webhooks:\n    - url: {}\nhealth:\n  host_check_interval: 2s\n", hook.url));
    d.start();
    d.ok(&["stack", "deploy", id, "--set", &format!("port={port}")]);
    wait_for(Duration::from_secs(120), || (stack_health(&d, id) == "healthy").then_some(()))
        .unwrap_or_else(|| panic!("stack not healthy: {}\n{}", d.ok(&["stack", "show", id]), tail(&d.log(), 40)));

    // Every named worker is listed, host checks included.
    let workers = d.json(&["worker", "list"]);
    let names: Vec<&str> = workers.as_array().unwrap().iter().filter_map(|w| w["name"].as_str()).collect();
    for w in ["reconciler", "prober", "backup-scheduler", "updater", "engine-watch", "notifier", "disk-space", "backup-disk", "memory", "clock", "smart", "backup-age"] {
        assert!(names.contains(&w), "worker {w} missing from {names:?}");
    }

    // kill -9 of the app's process: the engine reports `die`, hafen starts it again.
    let app = format!("hafen-{id}-app");
    let pid = pid_of(&app);
    assert!(pid > 0);
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    let ((), took) = wait_for(Duration::from_secs(30), || {
        let p = pid_of(&app);
        (p > 0 && p != pid).then_some(())
    })
    .unwrap_or_else(|| panic!("killed service not restarted:\n{}", tail(&d.log(), 40)));
    eprintln!("restarted after kill -9 within {took:?} (polling resolution 250 ms)");
    let restarted = wait_for(Duration::from_secs(10), || {
        audit(&d).into_iter().find(|r| r["action"] == "service_restarted" && r["target"] == format!("stack:{id}"))
    })
    .expect("restart in the audit log")
    .0;
    assert_eq!(restarted["actor"], "healer");
    assert!(restarted["detail"].as_str().unwrap().contains("killed"), "{restarted}");
    assert_eq!(docker(&["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", &app]), "no", "hafen, not Docker, restarts");
    wait_for(Duration::from_secs(60), || (stack_health(&d, id) == "healthy").then_some(())).expect("healthy again");

    // Both killed at once: the database (db) is started before the app that depends on it.
    let (pdb, papp) = (pid_of(&format!("hafen-{id}-db")), pid_of(&app));
    assert!(Command::new("kill").args(["-9", &papp.to_string(), &pdb.to_string()]).status().unwrap().success());
    wait_for(Duration::from_secs(60), || (pid_of(&app) > 0 && pid_of(&app) != papp && pid_of(&format!("hafen-{id}-db")) > 0).then_some(()))
        .unwrap_or_else(|| panic!("not both restarted:\n{}", tail(&d.log(), 30)));
    let started = |c: &str| docker(&["inspect", "-f", "{{.State.StartedAt}}", c]);
    let (sdb, sapp) = (started(&format!("hafen-{id}-db")), started(&app));
    assert!(sdb < sapp, "db started {sdb}, app {sapp}: the dependency first");
    wait_for(Duration::from_secs(60), || (stack_health(&d, id) == "healthy").then_some(())).expect("healthy again");

    // A probe that starts failing: degraded, then unhealthy, one alert; fixed: resolved once.
    let db = format!("hafen-{id}-db");
    docker(&["exec", &db, "touch", "/var/lib/radicale/collections/broken"]);
    let key = format!("stack_unhealthy:{id}");
    wait_for(Duration::from_secs(60), || (hook.count(&key, "problem") == 1).then_some(()))
        .unwrap_or_else(|| panic!("no alert; got {:?}\n{}", hook.keys(), tail(&d.log(), 40)));
    let seen: Vec<String> = events_of(&d, id).iter().filter(|e| e["kind"] == "stack_health_changed").map(|e| e["detail"]["to"].as_str().unwrap().to_string()).collect();
    let degraded = seen.iter().position(|s| s == "degraded").expect("degraded first");
    let unhealthy = seen.iter().position(|s| s == "unhealthy").expect("then unhealthy");
    assert!(degraded < unhealthy, "{seen:?}");
    let open = d.json(&["alerts"]);
    assert!(open.as_array().unwrap().iter().any(|a| a["key"] == key), "{open}");
    // The marker is on the volume: a restart does not help; the admin removes it.
    // (The healer may be restarting the service right now: repeat until the file is gone.)
    wait_for(Duration::from_secs(30), || {
        docker(&["exec", &db, "rm", "-f", "/var/lib/radicale/collections/broken"]);
        Command::new("docker").args(["exec", &db, "test", "!", "-e", "/var/lib/radicale/collections/broken"]).status().unwrap().success().then_some(())
    })
    .expect("marker removed");
    wait_for(Duration::from_secs(90), || (hook.count(&key, "resolved") == 1).then_some(()))
        .unwrap_or_else(|| panic!("no resolved message; got {:?}\n{}", hook.keys(), tail(&d.log(), 60)));
    assert_eq!(hook.count(&key, "problem"), 1, "alerted once: {:?}", hook.keys());
    assert_eq!(stack_health(&d, id), "healthy");
    let problem = hook.bodies.lock().unwrap().iter().find(|b| b["key"] == key && b["kind"] == "problem").cloned().unwrap();
    assert!(problem["text"].as_str().unwrap().contains("db"), "the message names the service: {problem}");

    // Metrics: the endpoint serves the stack's health and the restart.
    let (status, body) = http_get(&format!("http://{}/metrics", d.metrics_addr()));
    assert_eq!(status, 200);
    assert!(body.contains(&format!("hafen_stack_health{{stack=\"{id}\",state=\"healthy\"}} 1")), "{}", tail(&body, 30));
    assert!(body.contains(&format!("hafen_service_restarts_total{{stack=\"{id}\",service=\"app\"}}")), "{}", tail(&body, 30));
    assert!(body.contains("hafen_engine_up 1"), "{}", tail(&body, 30));
    assert!(body.contains("hafen_probe_latency_seconds_bucket"), "{}", tail(&body, 30));

    // The audit log verifies; one changed record is found and named.
    let v = d.json(&["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    let n = v["records"].as_i64().unwrap();
    assert!(n > 5);
    d.sigterm();
    {
        let c = rusqlite::Connection::open(d.state_dir().join("state.db")).unwrap();
        c.execute_batch("DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'api:uid=1000' WHERE seq = 3;").unwrap();
    }
    d.start();
    let out = d.cli(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "tampering must fail the check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("record 3"), "names the record: {err}");
    // The daemon found it by itself at start: a critical alert naming the first bad record.
    let alert = wait_for(Duration::from_secs(60), || {
        d.json(&["alerts"]).as_array().unwrap().iter().find(|a| a["key"] == "audit_broken").cloned()
    })
    .expect("no audit_broken alert after a start on a tampered log")
    .0;
    assert_eq!((alert["severity"].as_str(), alert["args"]["seq"].as_str()), (Some("critical"), Some("3")), "{alert}");
    // In German, with no English in the reason.
    let out = d.cli_in("de", &["audit", "verify"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Eintrag 3") && err.contains("nach dem Schreiben verändert") && !err.contains("was changed"), "{err}");
}

#[test]
fn a_crash_at_start_is_a_crash_loop_restarts_stop_and_one_alert_is_sent() {
    ensure_images();
    let hook = Receiver::start();
    let id = "crashy-e2e";
    let hog = "hog-e2e";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/crashy"), id), (&root().join("tests/fixtures/stacks/hog"), hog)]);
    d.append_config(&format!("notify:\n  webhooks:\n    - url: {}\nhealth:\n  restart_limit: 4\n", hook.url));
    d.start();
    d.ok(&["stack", "deploy", id]);
    let key = format!("crash_loop:{id}/app");
    wait_for(Duration::from_secs(120), || (hook.count(&key, "problem") == 1).then_some(()))
        .unwrap_or_else(|| panic!("no crash-loop alert; got {:?}\n{}", hook.keys(), tail(&d.log(), 40)));
    let restarts = |d: &Daemon| events_of(d, id).iter().filter(|e| e["kind"] == "service_restarted").count();
    let n = restarts(&d);
    assert_eq!(n, 4, "restart_limit restarts, then none");
    let started = docker(&["inspect", "-f", "{{.State.StartedAt}}", &format!("hafen-{id}-app")]);
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(restarts(&d), n, "restarts stopped");
    assert_eq!(docker(&["inspect", "-f", "{{.State.StartedAt}}", &format!("hafen-{id}-app")]), started);
    assert_eq!(docker(&["inspect", "-f", "{{.State.Running}}", &format!("hafen-{id}-app")]), "false");
    assert_eq!(stack_health(&d, id), "failed");
    // Killed for lack of memory: the engine's `oom` event is an alert of its own.
    d.ok(&["stack", "deploy", hog]);
    let oom = format!("service_oom:{hog}/app");
    wait_for(Duration::from_secs(60), || (hook.count(&oom, "problem") == 1).then_some(()))
        .unwrap_or_else(|| panic!("no OOM alert; got {:?}\n{}", hook.keys(), tail(&d.log(), 30)));
    d.ok(&["stack", "remove", hog]);
    assert_eq!(hook.bodies.lock().unwrap().iter().filter(|b| b["kind"] == "problem" && b["key"].as_str().unwrap_or("").contains(id)).count(), 1, "{:?}", hook.keys());
    // Across a restart of hafen the service stays given up (no new round of restarts).
    d.sigterm();
    d.start();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(restarts(&d), n, "still given up after a daemon restart");
    assert_eq!(hook.count(&key, "problem"), 1);
}

/// A Unix-socket proxy in front of the engine's socket that the test can cut and restore
/// (the machine's Docker daemon itself is never touched).
struct Proxy {
    path: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
    /// A request whose first line contains the text gets the canned bytes instead of the
    /// engine's answer, and its connection is closed.
    fault: Fault,
    /// While set, nothing passes either way and no connection is accepted: the engine as if
    /// stopped with SIGSTOP (connections wait in the backlog, requests get no answer).
    hang: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

type Fault = std::sync::Arc<std::sync::Mutex<Option<(String, Vec<u8>)>>>;

impl Proxy {
    fn start(path: &std::path::Path) -> Proxy {
        use std::os::unix::net::{UnixListener, UnixStream};
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path).unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let fault: Fault = Default::default();
        let hang = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, cs, f, h) = (stop.clone(), conns.clone(), fault.clone(), hang.clone());
        let held = |h: &std::sync::atomic::AtomicBool| {
            while h.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                held(&h);
                match l.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(upstream) = UnixStream::connect("/var/run/docker.sock") else { continue };
                        cs.lock().unwrap().push(client.try_clone().unwrap());
                        cs.lock().unwrap().push(upstream.try_clone().unwrap());
                        let (mut c1, mut u1) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                        let (mut c2, mut u2) = (client, upstream);
                        let (f, h1, h2) = (f.clone(), h.clone(), h.clone());
                        std::thread::spawn(move || {
                            use std::io::{Read, Write};
                            let mut buf = vec![0u8; 64 * 1024];
                            loop {
                                let n = match c1.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                let first_line = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string();
                                let canned = f.lock().unwrap().as_ref().filter(|(pat, _)| first_line.contains(pat.as_str())).map(|(_, r)| r.clone());
                                if let Some(r) = canned {
                                    let _ = c1.write_all(&r);
                                    let _ = c1.shutdown(std::net::Shutdown::Both);
                                    break;
                                }
                                held(&h1);
                                if u1.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = u1.shutdown(std::net::Shutdown::Both);
                        });
                        std::thread::spawn(move || {
                            use std::io::{Read, Write};
                            let mut buf = vec![0u8; 64 * 1024];
                            loop {
                                let n = match u2.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                held(&h2);
                                if c2.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = c2.shutdown(std::net::Shutdown::Both);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Proxy { path: path.to_path_buf(), stop, thread: Some(thread), conns, fault, hang }
    }

    /// The engine stops answering (`true`) or goes on (`false`), like SIGSTOP and SIGCONT.
    fn hang(&self, on: bool) {
        self.hang.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// From now on, requests whose first line contains `pattern` get `answer` (raw HTTP) and
    /// their connection closed; `None` lets everything through again.
    fn fault(&self, rule: Option<(&str, &[u8])>) {
        *self.fault.lock().unwrap() = rule.map(|(p, a)| (p.to_string(), a.to_vec()));
    }

    /// Stops accepting, closes every open connection and removes the socket.
    fn cut(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn engine_cut_off_is_reported_the_api_answers_and_hafen_resyncs_without_duplicates() {
    ensure_images();
    let hook = Receiver::start();
    let id = "proxy-e2e";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/watch"), id)]);
    let sock = d.dir.path().join("engine.sock");
    let mut proxy = Proxy::start(&sock);
    d.append_config(&format!("docker_socket: {}\nnotify:\n  webhooks:\n    - url: {}\n", sock.display(), hook.url));
    d.start();
    d.ok(&["stack", "deploy", id, "--set", &format!("port={}", free_port())]);
    wait_for(Duration::from_secs(120), || (stack_health(&d, id) == "healthy").then_some(())).expect("healthy");
    let before = containers_of(id);

    proxy.cut();
    // `hafen status` exits 1 while the engine is unreachable; its JSON still says why.
    let reachable = |d: &Daemon| serde_json::from_slice::<serde_json::Value>(&d.cli(&["status", "--json"]).stdout).ok()?["engine"]["reachable"].as_bool();
    wait_for(Duration::from_secs(30), || (reachable(&d) == Some(false)).then_some(()))
        .unwrap_or_else(|| panic!("engine not reported unreachable:\n{}", tail(&d.log(), 30)));
    // The API keeps answering: status above, and the workers, events and audit log here.
    let w = d.json(&["worker", "list"]);
    let ew = w.as_array().unwrap().iter().find(|x| x["name"] == "engine-watch").cloned().unwrap();
    assert_eq!(ew["state"], "error", "{ew}");
    wait_for(Duration::from_secs(20), || (hook.count("engine_unreachable", "problem") == 1).then_some(())).expect("alert");
    // Meanwhile a service stops (the engine is there, hafen cannot see it).
    docker(&["stop", "-t", "1", &format!("hafen-{id}-app")]);

    let _proxy = Proxy::start(&sock);
    wait_for(Duration::from_secs(60), || (reachable(&d) == Some(true)).then_some(()))
        .unwrap_or_else(|| panic!("no reconnect:\n{}", tail(&d.log(), 30)));
    // Resync: the stopped service runs again, nothing is duplicated.
    wait_for(Duration::from_secs(60), || (docker(&["inspect", "-f", "{{.State.Running}}", &format!("hafen-{id}-app")]) == "true").then_some(()))
        .unwrap_or_else(|| panic!("not resynced:\n{}", tail(&d.log(), 30)));
    assert_eq!(containers_of(id), before, "no duplicate containers");
    wait_for(Duration::from_secs(20), || (hook.count("engine_unreachable", "resolved") == 1).then_some(())).expect("resolved");
    let kinds: Vec<String> = d.ok(&["events", "--json"]).lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_string()).collect();
    assert!(kinds.contains(&"engine_unreachable".into()) && kinds.contains(&"engine_reachable".into()), "{kinds:?}");
}

/// DK-05: no engine when hafen starts (boot order). hafen waits for it with backoff, says so
/// in its log, does nothing to any stack meanwhile, and serves as soon as the engine is there.
#[test]
fn no_engine_at_start_is_waited_for_and_then_served() {
    ensure_images();
    let id = "noengine-e2e";
    let d = Daemon::new(&[(&root().join("tests/fixtures/stacks/watch"), id)]);
    let sock = d.dir.path().join("engine.sock");
    d.append_config(&format!("docker_socket: {}\n", sock.display()));
    let log = d.dir.path().join("noengine.log");
    let mut serve = Command::new(bin())
        .args(["--config", &d.config.display().to_string(), "serve"])
        .env("HAFEN_LANG", "en")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    std::thread::sleep(Duration::from_secs(4));
    assert!(serve.try_wait().unwrap().is_none(), "hafen gave up without an engine:\n{}", std::fs::read_to_string(&log).unwrap());
    let mut serve = Stop(serve);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("not reachable yet; retrying"), "{text}");
    let _proxy = Proxy::start(&sock);
    wait_for(Duration::from_secs(60), || d.cli(&["healthcheck"]).status.success().then_some(()))
        .unwrap_or_else(|| panic!("not served after the engine came:\n{}", std::fs::read_to_string(&log).unwrap()));
    d.ok(&["stack", "deploy", id, "--set", &format!("port={}", free_port()), "--wait", "0"]);
    d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
    let _ = Command::new("kill").arg("-TERM").arg(serve.0.id().to_string()).status();
    let _ = serve.0.wait();
}

/// ST-04: the disk of hafen's own state fills up. hafen says so while there is room to record
/// it (a critical alert), keeps answering when the disk is full (an operation fails clearly or
/// is fully recorded — never half), and after space is freed works again, its audit chain
/// intact and its store opening after a restart.
#[test]
fn a_full_state_disk_is_told_loses_nothing_and_recovers() {
    ensure_images();
    let id = "statefull-e2e";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/watch"), id)]);
    let state = d.state_dir();
    std::fs::create_dir_all(&state).unwrap();
    let img = d.dir.path().join("state.img");
    let sh = |c: &str| assert!(Command::new("sh").arg("-c").arg(c).status().unwrap().success(), "{c}");
    sh(&format!("truncate -s 32M {0} && mkfs.ext4 -q -m 0 {0} && mount -o loop {0} {1}", img.display(), state.display()));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Unmount(state.clone());
    d.append_config("health:\n  host_check_interval: 1s\n  disk_warning: 40\n  disk_critical: 15\n");
    d.start();
    let port = free_port();
    d.ok(&["stack", "deploy", id, "--set", &format!("port={port}"), "--wait", "0"]);
    let df_avail = || -> u64 {
        let o = Command::new("df").args(["-B1", "--output=avail"]).arg(&state).output().unwrap();
        String::from_utf8_lossy(&o.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
    };
    // Down to about 5 % free: told, and recorded, while there is room.
    let total = 32u64 << 20;
    sh(&format!("fallocate -l {} {}/filler", df_avail().saturating_sub(total / 20), state.display()));
    let alert = wait_for(Duration::from_secs(30), || d.json(&["alerts"]).as_array().unwrap().iter().find(|a| a["key"] == "disk_low:state").cloned())
        .unwrap_or_else(|| panic!("no alert for the state disk\n{}", tail(&d.log(), 30)))
        .0;
    assert_eq!(alert["severity"], "critical", "{alert}");
    // Full: an operation that writes to the store fails clearly or is fully recorded.
    sh(&format!("fallocate -l {} {}/filler2 || true", df_avail(), state.display()));
    let _ = Command::new("sh").arg("-c").arg(format!("dd if=/dev/zero of={}/filler3 bs=64k 2>/dev/null", state.display())).status();
    let before = events_of(&d, id).len();
    let o = d.cli(&["stack", "deploy", id, "--set", &format!("port={}", free_port()), "--wait", "0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked") && (o.status.success() || err.contains("disk is full")), "{err}");
    assert!(d.cli(&["healthcheck"]).status.success(), "the daemon stopped answering on a full disk\n{}", tail(&d.log(), 30));
    // Space back: it works again, and nothing recorded before is lost or broken.
    sh(&format!("rm -f {0}/filler {0}/filler2 {0}/filler3", state.display()));
    d.ok(&["stack", "deploy", id, "--set", &format!("port={port}"), "--wait", "0"]);
    assert!(events_of(&d, id).len() > before);
    assert_eq!(d.json(&["audit", "verify"])["ok"], true);
    d.sigterm();
    d.start();
    assert_eq!(d.json(&["audit", "verify"])["ok"], true);
    d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
    d.sigterm();
}

#[test]
fn a_filling_backup_disk_warns_then_alerts_critical_with_a_forecast() {
    require_docker();
    let hook = Receiver::start();
    let mut d = Daemon::new(&[]);
    let img = d.dir.path().join("usb.img");
    let mnt = d.dir.path().join("usb");
    std::fs::create_dir_all(&mnt).unwrap();
    let sh = |c: &str| assert!(Command::new("sh").arg("-c").arg(c).status().unwrap().success(), "{c}");
    sh(&format!("truncate -s 40M {0} && mkfs.ext4 -q -m 0 {0} && mount -o loop {0} {1}", img.display(), mnt.display()));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    d.append_config(&format!(
        "backup_targets:\n  - name: usb\n    path: {}\n    require_mount: true\nnotify:\n  webhooks:\n    - url: {}\nhealth:\n  host_check_interval: 1s\n  disk_warning: 40\n  disk_critical: 15\n",
        mnt.display(),
        hook.url
    ));
    d.start();
    // `hafen events --follow` prints what happens as it happens.
    let mut follow = Command::new(bin())
        .args(["--config", &d.config.display().to_string(), "events", "--follow", "--json"])
        .env("HAFEN_LANG", "en")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let followed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        let (out, f) = (follow.stdout.take().unwrap(), followed.clone());
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                f.lock().unwrap().push(line);
            }
        });
    }
    let key = "disk_low:target:usb";
    // Fill in steps (fallocate: blocks taken at once), so there is a trend to forecast from:
    // down to 30 % free (warning), then to 8 % (critical).
    let df = |field: &str| -> u64 {
        let o = Command::new("df").args(["-B1", &format!("--output={field}")]).arg(&mnt).output().unwrap();
        String::from_utf8_lossy(&o.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
    };
    let total = df("size");
    let fill_to = |free_pct: f64, steps: u64, name: &str| {
        let take = df("avail").saturating_sub((total as f64 * free_pct / 100.0) as u64);
        for i in 0..steps {
            sh(&format!("fallocate -l {} {}/{name}{i}", take / steps, mnt.display()));
            std::thread::sleep(Duration::from_secs(3));
        }
    };
    fill_to(30.0, 4, "warn");
    wait_for(Duration::from_secs(20), || (hook.count(key, "problem") == 1).then_some(()))
        .unwrap_or_else(|| panic!("no warning; got {:?}\n{}", hook.keys(), tail(&d.log(), 30)));
    let warn = hook.bodies.lock().unwrap().iter().find(|b| b["key"] == key).cloned().unwrap();
    assert_eq!(warn["severity"], "warning", "{warn}");
    let detail = |d: &Daemon| {
        let w = d.json(&["worker", "list"]);
        w.as_array().unwrap().iter().find(|x| x["name"] == "disk-space").map(|x| x["detail"].as_str().unwrap_or("").to_string()).unwrap_or_default()
    };
    wait_for(Duration::from_secs(20), || detail(&d).contains("full in about").then_some(()))
        .unwrap_or_else(|| panic!("no forecast: {}", detail(&d)));
    fill_to(8.0, 1, "crit");
    wait_for(Duration::from_secs(20), || (hook.count(key, "escalated") == 1).then_some(()))
        .unwrap_or_else(|| panic!("no critical alert; got {:?}; {}\n{}", hook.keys(), detail(&d), tail(&d.log(), 20)));
    assert_eq!(hook.count(key, "problem"), 1, "{:?}", hook.keys());
    let w = d.json(&["worker", "list"]);
    let ds = w.as_array().unwrap().iter().find(|x| x["name"] == "disk-space").cloned().unwrap();
    assert_eq!(ds["state"], "critical", "{ds}");
    wait_for(Duration::from_secs(10), || followed.lock().unwrap().iter().any(|l| l.contains("alert_raised") && l.contains(key)).then_some(()))
        .unwrap_or_else(|| panic!("events --follow did not show the alert: {:?}", followed.lock().unwrap()));
    let _ = follow.kill();
    // Space freed: resolved.
    sh(&format!("rm -f {0}/warn* {0}/crit*", mnt.display()));
    wait_for(Duration::from_secs(20), || (hook.count(key, "resolved") == 1).then_some(())).expect("resolved");
}

/// The SMTP server of tests/servers/smtp.py (aiosmtpd), writing mails to a Maildir.
struct Smtp {
    child: std::process::Child,
}

impl Smtp {
    fn start(port: u16, maildir: &std::path::Path) -> Smtp {
        let child = Command::new("python3")
            .arg(root().join("tests/servers/smtp.py"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--maildir"])
            .arg(maildir)
            .spawn()
            .unwrap();
        wait_for(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())).expect("smtp server up");
        Smtp { child }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every mail in the Maildir as "Subject: …\n<body>", decoded (by smtp.py decode).
fn mails(maildir: &std::path::Path) -> Vec<String> {
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(maildir.join("new")).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files
        .iter()
        .map(|f| {
            let o = Command::new("python3").arg(root().join("tests/servers/smtp.py")).arg("decode").arg(f).output().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
            format!("Subject: {}\n{}", v["subject"].as_str().unwrap_or(""), v["body"].as_str().unwrap_or(""))
        })
        .collect()
}

#[test]
fn an_alert_while_the_mail_server_is_down_is_delivered_exactly_once_after_a_daemon_restart() {
    require_docker();
    let mut d = Daemon::new(&[]);
    let port = free_port();
    let maildir = d.dir.path().join("maildir");
    let absent = d.dir.path().join("usb-not-mounted");
    std::fs::create_dir_all(&absent).unwrap();
    d.append_config(&format!(
        "backup_targets:\n  - name: usb\n    path: {}\n    require_mount: true\nnotify:\n  email:\n    host: 127.0.0.1\n    port: {port}\n    security: none\n    from: hafen@example.org\n    to: [it@example.org]\n",
        absent.display()
    ));
    d.start();
    // `notify test` says plainly that the server does not answer.
    let out = d.cli(&["notify", "test"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("email") && text.contains(&format!("127.0.0.1:{port}")), "{text}");
    // The backup disk is absent: a failed backup is an alert whose mail cannot go out yet.
    d.ok(&["keys", "init", "--out", &d.dir.path().join("kit.txt").display().to_string()]);
    let _ = d.cli(&["backup", "run", "--host"]);
    wait_for(Duration::from_secs(30), || d.json(&["alerts"]).as_array().unwrap().iter().any(|a| a["key"] == "backup_failed:hafen-host").then_some(()))
        .unwrap_or_else(|| panic!("no alert:\n{}", tail(&d.log(), 30)));
    wait_for(Duration::from_secs(30), || d.log().contains("not delivered").then_some(())).unwrap_or_else(|| panic!("no failed attempt:\n{}", tail(&d.log(), 30)));
    d.sigterm();
    let _smtp = Smtp::start(port, &maildir);
    d.start();
    let got = || mails(&maildir).iter().filter(|m| m.contains("hafen-host")).count();
    wait_for(Duration::from_secs(60), || (got() >= 1).then_some(()))
        .unwrap_or_else(|| panic!("not delivered; mails: {:?}\n{}", mails(&maildir), tail(&d.log(), 30)));
    // And only once, also after the sender looked again and hafen restarted once more.
    d.sigterm();
    d.start();
    std::thread::sleep(Duration::from_secs(5));
    let all = mails(&maildir);
    let alerts: Vec<&String> = all.iter().filter(|m| m.contains("hafen-host")).collect();
    assert_eq!(alerts.len(), 1, "exactly one mail for the alert: {all:?}");
    let mut subjects: Vec<&str> = all.iter().filter_map(|m| m.lines().find(|l| l.starts_with("Subject:"))).collect();
    let n = subjects.len();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), n, "no mail twice: {all:?}");
}

/// DK-04: the engine answers 500, cuts an answer short or sends malformed JSON (a fault proxy
/// in front of its socket; the machine's Docker daemon is never touched). Each fault is named
/// in an event with the engine's words, nothing panics, no step counts as done and no container
/// is created twice; once the engine answers well, the stack converges to one container per
/// service.
#[test]
fn engine_errors_and_cut_answers_are_named_and_nothing_is_done_twice() {
    ensure_images();
    let id = "faulty-e2e";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/watch"), id)]);
    let sock = d.dir.path().join("engine.sock");
    let proxy = Proxy::start(&sock);
    d.append_config(&format!("docker_socket: {}\n", sock.display()));
    d.start();
    let events = |d: &Daemon| -> Vec<serde_json::Value> { d.ok(&["events", "--json"]).lines().filter_map(|l| serde_json::from_str(l).ok()).collect() };

    // 1. Creating a container is answered with a 500: the deploy names the engine's message.
    proxy.fault(Some((
        "/containers/create",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 47\r\nConnection: close\r\n\r\n{\"message\":\"injected: the engine had a fault\"}\n",
    )));
    let o = d.cli(&["stack", "deploy", id, "--set", &format!("port={}", free_port()), "--wait", "0"]);
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    wait_for(Duration::from_secs(30), || events(&d).iter().any(|e| e.to_string().contains("injected: the engine had a fault")).then_some(()))
        .unwrap_or_else(|| panic!("the engine's 500 is not named in any event; the deploy said: {said}\n{}", tail(&d.log(), 30)));
    assert!(containers_of(id).is_empty(), "a container exists although every create failed: {:?}", containers_of(id));

    // 2. The container list is cut short, then malformed: no create while hafen cannot see what
    // exists, and the failure is named.
    for (what, answer) in [
        ("cut short", &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n[{\"Id\":\"abc"[..]),
        ("malformed", &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n[{\"Id\":7,]]]"[..]),
    ] {
        proxy.fault(Some(("/containers/json", answer)));
        let before = events(&d).len();
        wait_for(Duration::from_secs(30), || (events(&d)[before..].iter().any(|e| e["kind"] == "reconcile_failed" || e["kind"] == "action_failed")).then_some(()))
            .unwrap_or_else(|| panic!("a {what} container list is not reported:\n{}", tail(&d.log(), 30)));
        assert!(containers_of(id).is_empty(), "{what}: containers created while the list could not be read: {:?}", containers_of(id));
    }

    // 3. The engine answers well again: one container per service, healthy.
    proxy.fault(None);
    wait_for(Duration::from_secs(120), || (stack_health(&d, id) == "healthy").then_some(())).unwrap_or_else(|| panic!("no recovery:\n{}", tail(&d.log(), 40)));
    let names = containers_of(id);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!d.log().contains("panicked"), "{}", d.log());
    d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
}

/// ST-02: the state store's disk fails its writes (strace, attached to the running daemon,
/// injects EIO into every write and sync of the store's write-ahead log; the disk itself is
/// fine). A deploy fails with a clear error and is never reported as done, and nothing is
/// started on the engine for a desired state that could not be recorded; the daemon keeps
/// answering. Once the disk works again the same deploy succeeds, the audit chain verifies and
/// the store opens after a restart.
#[test]
fn an_io_error_on_the_state_store_fails_the_operation_closed_and_loses_nothing() {
    ensure_images();
    let id = "storeio-e2e";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/watch"), id)]);
    d.start();
    let wal = d.state_dir().join("state.db-wal");
    assert!(wal.exists(), "the store runs without its write-ahead log: {}", wal.display());
    let log = d.dir.path().join("strace.log");
    let mut strace = d.strace(&log, "pwrite64,write,fdatasync,fsync", "error=EIO", &[&wal]);
    let port = format!("port={}", free_port());
    let o = d.cli(&["stack", "deploy", id, "--set", &port, "--wait", "0"]);
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "the deploy was reported as done although the store could not record it: {said}");
    assert!(!said.contains("panicked"), "{said}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("EIO"), "no write of the store failed, so the test proved nothing");
    assert!(containers_of(id).is_empty(), "containers started for a desired state that was never recorded: {:?}", containers_of(id));
    assert!(d.cli(&["healthcheck"]).status.success(), "the daemon stopped answering:\n{}", tail(&d.log(), 30));
    // The disk works again (strace detaches).
    unsafe_kill(strace.id(), "INT");
    let _ = strace.wait();
    d.ok(&["stack", "deploy", id, "--set", &port, "--wait", "0"]);
    wait_for(Duration::from_secs(60), || (containers_of(id).len() == 2).then_some(())).expect("the deploy did not run once the store could write");
    d.ok(&["audit", "verify"]);
    assert!(d.sigterm().success());
    d.start();
    assert!(d.json(&["stack", "list"]).to_string().contains(id));
    assert!(!d.log().contains("panicked"), "{}", d.log());

    // Its reads fail too: a daemon started on a store whose every read gives EIO (strace starts
    // it) stops at once with a clear error naming the store, and touches no container; started
    // on the working disk, it finds everything as it was.
    let ids = || docker(&["ps", "-q", "--no-trunc", "--filter", &format!("label=org.hafen.stack={id}")]);
    let running = ids();
    assert!(d.sigterm().success());
    let store = d.state_dir().join("state.db");
    let log = d.dir.path().join("strace-read.log");
    let o = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .args(["-e", "trace=pread64,read", "-e", "inject=pread64,read:error=EIO", "-P"])
        .arg(&store)
        .arg(bin())
        .arg("--config")
        .arg(&d.config)
        .arg("serve")
        .env("HAFEN_LANG", "en")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the daemon ran on a store it cannot read:\n{err}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("EIO"), "no read of the store failed, so the test proved nothing");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("state.db") && err.to_lowercase().contains("i/o"), "the error names neither the store nor the I/O error:\n{err}");
    // Named as the disk's fault, not as a damaged file (whose advice would be to move it aside).
    assert!(err.contains("not of the file's content") && !err.contains("move it aside"), "{err}");
    assert_eq!(ids(), running, "containers changed while the store could not be read");
    d.start();
    assert!(d.json(&["stack", "list"]).to_string().contains(id));
    d.ok(&["audit", "verify"]);
    d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
}

/// DK-03: the engine hangs (the proxy stops passing anything and accepting connections, as a
/// dockerd stopped with SIGSTOP would; the machine's Docker daemon is never touched). hafen
/// reports it as unreachable within its ping limit, the API keeps answering meanwhile, nothing
/// is done twice, and when the engine goes on, hafen resyncs: the same containers, healthy.
#[test]
fn a_hung_engine_is_reported_the_api_answers_and_nothing_is_done_twice() {
    ensure_images();
    let id = "hung-e2e";
    let mut d = Daemon::new(&[(&root().join("tests/fixtures/stacks/watch"), id)]);
    let sock = d.dir.path().join("engine.sock");
    let proxy = Proxy::start(&sock);
    d.append_config(&format!("docker_socket: {}\n", sock.display()));
    d.start();
    d.ok(&["stack", "deploy", id, "--set", &format!("port={}", free_port())]);
    wait_for(Duration::from_secs(120), || (stack_health(&d, id) == "healthy").then_some(())).expect("healthy");
    let before = containers_of(id);

    let t0 = std::time::Instant::now();
    proxy.hang(true);
    let engine = |d: &Daemon| serde_json::from_slice::<serde_json::Value>(&d.cli(&["status", "--json"]).stdout).ok().map(|v| v["engine"].clone());
    let (seen, _) = wait_for(Duration::from_secs(90), || engine(&d).filter(|e| e["reachable"] == false))
        .unwrap_or_else(|| panic!("a hung engine is not reported:\n{}", tail(&d.log(), 30)));
    assert!(seen.to_string().contains("did not answer"), "{seen}");
    eprintln!("hung engine reported after {:?}", t0.elapsed());
    // The API answers while the engine hangs: status above, workers, events and the audit log.
    assert!(d.json(&["worker", "list"]).as_array().is_some_and(|w| !w.is_empty()));
    assert!(d.cli(&["events", "--json"]).status.success());
    d.ok(&["audit", "verify"]);

    proxy.hang(false);
    let t1 = std::time::Instant::now();
    wait_for(Duration::from_secs(150), || (engine(&d).is_some_and(|e| e["reachable"] == true)).then_some(()))
        .unwrap_or_else(|| panic!("no recovery after the engine went on:\n{}", tail(&d.log(), 30)));
    eprintln!("reachable again after {:?}", t1.elapsed());
    wait_for(Duration::from_secs(120), || (stack_health(&d, id) == "healthy").then_some(())).expect("healthy again");
    assert_eq!(containers_of(id), before, "no duplicate or replaced containers");
    assert!(!d.log().contains("panicked"), "{}", d.log());
    d.ok(&["stack", "remove", id, "--purge", "--confirm", id]);
}
