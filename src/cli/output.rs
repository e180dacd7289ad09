//! Output helpers shared by the command families: JSON for `--json`, and a spinner on a terminal
//! (a plain line otherwise) while the daemon works.

use std::time::Duration;

/// `--json`: the API's type, pretty-printed.
pub fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Runs `f` with a spinner showing `msg` when `show` (a terminal user waiting for the daemon).
pub async fn spinning<T>(show: bool, msg: &str, f: impl std::future::Future<Output = T>) -> T {
    let spinner = show.then(|| progress_spinner(msg));
    let r = f.await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    r
}

/// A spinner with elapsed time on a terminal; one plain line otherwise.
pub fn progress_spinner(msg: &str) -> indicatif::ProgressBar {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()));
        pb.set_message(msg.to_string());
        pb.enable_steady_tick(Duration::from_millis(200));
        pb
    } else {
        eprintln!("{msg}");
        indicatif::ProgressBar::hidden()
    }
}

/// A state word the daemon reports (`healthy`, `not deployed`, `exited`, …) in the reader's
/// language; a word the catalogue does not know yet is shown as it came.
pub fn word(w: &str) -> String {
    hafen_core::i18n::word(&rust_i18n::locale(), w).unwrap_or_else(|| w.to_string())
}
