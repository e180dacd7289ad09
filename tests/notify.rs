//! Notification delivery against real receivers, on 127.0.0.1 only: an SMTP server (aiosmtpd,
//! `tests/servers/smtp.py`) writing every mail to a Maildir, plain, or with STARTTLS or TLS from
//! the first byte and AUTH (a CA and server certificate made with the openssl CLI for each test), and an HTTP receiver
//! in the test (axum) that records what it is sent and can answer 500. The outbox sender runs
//! as the daemon runs it; every wait polls with a deadline.

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use hafen_daemon::config::{EmailConfig, NotifyConfig, SmtpSecurity, WebhookConfig};
use hafen_daemon::notify::{self, Notice, NoticeKind, Queued, Severity, Step};
use hafen_store::{OutboxEntry, Store};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "pw-Ä9 secret";

fn root() -> PathBuf {
    // The `hafen` package lives in src/cli; the repository is two levels up.
    // As cargo (and tests/timed.py) give it when running the test, else as compiled in: a
    // binary built in another clone that shares the target directory must not look there.
    let package = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    package.join("../..").canonicalize().expect("repository root")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `check` every 100 ms until it gives a value; panics after `secs` seconds.
async fn eventually<T>(what: &str, secs: u64, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up after {secs} s waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The SMTP receiver

/// TLS material for one test: a private CA and a server certificate for 127.0.0.1 it signed.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn make_pki(dir: &Path) -> Pki {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(dir, &[&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=hafen test CA"]].concat());
    openssl(dir, &[&["req"][..], &ec, &["-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1"]].concat());
    std::fs::write(
        dir.join("srv.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(dir, &["x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "srv.ext"]);
    Pki { ca: dir.join("ca.pem"), cert: dir.join("srv.pem"), key: dir.join("srv.key") }
}

struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
    log: PathBuf,
}

#[derive(Debug)]
struct Mail {
    subject: String,
    body: String,
    message_id: String,
    content_type: String,
    charset: String,
}

