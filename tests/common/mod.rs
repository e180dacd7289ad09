//! Test harness for end-to-end tests: starts the real `hafen` binary as a daemon with its own
//! state directory, socket and stack copies (renamed, so tests can run side by side), runs CLI
//! commands against it, and removes everything its stacks created in the engine when dropped.
//! Requires a reachable Docker engine and fails loudly without one.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    // The `hafen` package lives in src/cli; the repository is two levels up.
    // As cargo (and tests/timed.py) give it when running the test, else as compiled in: a
    // binary built in another clone that shares the target directory must not look there.
    let package = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    package.join("../..").canonicalize().expect("repository root")
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hafen")
}

/// Panics (never skips) when no engine answers.
pub fn require_docker() {
    let out = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("these tests need a running Docker engine; `docker info` failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("these tests need the docker CLI and a running engine: {e}"),
    }
}

static IMAGES: Mutex<bool> = Mutex::new(false);

/// Builds every recipe once per test binary (base images with debootstrap as needed).
pub fn ensure_images() {
    require_docker();
    let mut done = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let st = Command::new(bin())
        .args(["image", "build", "postgres15", "tryton60", "radicale"])
        .env("HAFEN_CONFIG", "/nonexistent-use-defaults")
        .env_remove("HAFEN_CONFIG")
        .current_dir(root())
        .status()
        .expect("run hafen image build");
    assert!(st.success(), "building the images failed");
    *done = true;
}

static RECIPES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// `ensure_images`, plus further recipes (e.g. the Debian 13 ones the update tests use).
pub fn ensure_recipes(more: &[&str]) {
    ensure_images();
    let mut done = RECIPES.lock().unwrap_or_else(|e| e.into_inner());
    let todo: Vec<&str> = more.iter().copied().filter(|r| !done.iter().any(|d| d == r)).collect();
    if todo.is_empty() {
        return;
    }
    let st = Command::new(bin()).arg("image").arg("build").args(&todo).env_remove("HAFEN_CONFIG").current_dir(root()).status().expect("run hafen image build");
    assert!(st.success(), "building {todo:?} failed");
    done.extend(todo.iter().map(|s| s.to_string()));
}

