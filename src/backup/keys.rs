//! Key custody with age: the only module that imports `age`. Each repository's key is random and
//! never typed; hafen keeps it age-encrypted to every configured recipient — the box's own
//! identity (for unattended runs) and the offline recovery identities (printed once by
//! `hafen keys init`). Adding or removing a recipient re-wraps the small key files only; the
//! repositories' data is never touched.

use age::secrecy::ExposeSecret;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}", rust_i18n::t!("err.key_io", path = .path, detail = .detail))]
    Io { path: String, detail: String },
    #[error("{}", rust_i18n::t!("err.key_recipient", value = .value, detail = .detail))]
    BadRecipient { value: String, detail: String },
    #[error("{}", rust_i18n::t!("err.key_identity", detail = .detail))]
    BadIdentity { detail: String },
    #[error("{}", rust_i18n::t!("err.key_decrypt", what = .what, detail = .detail))]
    Decrypt { what: String, detail: String },
    #[error("{}", rust_i18n::t!("err.key_encrypt", what = .what, detail = .detail))]
    Encrypt { what: String, detail: String },
    #[error("{}", rust_i18n::t!("err.key_norecovery"))]
    NoRecovery,
    #[error("{}", rust_i18n::t!("err.key_last", _0 = .0))]
    LastRecovery(String),
    #[error("{}", rust_i18n::t!("err.key_unknown", _0 = .0))]
    UnknownRecipient(String),
}

pub use hafen_api::RecipientEntry;

/// A freshly generated identity; the secret is shown once and never stored by hafen.
pub struct NewIdentity {
    secret: String,
    pub recipient: String,
}

impl std::fmt::Debug for NewIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewIdentity({}, secret: ***)", self.recipient)
    }
}

impl NewIdentity {
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }
}

pub fn generate_identity() -> NewIdentity {
    let id = age::x25519::Identity::generate();
    NewIdentity { secret: id.to_string().expose_secret().to_string(), recipient: id.to_public().to_string() }
}

/// Checks that `s` parses as an x25519 recipient.
pub fn parse_recipient(s: &str) -> Result<String, KeyError> {
    age::x25519::Recipient::from_str(s.trim())
        .map(|r| r.to_string())
        .map_err(|e| KeyError::BadRecipient { value: s.trim().to_string(), detail: e.to_string() })
}

/// The public recipient of a secret identity string.
pub fn recipient_of(identity: &str) -> Result<String, KeyError> {
    let id = age::x25519::Identity::from_str(identity.trim()).map_err(|e| KeyError::BadIdentity { detail: e.to_string() })?;
    Ok(id.to_public().to_string())
}

/// Encrypts `plaintext` to all `recipients`, ASCII-armored (printable, fits a QR code).
pub fn encrypt(recipients: &[String], plaintext: &[u8], what: &str) -> Result<Vec<u8>, KeyError> {
    let enc = |e: String| KeyError::Encrypt { what: what.to_string(), detail: e };
    let parsed: Vec<age::x25519::Recipient> =
        recipients.iter().map(|r| age::x25519::Recipient::from_str(r).map_err(|e| enc(e.to_string()))).collect::<Result<_, _>>()?;
    let encryptor = age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient)).map_err(|e| enc(e.to_string()))?;
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor).map_err(|e| enc(e.to_string()))?;
    let mut w = encryptor.wrap_output(armor).map_err(|e| enc(e.to_string()))?;
    w.write_all(plaintext).map_err(|e| enc(e.to_string()))?;
    w.finish().and_then(|a| a.finish()).map_err(|e| enc(e.to_string()))?;
    Ok(out)
}

/// A binary age stream to `recipients` around `w` (large files: exports); `finish` must be
/// called to write the last chunk.
pub struct EncryptingWriter<W: Write>(age::stream::StreamWriter<W>);

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> EncryptingWriter<W> {
    pub fn finish(self) -> std::io::Result<W> {
        self.0.finish()
    }
}

pub fn encrypting_writer<W: Write>(recipients: &[String], w: W, what: &str) -> Result<EncryptingWriter<W>, KeyError> {
    let enc = |e: String| KeyError::Encrypt { what: what.to_string(), detail: e };
    let parsed: Vec<age::x25519::Recipient> =
        recipients.iter().map(|r| age::x25519::Recipient::from_str(r).map_err(|e| enc(format!("{r}: {e}")))).collect::<Result<_, _>>()?;
    let encryptor = age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient)).map_err(|e| enc(e.to_string()))?;
    Ok(EncryptingWriter(encryptor.wrap_output(w).map_err(|e| enc(e.to_string()))?))
}