/// How the SMTP server speaks.
#[derive(Clone, Copy)]
enum Security<'a> {
    /// Unencrypted, no AUTH.
    Plain,
    /// STARTTLS offered and required before mail, then AUTH.
    Starttls(&'a Pki),
    /// TLS from the first byte (port 465 style), then AUTH.
    Implicit(&'a Pki),
}

impl Smtp {
    /// Starts the server on `port`, speaking as `security` says.
    async fn start(dir: &Path, port: u16, security: Security<'_>) -> Smtp {
        let maildir = dir.join("maildir");
        let log = dir.join(format!("smtp-{port}.log"));
        let mut cmd = Command::new("python3");
        cmd.arg(root().join("tests/servers/smtp.py"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--maildir"])
            .arg(&maildir);
        let tls = match security {
            Security::Plain => None,
            Security::Starttls(p) => Some(("--starttls", p)),
            Security::Implicit(p) => Some(("--tls", p)),
        };
        if let Some((flag, p)) = tls {
            cmd.arg(flag).arg(&p.cert).arg(&p.key).arg("--auth").arg(format!("hafen:{PASSWORD}"));
        }
        let out = std::fs::File::create(&log).unwrap();
        cmd.stdout(out.try_clone().unwrap()).stderr(out);
        let child = cmd.spawn().expect("python3 (with aiosmtpd: python3 -m pip install aiosmtpd)");
        let mut s = Smtp { child, port, maildir, log };
        eventually("the SMTP server to listen", 30, || {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("the SMTP server exited ({st}): {}", std::fs::read_to_string(&s.log).unwrap_or_default());
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
        s
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.maildir.join("new")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        v.sort();
        v
    }

    fn mails(&self) -> Vec<Mail> {
        self.files().iter().map(|f| decode(f)).collect()
    }

    async fn wait_for_mails(&self, n: usize) -> Vec<Mail> {
        eventually(&format!("{n} mail(s) in {}", self.maildir.display()), 30, || (self.files().len() >= n).then_some(())).await;
        self.mails()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn decode(file: &Path) -> Mail {
    let out = Command::new("python3").arg(root().join("tests/servers/smtp.py")).arg("decode").arg(file).stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "decoding {}", file.display());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Mail { subject: s("subject"), body: s("body"), message_id: s("message_id"), content_type: s("content_type"), charset: s("charset") }
}

// ---------------------------------------------------------------------------------------------
// The HTTP receiver

#[derive(Clone, Default)]
struct Http {
    /// (method, path, body) of every request, in order.
    seen: Arc<Mutex<Vec<(String, String, String)>>>,
    /// Requests still to be answered with 500.
    failures: Arc<AtomicUsize>,
}

impl Http {
    async fn start(failures: usize) -> (String, Http) {
        let h = Http::default();
        h.failures.store(failures, Ordering::SeqCst);
        let app = axum::Router::new().fallback(record).with_state(h.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, h)
    }

    fn seen(&self) -> Vec<(String, String, String)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn record(State(h): State<Http>, method: Method, uri: Uri, body: String) -> StatusCode {
    h.seen.lock().unwrap().push((method.to_string(), uri.path().to_string(), body));
    if h.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

// ---------------------------------------------------------------------------------------------
// hafen's side

fn email(port: u16) -> EmailConfig {
    EmailConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        user: None,
        password_file: None,
        ca_file: None,
        from: "hafen@box1.example.org".into(),
        to: vec!["admin@example.org".into()],
    }
}

fn tls_email(port: u16, pki: &Pki, password_file: &Path) -> EmailConfig {
    EmailConfig {
        security: SmtpSecurity::Starttls,
        user: Some("hafen".into()),
        password_file: Some(password_file.to_path_buf()),
        ca_file: Some(pki.ca.clone()),
        ..email(port)
    }
}

fn password_file(dir: &Path, mode: u32) -> PathBuf {
    let p = dir.join(format!("smtp-password-{mode:o}"));
    std::fs::write(&p, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn config(email: Option<EmailConfig>, webhooks: &[String], heartbeat: Option<String>) -> NotifyConfig {
    NotifyConfig {
        email,
        webhooks: webhooks.iter().map(|u| WebhookConfig { url: u.clone() }).collect(),
        heartbeat_url: heartbeat,
        ..NotifyConfig::default()
    }
}

fn crash_loop() -> Notice {
    let a = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    Notice {
        kind: NoticeKind::Problem,
        severity: Severity::Critical,
        key: "crash_loop:tryton/server".into(),
        code: "crash_loop".into(),
        stack: Some("tryton".into()),
        args: a(&[("stack", "tryton"), ("service", "server"), ("restarts", "5"), ("window", "10m")]),
        since: "2026-03-01T14:05:00.000Z".into(),
        tried: vec![
            Step { code: "restarted".into(), args: a(&[("service", "server"), ("count", "5")]) },
            Step { code: "restarts_stopped".into(), args: a(&[("service", "server")]) },
        ],
        host: "box1".into(),
    }
}

fn payload(n: &Notice) -> String {
    serde_json::to_string(&Queued::new(n.clone())).unwrap()
}

/// The outbox sender, run as the daemon runs it.
struct Sender {
    cancel: CancellationToken,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Sender {
    fn start(store: Arc<Store>, cfg: NotifyConfig) -> Sender {
        let cancel = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let (c, w) = (cancel.clone(), wake.clone());
        let task = tokio::spawn(async move { notify::run_outbox(&store, &cfg, c, &w).await });
        Sender { cancel, wake, task }
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task).await.expect("the sender stops when cancelled").unwrap();
    }
}

fn entry(store: &Store, id: i64) -> OutboxEntry {
    store.outbox_list(1000).unwrap().into_iter().find(|e| e.id == id).expect("the row is kept")
}

fn open_store(dir: &Path) -> Arc<Store> {
    Arc::new(Store::open(&dir.join("state/state.db")).unwrap())
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mails_are_german_by_default_and_english_on_request() {
    let d = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(d.path(), free_port(), Security::Plain).await;
    let port = smtp.port;
    let store = open_store(d.path());
    let cfg = config(Some(email(port)), &[], None);
    let ids = notify::enqueue(&store, &cfg, &crash_loop()).unwrap();
    assert_eq!(ids.len(), 1);
    let queued: Queued = serde_json::from_str(&entry(&store, ids[0]).payload).unwrap();
    let sender = Sender::start(store.clone(), cfg.clone());
    sender.wake.notify_one();
    let mails = smtp.wait_for_mails(1).await;
    let de = &mails[0];
    assert_eq!(de.subject, "[hafen box1] KRITISCH: tryton: Absturzschleife bei server");
    for words in ["Was ist passiert?", "innerhalb von 10m 5-mal abgestürzt", "Seit wann?", "2026-03-01 14:05 UTC", "Was hafen schon versucht hat:", "- server neu gestartet (5-mal)", "Was ist zu tun?", "hafen stack logs tryton server", "Rechner: box1", "Schweregrad: KRITISCH"] {
        assert!(de.body.contains(words), "`{words}` missing in\n{}", de.body);
    }
    assert_eq!((de.content_type.as_str(), de.charset.as_str()), ("text/plain", "utf-8"));
    assert_eq!(de.message_id, notify::message_id(&queued), "the Message-ID comes from the queued row");
    eventually("the row marked delivered", 10, || entry(&store, ids[0]).delivered).await;
    sender.stop().await;

    let en = NotifyConfig { language: "en".into(), ..cfg };
    notify::deliver(&en, "email", &payload(&crash_loop())).await.unwrap();
    let mails = smtp.wait_for_mails(2).await;
    let en = mails.iter().find(|m| m.message_id != de.message_id).unwrap();
    assert_eq!(en.subject, "[hafen box1] CRITICAL: tryton: Crash loop in server");
    assert!(en.body.contains("What happened?") && en.body.contains("What hafen already tried:") && en.body.contains("2026-03-01 14:05 UTC"), "{}", en.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_required_not_opportunistic() {
    let d = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(d.path(), free_port(), Security::Plain).await;
    let cfg = config(Some(EmailConfig { security: SmtpSecurity::Starttls, ..email(smtp.port) }), &[], None);
    let e = notify::deliver(&cfg, "email", &payload(&crash_loop())).await.unwrap_err();
    assert!(e.contains(&format!("127.0.0.1:{} (STARTTLS)", smtp.port)) && e.contains("STARTTLS"), "{e}");
    assert!(smtp.files().is_empty(), "nothing may be sent unencrypted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_auth_works_with_the_private_ca_and_fails_clearly_without_it() {
    let d = tempfile::tempdir().unwrap();
    let pki = make_pki(d.path());
    let port = free_port();
    let smtp = Smtp::start(d.path(), port, Security::Starttls(&pki)).await;
    let pw = password_file(d.path(), 0o600);
    let good = config(Some(tls_email(port, &pki, &pw)), &[], None);

    let no_ca = config(Some(EmailConfig { ca_file: None, ..tls_email(port, &pki, &pw) }), &[], None);
    let e = notify::deliver(&no_ca, "email", &payload(&crash_loop())).await.unwrap_err();
    assert!(e.contains(&format!("e-mail via 127.0.0.1:{port} (STARTTLS)")), "{e}");
    assert!(e.contains("certificate") && e.contains("notify.email.ca_file"), "says the certificate is not trusted and what to do: {e}");
    assert!(!e.contains(PASSWORD));

    let wrong = d.path().join("wrong-password");
    std::fs::write(&wrong, "not it\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o400)).unwrap();
    let bad_pw = config(Some(tls_email(port, &pki, &wrong)), &[], None);
    let e = notify::deliver(&bad_pw, "email", &payload(&crash_loop())).await.unwrap_err();
    assert!(e.contains("535") && !e.contains("not it"), "{e}");
    assert!(smtp.files().is_empty());

    notify::deliver(&good, "email", &payload(&crash_loop())).await.unwrap();
    let mails = smtp.wait_for_mails(1).await;
    assert_eq!(mails[0].subject, "[hafen box1] KRITISCH: tryton: Absturzschleife bei server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_with_auth_works_with_the_private_ca_and_fails_clearly_without_it() {
    let d = tempfile::tempdir().unwrap();
    let pki = make_pki(d.path());
    let port = free_port();
    let smtp = Smtp::start(d.path(), port, Security::Implicit(&pki)).await;
    let pw = password_file(d.path(), 0o600);
    let tls = EmailConfig { security: SmtpSecurity::Tls, ..tls_email(port, &pki, &pw) };

    let no_ca = config(Some(EmailConfig { ca_file: None, ..tls.clone() }), &[], None);
    let e = notify::deliver(&no_ca, "email", &payload(&crash_loop())).await.unwrap_err();
    assert!(e.contains(&format!("e-mail via 127.0.0.1:{port} (TLS)")), "{e}");
    assert!(e.contains("invalid peer certificate") && e.contains("UnknownIssuer"), "names the certificate problem: {e}");
    assert!(e.contains("notify.email.ca_file"), "says what to do: {e}");
    assert!(!e.contains(PASSWORD), "{e}");
    assert!(smtp.files().is_empty(), "nothing may be sent to a server that is not trusted");

    notify::deliver(&config(Some(tls), &[], None), "email", &payload(&crash_loop())).await.unwrap();
    let mails = smtp.wait_for_mails(1).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0].subject, "[hafen box1] KRITISCH: tryton: Absturzschleife bei server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_files_readable_by_others_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let pki = make_pki(d.path());
    let port = free_port();
    let smtp = Smtp::start(d.path(), port, Security::Starttls(&pki)).await;
    let loose = password_file(d.path(), 0o644);
    let cfg = config(Some(tls_email(port, &pki, &loose)), &[], None);
    let e = notify::deliver(&cfg, "email", &payload(&crash_loop())).await.unwrap_err();
    assert!(e.contains(&format!("chmod 600 {}", loose.display())), "{e}");
    assert!(!e.contains(PASSWORD), "{e}");
    assert!(smtp.files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_receive_the_notice_as_json() {
    let d = tempfile::tempdir().unwrap();
    let (url, http) = Http::start(0).await;
    let store = open_store(d.path());
    let cfg = config(None, &[format!("{url}/hook/secret-token")], None);
    let ids = notify::enqueue(&store, &cfg, &crash_loop()).unwrap();
    let sender = Sender::start(store.clone(), cfg);
    sender.wake.notify_one();
    let seen = eventually("a POST", 20, || http.seen().first().cloned()).await;
    assert_eq!((seen.0.as_str(), seen.1.as_str()), ("POST", "/hook/secret-token"));
    let v: serde_json::Value = serde_json::from_str(&seen.2).unwrap();
    assert_eq!(v["host"], "box1");
    assert_eq!(v["kind"], "problem");
    assert_eq!(v["severity"], "critical");
    assert_eq!(v["key"], "crash_loop:tryton/server");
    assert_eq!(v["code"], "crash_loop");
    assert_eq!(v["stack"], "tryton");
    assert_eq!(v["since"], "2026-03-01T14:05:00.000Z");
    assert_eq!(v["language"], "de");
    assert_eq!(v["title"], "Absturzschleife bei server");
    assert!(v["text"].as_str().unwrap().contains("Was ist zu tun?"));
    assert_eq!(v["tried"], serde_json::json!(["server neu gestartet (5-mal)", "Neustarts von server eingestellt, um die Schleife zu beenden"]));
    eventually("the row marked delivered", 10, || entry(&store, ids[0]).delivered).await;
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_500_is_retried() {
    let d = tempfile::tempdir().unwrap();
    let (url, http) = Http::start(1).await;
    let store = open_store(d.path());
    let cfg = config(None, &[format!("{url}/hook")], None);
    let id = notify::enqueue(&store, &cfg, &crash_loop()).unwrap()[0];
    let sender = Sender::start(store.clone(), cfg);
    sender.wake.notify_one();
    let failed = eventually("the first attempt recorded as failed", 20, || Some(entry(&store, id)).filter(|e| e.attempts == 1)).await;
    let error = failed.last_error.unwrap();
    assert!(error.contains("500") && error.contains(&format!("webhook:0 ({url})")), "{error}");
    assert!(!error.contains("/hook"), "the URL's path may hold a token: {error}");
    assert_eq!(failed.delivered, None);
    let done = eventually("the retry delivered", 30, || Some(entry(&store, id)).filter(|e| e.delivered.is_some())).await;
    assert_eq!(done.attempts, 1);
    let seen = http.seen();
    assert_eq!(seen.len(), 2, "one failed attempt, one retry");
    assert_eq!(seen[0].2, seen[1].2, "the retry sends the same notice");
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_smtp_is_down_the_mail_waits_and_after_a_restart_it_is_sent_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(Some(email(port)), &[], None);

    // SMTP down: the row stays queued with the error.
    let store = open_store(d.path());
    let id = notify::enqueue(&store, &cfg, &crash_loop()).unwrap()[0];
    let sender = Sender::start(store.clone(), cfg.clone());
    sender.wake.notify_one();
    let failed = eventually("a failed attempt", 30, || Some(entry(&store, id)).filter(|e| e.attempts >= 1)).await;
    let error = failed.last_error.clone().unwrap();
    assert!(error.contains(&format!("e-mail via 127.0.0.1:{port}")), "{error}");
    assert_eq!(store.outbox_pending().unwrap(), 1);
    sender.stop().await;
    drop(store);

    // The daemon restarts and the SMTP server is back.
    let smtp = Smtp::start(d.path(), port, Security::Plain).await;
    let store = open_store(d.path());
    let kept = entry(&store, id);
    assert_eq!((kept.attempts, kept.delivered.as_deref()), (failed.attempts, None), "the row survived the restart");
    let sender = Sender::start(store.clone(), cfg.clone());
    let mails = smtp.wait_for_mails(1).await;
    assert_eq!(mails[0].subject, "[hafen box1] KRITISCH: tryton: Absturzschleife bei server");
    eventually("the row marked delivered", 10, || entry(&store, id).delivered).await;
    assert_eq!(store.outbox_pending().unwrap(), 0);

    // A later pass of the sender (it delivers a second notice) must not send the first again.
    let mut second = crash_loop();
    second.kind = NoticeKind::Resolved;
    let id2 = notify::enqueue(&store, &cfg, &second).unwrap()[0];
    sender.wake.notify_one();
    eventually("the second row delivered", 30, || entry(&store, id2).delivered).await;
    let mails = smtp.wait_for_mails(2).await;
    assert_eq!(mails.len(), 2, "{mails:#?}");
    assert_eq!(mails.iter().filter(|m| m.subject.contains("] KRITISCH: ")).count(), 1, "the first notice exactly once");
    assert_eq!(mails.iter().filter(|m| m.subject.contains("] BEHOBEN: ")).count(), 1);
    sender.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_is_a_get_and_a_test_reaches_every_channel() {
    let d = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(d.path(), free_port(), Security::Plain).await;
    let (url, http) = Http::start(0).await;
    let cfg = config(Some(email(smtp.port)), &[format!("{url}/hook")], Some(format!("{url}/ping/uuid")));

    let store = open_store(d.path());
    let id = notify::enqueue_heartbeat(&store, &cfg).unwrap().expect("a heartbeat row");
    let sender = Sender::start(store.clone(), cfg.clone());
    sender.wake.notify_one();
    eventually("the heartbeat delivered", 20, || entry(&store, id).delivered).await;
    sender.stop().await;
    assert_eq!(http.seen().iter().map(|(m, p, _)| (m.as_str(), p.as_str())).collect::<Vec<_>>(), [("GET", "/ping/uuid")]);

    let results = notify::send_test(&cfg).await;
    let names: Vec<&str> = results.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, ["email", "webhook:0", "heartbeat"]);
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    let mails = smtp.wait_for_mails(1).await;
    assert!(mails[0].subject.ends_with("] TEST: Testnachricht"), "{}", mails[0].subject);
    let hook = http.seen().into_iter().find(|(m, _, _)| m == "POST").expect("the webhook got the test");
    assert!(hook.2.contains("\"kind\":\"test\""), "{}", hook.2);

    let down = config(None, &[format!("http://127.0.0.1:{}/hook", free_port())], None);
    let results = notify::send_test(&down).await;
    let e = results[0].1.as_ref().unwrap_err();
    assert!(e.starts_with("webhook:0 (http://127.0.0.1:") && e.contains("request failed"), "{e}");
}
