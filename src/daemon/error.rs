//! The service layer's error: what a service refuses or what failed under it, as code +
//! arguments for every client (`message`), with the HTTP status chosen at the API's edge
//! (`server`), never here.

use hafen_api::Message;
use hafen_engine::EngineError;
use crate::images::ImageError;
use hafen_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{}", rust_i18n::t!("err.app_not_found", id = .id, dir = .dir, available = .available))]
    NotFound { id: String, dir: String, available: String },
    #[error("{}", rust_i18n::t!("err.app_not_deployed", id = .id, deployed = .deployed))]
    NotDeployed { id: String, deployed: String },
    #[error("{}", rust_i18n::t!("err.app_definition", id = .id))]
    Definition { id: String, issues: Vec<String> },
    #[error("{}", rust_i18n::t!("err.app_settings", id = .id))]
    Settings { id: String, errors: Vec<String> },
    /// What the daemon will not do (`err.refused_<code>`), or a refusal that arrives as text
    /// from elsewhere (`err.app_refused` with it as `detail`).
    #[error("{}", hafen_core::i18n::render_error(&rust_i18n::locale(), .0).unwrap_or_else(|| .0.code.clone()))]
    Refused(Message),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {detail}")]
    Io { what: String, detail: String },
    #[error("{0}")]
    Apply(String),
    /// A backup that failed: its code (`err.run_*`), or its text as `err.app_backup`'s detail.
    #[error("{}", hafen_core::i18n::render_error(&rust_i18n::locale(), .0).unwrap_or_else(|| .0.code.clone()))]
    Backup(Message),
}

/// A refusal with its catalogue code (`err.refused_<code>`) and arguments.
pub(crate) fn refused(code: &str, args: &[(&str, String)]) -> AppError {
    AppError::Refused(Message { code: format!("refused_{code}"), args: crate::notify::args(args) })
}

/// A refusal whose text comes from elsewhere (a registry's answer, another error).
pub(crate) fn refused_text(detail: impl ToString) -> AppError {
    AppError::Refused(Message::new("app_refused").arg("detail", detail.to_string()))
}

impl AppError {
    /// The error as code + arguments (`hafen_api::Message`): what every client renders in its
    /// reader's language. Errors that arrive here as text (`Refused`, `Apply`, `Backup`, `Io`)
    /// carry that text, in the daemon's language, as their `detail`.
    pub fn message(&self) -> Message {
        use Message as M;
        match self {
            AppError::NotFound { id, dir, available } => M::new("app_not_found").arg("id", id).arg("dir", dir).arg("available", available),
            AppError::NotDeployed { id, deployed } => M::new("app_not_deployed").arg("id", id).arg("deployed", deployed),
            AppError::Definition { id, .. } => M::new("app_definition").arg("id", id),
            AppError::Settings { id, .. } => M::new("app_settings").arg("id", id),
            AppError::Refused(m) => m.clone(),
            AppError::Engine(e) => e.message(),
            AppError::Image(e) => e.message(),
            AppError::Store(e) => e.message(),
            AppError::Io { what, detail } => M::new("app_io").arg("what", what).arg("detail", detail),
            AppError::Apply(detail) => M::new("app_apply").arg("detail", detail),
            AppError::Backup(m) => m.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_codes_that_read_as_before_in_english_and_in_german() {
        let e = refused("purge_confirm", &[("id", "tryton".into())]);
        let en = hafen_core::i18n::render_error("en", &e.message()).unwrap();
        assert_eq!(en, "--purge deletes the data volumes of `tryton` for good; confirm by giving the stack id (`hafen stack remove tryton --purge --confirm tryton`)");
        let de = hafen_core::i18n::render_error("de", &e.message()).unwrap();
        assert!(de.starts_with("--purge löscht die Datenvolumes von `tryton`"), "{de}");
        let t = refused_text("registry down");
        assert_eq!((t.message().code.as_str(), hafen_core::i18n::render_error("de", &t.message()).unwrap().as_str()), ("app_refused", "registry down"));
    }
}
