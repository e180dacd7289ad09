//! Named workers: every piece of background work of the daemon runs behind one `Worker` trait —
//! a name, how often it runs, and one round of work — and one runner loop that owns the
//! cancellation, the wait between rounds (or an early wake-up), and the status `hafen worker
//! list` shows. As Garage's background workers: one place to see and stop everything that runs.

use crate::app::App;
pub use crate::worker_status::Line;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a round reports for `hafen worker list` (`ok`, `warning`, `critical`, `error`).
pub struct Status {
    pub state: &'static str,
    pub detail: Line,
}

/// The outcome of one round: its status (`None`: the round reported it itself, as the host
/// checks and long rounds do) and how long to wait before the next round.
pub struct Round {
    pub status: Option<Status>,
    pub wait: Duration,
}

impl Round {
    pub fn wait(wait: Duration) -> Round {
        Round { status: None, wait }
    }
}

#[async_trait]
pub trait Worker: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// How often it runs, in words (`every 5s and on engine events`, a cron expression, …).
    fn every(&self, app: &App) -> Line;
    /// One round of work. A round may run long (the engine's event stream); the runner drops it
    /// when the daemon shuts down.
    async fn round(&mut self, app: &Arc<App>) -> Round;
    /// Something that cuts the wait short (the reconciler's kick).
    fn wakes_on<'a>(&self, _app: &'a App) -> Option<&'a Notify> {
        None
    }
}

/// Starts `w` on the tracker: listed at once as starting, then round after round until `cancel`.
pub fn spawn(tracker: &TaskTracker, app: &Arc<App>, cancel: &CancellationToken, w: Box<dyn Worker>) {
    app.shared.workers.set(w.name(), w.every(app), "starting", Line::code("first_round", &[]));
    tracker.spawn(run(app.clone(), cancel.clone(), w));
}

async fn run(app: Arc<App>, cancel: CancellationToken, mut w: Box<dyn Worker>) {
    loop {
        let round = tokio::select! {
            _ = cancel.cancelled() => return,
            r = w.round(&app) => r,
        };
        if let Some(s) = round.status {
            app.shared.workers.set(w.name(), w.every(&app), s.state, s.detail);
        }
        let wake = async {
            match w.wakes_on(&app) {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(round.wait) => {}
            _ = wake => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u32);

    #[async_trait]
    impl Worker for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn every(&self, _app: &App) -> Line {
            "every 10ms".into()
        }
        async fn round(&mut self, _app: &Arc<App>) -> Round {
            self.0 += 1;
            Round { status: Some(Status { state: "ok", detail: format!("round {}", self.0).into() }), wait: Duration::from_millis(10) }
        }
    }

    #[tokio::test]
    async fn a_worker_is_listed_at_once_reports_each_round_and_stops_when_cancelled() {
        let (_dir, app) = crate::app::tests::app_with_fake_engine();
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        spawn(&tracker, &app, &cancel, Box::new(Counter(0)));
        let first = app.shared.workers.list().into_iter().find(|w| w.name == "counter").expect("listed before its first round");
        assert!(first.state == "starting" || first.detail.starts_with("round"), "{first:?}");
        if first.state == "starting" {
            assert_eq!((first.detail.as_str(), first.detail_text.as_ref().map(|m| m.code.as_str())), ("first round not run yet", Some("worker.first_round")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let later = app.shared.workers.list().into_iter().find(|w| w.name == "counter").unwrap();
        assert_eq!(later.state, "ok");
        let n: u32 = later.detail.trim_start_matches("round ").parse().unwrap();
        assert!(n >= 2, "{later:?}");
        cancel.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await.expect("the runner stops on cancel");
    }
}
