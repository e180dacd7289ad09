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

/// Runs `f` (a long call on `stack`: an update, a rollback, a deploy) and, when `show`, tells
/// each of the stack's events as it happens — every update step, migration, image and service
/// — with the time since the start: above a spinner on a terminal, as plain lines otherwise.
pub async fn following<T>(c: &crate::client::Client, show: bool, stack: &str, msg: &str, f: impl std::future::Future<Output = T>) -> T {
    if !show {
        return f.await;
    }
    // The newest event of the stack so far: only what happens from now on is told.
    let mut since = 0;
    while let Ok(page) = c.get::<Vec<hafen_api::EventRecord>>(&format!("/v1/events?since={since}&stack={stack}&limit=1000")).await {
        match page.last() {
            Some(e) => since = e.seq,
            None => break,
        }
        if page.len() < 1000 {
            break;
        }
    }
    let pb = progress_spinner(msg);
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let start = std::time::Instant::now();
    let lang = rust_i18n::locale();
    let tell = |events: Vec<hafen_api::EventRecord>, since: &mut i64| {
        for e in events {
            *since = e.seq;
            let line = hafen_core::events::render_detail(&lang, &e.detail).unwrap_or_else(|| e.message.clone());
            let line = format!("[{:>4}s] {line}", start.elapsed().as_secs());
            if terminal {
                pb.println(&line);
            } else {
                eprintln!("{line}");
            }
        }
    };
    tokio::pin!(f);
    let r = loop {
        let path = format!("/v1/events?since={since}&stack={stack}&wait=2");
        tokio::select! {
            r = &mut f => break r,
            ev = c.get::<Vec<hafen_api::EventRecord>>(&path) => match ev {
                Ok(ev) => tell(ev, &mut since),
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            },
        }
    };
    if let Ok(ev) = c.get::<Vec<hafen_api::EventRecord>>(&format!("/v1/events?since={since}&stack={stack}")).await {
        tell(ev, &mut since);
    }
    pb.finish_and_clear();
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
