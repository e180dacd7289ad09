//! E-mail delivery over SMTP (the only `lettre` user): STARTTLS required (never opportunistic),
//! TLS from the first byte, or no encryption for a relay on this machine; optional AUTH with
//! the password read from a file that only its owner may read; Mozilla's roots (compiled in)
//! plus an optional private CA; a Message-ID derived from the queued notice, so a receiver
//! can drop a repeat. Errors name the server and what failed, never the password.

use super::{Queued, Rendered};
use crate::config::{EmailConfig, SmtpSecurity};
use lettre::message::{header::ContentType, Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::path::Path;
use std::time::Duration;

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends one rendered notice to every address in `to`.
pub(super) async fn send(cfg: &EmailConfig, q: &Queued, r: &Rendered) -> Result<(), String> {
    let fail = |what: String| format!("e-mail via {}: {what}", server(cfg));
    let message = message(cfg, q, r).map_err(fail)?;
    let transport = transport(cfg, &q.notice.host).map_err(fail)?;
    transport.send(message).await.map(|_| ()).map_err(|e| fail(explain(&e)))
}

/// `smtp.example.org:587 (STARTTLS)`.
fn server(cfg: &EmailConfig) -> String {
    let how = match cfg.security {
        SmtpSecurity::Starttls => "STARTTLS",
        SmtpSecurity::Tls => "TLS",
        SmtpSecurity::None => "unencrypted",
    };
    format!("{}:{} ({how})", cfg.host, cfg.port)
}

/// `<hafen.<id>@<host>>`: the same for every attempt of one queued notice.
pub fn message_id(q: &Queued) -> String {
    let host: String = q.notice.host.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')).collect();
    format!("<hafen.{}@{}>", q.id, if host.is_empty() { "localhost" } else { &host })
}

fn message(cfg: &EmailConfig, q: &Queued, r: &Rendered) -> Result<Message, String> {
    let mailbox = |a: &str| a.parse::<Mailbox>().map_err(|e| format!("`{a}` is not a usable e-mail address ({e})"));
    let mut b = Message::builder()
        .from(mailbox(&cfg.from)?)
        .subject(r.subject.clone())
        .message_id(Some(message_id(q)))
        .user_agent(format!("hafen {}", env!("CARGO_PKG_VERSION")));
    for to in &cfg.to {
        b = b.to(mailbox(to)?);
    }
    b.header(ContentType::TEXT_PLAIN).body(r.text.clone()).map_err(|e| format!("could not build the message: {e}"))
}

fn transport(cfg: &EmailConfig, host: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let helo = if host.is_empty() { "localhost".to_string() } else { host.to_string() };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
        .port(cfg.port)
        .timeout(Some(SMTP_TIMEOUT))
        .hello_name(ClientId::Domain(helo));
    b = match cfg.security {
        SmtpSecurity::Starttls => b.tls(Tls::Required(tls_parameters(cfg)?)),
        SmtpSecurity::Tls => b.tls(Tls::Wrapper(tls_parameters(cfg)?)),
        SmtpSecurity::None => b.tls(Tls::None),
    };
    if let (Some(user), Some(file)) = (&cfg.user, &cfg.password_file) {
        b = b.credentials(Credentials::new(user.clone(), read_password(file)?));
    }
    Ok(b.build())
}

/// Mozilla's roots, plus the CA in `ca_file` when one is given.
fn tls_parameters(cfg: &EmailConfig) -> Result<TlsParameters, String> {
    let mut b = TlsParameters::builder(cfg.host.clone()).certificate_store(CertificateStore::WebpkiRoots);
    if let Some(ca) = &cfg.ca_file {
        b = b.add_root_certificate(read_ca(ca)?);
    }
    b.build_rustls().map_err(|e| format!("could not set up TLS: {e}"))
}

fn read_ca(path: &Path) -> Result<Certificate, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read the CA file {} (notify.email.ca_file): {e}", path.display()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!("the CA file {} (notify.email.ca_file) holds no PEM certificate", path.display()));
    }
    Certificate::from_pem(&pem).map_err(|e| format!("the CA file {} (notify.email.ca_file) is not usable: {e}", path.display()))
}

/// The SMTP password: the file's content without its final line break. The file must be
/// readable by its owner only.
pub fn read_password(path: &Path) -> Result<String, String> {
    crate::secrets::read_private(path, "notify.email.password_file")
}

/// lettre's error, with advice where the cause is a usual one.
fn explain(e: &lettre::transport::smtp::Error) -> String {
    let text = e.to_string().replace("Connection error: Connection error: ", "Connection error: ");
    let advice = if e.is_tls() || text.contains("certificate") || text.contains("Certificate") {
        "; if the server's certificate comes from a private CA, name that CA's certificate in notify.email.ca_file"
    } else if text.contains("STARTTLS") {
        "; the server does not offer STARTTLS: use `security: tls` (port 465) if it speaks TLS from the start"
    } else if e.is_timeout() {
        "; the server did not answer in time"
    } else if e.status().is_some_and(|c| c.to_string().starts_with("535")) {
        "; the server refused user or password (notify.email.user, password_file)"
    } else {
        ""
    };
    format!("sending failed: {text}{advice}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, mode: u32, text: &str) -> std::path::PathBuf {
        let p = dir.join("pw");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn password_files_readable_by_others_are_refused_without_showing_the_password() {
        let d = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let p = file(d.path(), mode, "s3cret\n");
            let e = read_password(&p).unwrap_err();
            assert!(e.contains(&format!("chmod 600 {}", p.display())), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn owner_only_password_files_are_read_without_the_line_break() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_password(&file(d.path(), 0o600, "s3cret\n")).unwrap(), "s3cret");
        assert_eq!(read_password(&file(d.path(), 0o400, "s3 cret\r\n")).unwrap(), "s3 cret");
        assert!(read_password(&file(d.path(), 0o600, "\n")).unwrap_err().contains("empty"));
    }
}