/// Decrypts an (armored or binary) age file with one identity.
pub fn decrypt(identity: &str, ciphertext: &[u8], what: &str) -> Result<Vec<u8>, KeyError> {
    let id = age::x25519::Identity::from_str(identity.trim()).map_err(|e| KeyError::BadIdentity { detail: e.to_string() })?;
    let dec = |e: String| KeyError::Decrypt { what: what.to_string(), detail: e };
    let d = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(ciphertext)).map_err(|e| dec(e.to_string()))?;
    let mut r = d.decrypt(std::iter::once(&id as &dyn age::Identity)).map_err(|e| dec(e.to_string()))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| dec(e.to_string()))?;
    Ok(out)
}

/// hafen's key directory: the box identity, the recipient list, and the wrapped repository keys.
pub struct Keyring {
    dir: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> KeyError {
    KeyError::Io { path: path.display().to_string(), detail: e.to_string() }
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(data).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

impl Keyring {
    /// Opens `dir` (created 0700), generating the box identity on first use.
    pub fn open(dir: &Path) -> Result<Keyring, KeyError> {
        std::fs::create_dir_all(dir.join("repos")).map_err(|e| io(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(dir, e))?;
        let k = Keyring { dir: dir.to_path_buf() };
        if !k.box_identity_path().exists() {
            let id = generate_identity();
            write_private(&k.box_identity_path(), id.expose_secret().as_bytes())?;
            let mut list = k.recipients_raw()?;
            list.retain(|r| r.role != "box");
            list.insert(0, RecipientEntry { label: "box".into(), recipient: id.recipient, role: "box".into() });
            k.save_recipients(&list)?;
        }
        Ok(k)
    }

    fn box_identity_path(&self) -> PathBuf {
        self.dir.join("box.identity")
    }

    pub fn box_identity(&self) -> Result<String, KeyError> {
        std::fs::read_to_string(self.box_identity_path()).map_err(|e| io(&self.box_identity_path(), e))
    }

    fn recipients_path(&self) -> PathBuf {
        self.dir.join("recipients.json")
    }

    fn recipients_raw(&self) -> Result<Vec<RecipientEntry>, KeyError> {
        match std::fs::read(self.recipients_path()) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| KeyError::Io { path: self.recipients_path().display().to_string(), detail: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&self.recipients_path(), e)),
        }
    }

    fn save_recipients(&self, list: &[RecipientEntry]) -> Result<(), KeyError> {
        write_private(&self.recipients_path(), &serde_json::to_vec_pretty(list).unwrap_or_default())
    }

    pub fn recipients(&self) -> Result<Vec<RecipientEntry>, KeyError> {
        self.recipients_raw()
    }

    pub fn has_recovery(&self) -> Result<bool, KeyError> {
        Ok(self.recipients_raw()?.iter().any(|r| r.role == "recovery"))
    }

    fn repo_key_path(&self, target: &str) -> PathBuf {
        self.dir.join("repos").join(format!("{target}.age"))
    }

    /// The wrapped key file of a target (what goes into the recovery kit and the repository).
    pub fn wrapped_repo_key(&self, target: &str) -> Result<Option<Vec<u8>>, KeyError> {
        match std::fs::read(self.repo_key_path(target)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&self.repo_key_path(target), e)),
        }
    }

    /// The repository key of `target`, unwrapped with the box identity; created (random,
    /// 256 bits as 64 hex digits) when the target has none yet. Refuses to create one while no
    /// recovery recipient exists, so no repository is ever readable only by this box.
    pub fn repo_key(&self, target: &str) -> Result<hafen_core::secret::Secret, KeyError> {
        if let Some(wrapped) = self.wrapped_repo_key(target)? {
            let plain = decrypt(&self.box_identity()?, &wrapped, &format!("the key of target `{target}`"))?;
            return Ok(hafen_core::secret::Secret::from_string(String::from_utf8_lossy(&plain).trim().to_string()));
        }
        if !self.has_recovery()? {
            return Err(KeyError::NoRecovery);
        }
        let key = hex::encode(rand::random::<[u8; 32]>());
        self.store_repo_key(target, key.as_bytes())?;
        Ok(hafen_core::secret::Secret::from_string(key))
    }

    fn store_repo_key(&self, target: &str, key: &[u8]) -> Result<(), KeyError> {
        let recipients: Vec<String> = self.recipients_raw()?.into_iter().map(|r| r.recipient).collect();
        let wrapped = encrypt(&recipients, key, &format!("the key of target `{target}`"))?;
        write_private(&self.repo_key_path(target), &wrapped)
    }

    /// Re-wraps every repository key to the current recipients (keys stay the same).
    fn rewrap_all(&self) -> Result<Vec<String>, KeyError> {
        let mut done = Vec::new();
        let dir = self.dir.join("repos");
        for e in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let p = e.map_err(|e| io(&dir, e))?.path();
            let Some(target) = p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".age")).map(str::to_string) else { continue };
            let key = self.repo_key(&target)?;
            self.store_repo_key(&target, key.expose().as_bytes())?;
            done.push(target);
        }
        Ok(done)
    }

    /// Adds a recovery recipient and re-wraps all repository keys; returns the re-wrapped targets.
    pub fn add_recipient(&self, label: &str, recipient: &str) -> Result<Vec<String>, KeyError> {
        let recipient = parse_recipient(recipient)?;
        let mut list = self.recipients_raw()?;
        list.retain(|r| r.label != label && r.recipient != recipient);
        list.push(RecipientEntry { label: label.into(), recipient, role: "recovery".into() });
        self.save_recipients(&list)?;
        self.rewrap_all()
    }

    /// Removes a recovery recipient (never the last one) and re-wraps all repository keys.
    pub fn remove_recipient(&self, label: &str) -> Result<Vec<String>, KeyError> {
        let mut list = self.recipients_raw()?;
        let Some(pos) = list.iter().position(|r| r.label == label && r.role == "recovery") else {
            return Err(KeyError::UnknownRecipient(label.into()));
        };
        if list.iter().filter(|r| r.role == "recovery").count() == 1 {
            return Err(KeyError::LastRecovery(label.into()));
        }
        list.remove(pos);
        self.save_recipients(&list)?;
        self.rewrap_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_key_needs_recovery_and_survives_rewrapping() {
        let d = tempfile::tempdir().unwrap();
        let k = Keyring::open(d.path()).unwrap();
        assert!(matches!(k.repo_key("usb"), Err(KeyError::NoRecovery)));
        let rec1 = generate_identity();
        k.add_recipient("kit-1", &rec1.recipient).unwrap();
        let key = k.repo_key("usb").unwrap().expose().to_string();
        assert_eq!(key.len(), 64);
        let wrapped = k.wrapped_repo_key("usb").unwrap().unwrap();
        assert!(String::from_utf8_lossy(&wrapped).starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert_eq!(String::from_utf8(decrypt(rec1.expose_secret(), &wrapped, "k").unwrap()).unwrap(), key);

        // A second recovery recipient: the key is the same, both identities open it.
        let rec2 = generate_identity();
        assert_eq!(k.add_recipient("kit-2", &rec2.recipient).unwrap(), vec!["usb".to_string()]);
        let wrapped = k.wrapped_repo_key("usb").unwrap().unwrap();
        assert_eq!(String::from_utf8(decrypt(rec2.expose_secret(), &wrapped, "k").unwrap()).unwrap(), key);
        // Removing the first: it can no longer open the key; the box still can.
        k.remove_recipient("kit-1").unwrap();
        let wrapped = k.wrapped_repo_key("usb").unwrap().unwrap();
        assert!(matches!(decrypt(rec1.expose_secret(), &wrapped, "k"), Err(KeyError::Decrypt { .. })));
        assert_eq!(k.repo_key("usb").unwrap().expose(), key);
        assert!(matches!(k.remove_recipient("kit-2"), Err(KeyError::LastRecovery(_))));
        let mode = std::fs::metadata(d.path().join("box.identity")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn bad_inputs_are_named() {
        assert!(matches!(parse_recipient("age1nope"), Err(KeyError::BadRecipient { .. })));
        assert!(matches!(decrypt("AGE-SECRET-KEY-1XYZ", b"junk", "x"), Err(KeyError::BadIdentity { .. })));
        let id = generate_identity();
        assert!(matches!(decrypt(id.expose_secret(), b"junk", "x"), Err(KeyError::Decrypt { .. })));
        assert_eq!(recipient_of(id.expose_secret()).unwrap(), id.recipient);
        assert!(!format!("{id:?}").contains("AGE-SECRET"));
    }
}