/// A port nothing listens on now, never the same twice in one test binary (the kernel may hand
/// out a just-freed port again, and two settings of one stack must not collide).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub stacks: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Daemon {
    /// A daemon whose stacks dir holds copies of `stacks` as (source dir, new id).
    pub fn new(stacks: &[(&Path, &str)]) -> Daemon {
        require_docker();
        let dir = tempfile::Builder::new().prefix("hafen-e2e-").tempdir().unwrap();
        let sdir = dir.path().join("stacks");
        for (src, id) in stacks {
            let text = std::fs::read_to_string(src.join("stack.yaml")).unwrap();
            let old = text.lines().find(|l| l.starts_with("id: ")).unwrap().to_string();
            std::fs::create_dir_all(sdir.join(id)).unwrap();
            std::fs::write(sdir.join(id).join("stack.yaml"), text.replacen(&old, &format!("id: {id}"), 1)).unwrap();
        }
        let config = dir.path().join("hafen.yaml");
        std::fs::write(
            &config,
            format!(
                "state_dir: {d}/state\nsocket: {d}/hafen.sock\nstacks_dir: {d}/stacks\nimages_dir: {r}/images\nreconcile_interval: 2s\nshutdown_deadline: 10s\nmetrics_listen: 127.0.0.1:{m}\n",
                d = dir.path().display(),
                r = root().display(),
                m = free_port()
            ),
        )
        .unwrap();
        let d = Daemon { dir, config, child: None, stacks: stacks.iter().map(|(_, id)| id.to_string()).collect(), env: vec![] };
        d.cleanup_engine();
        d
    }

    /// Appends YAML to the daemon's config (before `start`).
    pub fn append_config(&self, yaml: &str) {
        let mut c = std::fs::read_to_string(&self.config).unwrap();
        c.push_str(yaml);
        std::fs::write(&self.config, c).unwrap();
    }

    /// Points the daemon at another images directory (before `start`).
    pub fn set_images_dir(&self, dir: &Path) {
        let c = std::fs::read_to_string(&self.config).unwrap();
        let c: String = c.lines().map(|l| if l.starts_with("images_dir:") { format!("images_dir: {}\n", dir.display()) } else { format!("{l}\n") }).collect();
        std::fs::write(&self.config, c).unwrap();
    }

    /// Gives the daemon an images directory of its own holding the `tiny` fixture recipe with a
    /// label unique to this run (so the image really is built here, not found in a cache);
    /// returns the directory and the recipe's Dockerfile text.
    pub fn unique_tiny_recipe(&self) -> (PathBuf, String) {
        let images = self.dir.path().join("images");
        std::fs::create_dir_all(images.join("tiny")).unwrap();
        let nonce = format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        let recipe = std::fs::read_to_string(root().join("tests/fixtures/images/tiny/Dockerfile")).unwrap() + &format!("LABEL test.nonce={nonce}\n");
        std::fs::write(images.join("tiny/Dockerfile"), &recipe).unwrap();
        self.set_images_dir(&images);
        (images, recipe)
    }

    /// The metrics address this daemon's config names.
    pub fn metrics_addr(&self) -> String {
        let c = std::fs::read_to_string(&self.config).unwrap();
        c.lines().find_map(|l| l.strip_prefix("metrics_listen: ")).unwrap().trim().to_string()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("hafen.sock")
    }

    /// Starts `hafen serve` and waits until `hafen healthcheck` succeeds.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("daemon.log")).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(&self.config).arg("serve").stdout(Stdio::null()).stderr(log).env("HAFEN_LANG", "en");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start hafen serve"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.cli(&["healthcheck"]).status.success() {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("hafen serve exited with {st}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "daemon did not answer within 30s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts the daemon expecting it to fail; returns its exit status and log.
    pub fn start_expect_failure(&mut self) -> (std::process::ExitStatus, String) {
        let out = Command::new(bin()).arg("--config").arg(&self.config).arg("serve").env("HAFEN_LANG", "en").output().unwrap();
        (out.status, String::from_utf8_lossy(&out.stderr).to_string())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("daemon running");
        unsafe_kill(c.id(), "TERM");
        c.wait().unwrap()
    }

    /// Attaches strace to the running daemon (all its threads): the system calls `calls` (e.g.
    /// `unlink,unlinkat`) on `paths` get `inject` (e.g. `signal=KILL:when=1`, `error=EIO`),
    /// logged to `log`. Returns once strace is attached; kill it with SIGINT to detach.
    pub fn strace(&self, log: &Path, calls: &str, inject: &str, paths: &[&Path]) -> Child {
        let pid = self.child.as_ref().expect("daemon running").id().to_string();
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-o"]).arg(log).args(["-p", &pid, "-e", &format!("trace={calls}"), "-e", &format!("inject={calls}:{inject}")]);
        for p in paths {
            cmd.arg("-P").arg(p);
        }
        let child = cmd.spawn().expect("start strace (tests/run installs Debian's strace)");
        wait_for(Duration::from_secs(20), || {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status.lines().any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0")).then_some(())
        })
        .expect("strace did not attach");
        child
    }

    /// A CLI command started in the background (output discarded), for a test that kills the
    /// daemon while the command waits for it.
    pub fn spawn_cli(&self, args: &[&str]) -> Child {
        Command::new(bin()).arg("--config").arg(&self.config).args(args).env("HAFEN_LANG", "en").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_in("en", args)
    }

    /// A CLI command with the reader's language (`HAFEN_LANG`), whatever the daemon speaks.
    /// No panic reaches a user: every command run here fails its test when its stderr shows one.
    pub fn cli_in(&self, lang: &str, args: &[&str]) -> Output {
        let o = Command::new(bin()).arg("--config").arg(&self.config).args(args).env("HAFEN_LANG", lang).stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "`hafen {}` showed a panic:\n{err}", args.join(" "));
        o
    }

    /// A raw HTTP/1.0 request on the API socket, as any client would make it: (status, JSON body).
    pub fn api(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(self.socket()).unwrap();
        write!(s, "{method} {path} HTTP/1.0\r\nHost: hafen\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, json) = out.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status line");
        (status, serde_json::from_str(json).unwrap_or(serde_json::Value::Null))
    }

    /// Runs a CLI command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "hafen {} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log tail:\n{}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            tail(&self.log(), 40)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    pub fn secret(&self, stack: &str, name: &str) -> String {
        std::fs::read_to_string(self.state_dir().join("secrets").join(stack).join(name)).unwrap()
    }

    /// Removes every container, volume and network of this daemon's stacks.
    pub fn cleanup_engine(&self) {
        for id in &self.stacks {
            let label = format!("label=org.hafen.stack={id}");
            let ids = docker(&["ps", "-aq", "--filter", &label]);
            for c in ids.split_whitespace() {
                docker(&["rm", "-f", "-v", c]);
            }
            let vols = docker(&["volume", "ls", "-q", "--filter", &label]);
            for v in vols.split_whitespace() {
                docker(&["volume", "rm", "-f", v]);
            }
            docker(&["network", "rm", &format!("hafen-{id}")]);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        self.cleanup_engine();
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Sends signal `sig` (e.g. `TERM`, `INT`) to `pid` with the kill command.
pub fn unsafe_kill(pid: u32, sig: &str) {
    Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
}

/// Runs the docker CLI; returns stdout (errors are ignored: used for inspection and cleanup).
pub fn docker(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn containers_of(stack: &str) -> Vec<String> {
    let s = docker(&["ps", "-a", "--filter", &format!("label=org.hafen.stack={stack}"), "--format", "{{.Names}}"]);
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Every file below `dir` that its group or others may read or write (mode & 0o077), with
/// its mode: hafen's state files are its own (0600, secrets 0400).
pub fn open_to_others(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else if m.is_file() && m.permissions().mode() & 0o077 != 0 {
                out.push(format!("{} {:o}", e.path().display(), m.permissions().mode() & 0o7777));
            }
        }
    }
    out
}

/// Polls `f` until it returns Some or `limit` passes (a generous bound, not a timing claim).
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<(T, Duration)> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f() {
            return Some((v, start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

/// A JSON-RPC call to Tryton; returns the `result` or panics with the error.
pub fn tryton_rpc(port: u16, path: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
    let body = serde_json::json!({"method": method, "params": params, "id": 1}).to_string();
    let text = match ureq::post(&format!("http://127.0.0.1:{port}{path}")).set("Content-Type", "application/json").send_string(&body) {
        Ok(r) => r.into_string().unwrap(),
        Err(ureq::Error::Status(code, r)) => panic!("Tryton {method}: HTTP {code}: {}", r.into_string().unwrap_or_default()),
        Err(e) => panic!("Tryton {method}: {e}"),
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON from Tryton: {text}"));
    if v.get("error").is_some_and(|e| !e.is_null()) {
        panic!("Tryton {method} failed: {v}");
    }
    v["result"].clone()
}

/// GET a URL; (status, body), status 0 when nothing answers.
pub fn http_get(url: &str) -> (u16, String) {
    match ureq::get(url).timeout(Duration::from_secs(10)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// An authenticated Tryton JSON-RPC call with a session from `common.db.login`.
pub fn tryton_session_rpc(port: u16, db: &str, login: &str, uid: i64, session: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{uid}:{session}"));
    let body = serde_json::json!({"method": method, "params": params, "id": 2}).to_string();
    let r = ureq::post(&format!("http://127.0.0.1:{port}/{db}/"))
        .set("Content-Type", "application/json")
        .set("Authorization", &format!("Session {auth}"))
        .send_string(&body)
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert!(v.get("error").is_none_or(|e| e.is_null()), "{method} failed: {v}");
    v["result"].clone()
}

/// A local HTTP receiver for webhooks: records every POST body (JSON) it gets; answers 200.
pub struct Receiver {
    pub url: String,
    pub bodies: std::sync::Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let bodies = std::sync::Arc::new(Mutex::new(Vec::new()));
        let b = bodies.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                if let Ok(v) = serde_json::from_slice(&body) {
                    b.lock().unwrap().push(v);
                }
                let mut w = conn;
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            }
        });
        Receiver { url, bodies }
    }

    /// Notices received for `key` of `kind` (problem, reminder, escalated, resolved).
    pub fn count(&self, key: &str, kind: &str) -> usize {
        self.bodies.lock().unwrap().iter().filter(|b| b["key"] == key && b["kind"] == kind).count()
    }

    pub fn keys(&self) -> Vec<String> {
        self.bodies.lock().unwrap().iter().map(|b| format!("{}:{}", b["kind"].as_str().unwrap_or("?"), b["key"].as_str().unwrap_or("?"))).collect()
    }
}
