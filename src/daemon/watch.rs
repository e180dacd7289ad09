//! The watching workers: `engine-watch` follows the engine's event stream (reconnected with
//! backoff, a full resync after each reconnect) and hands each event to the stacks' healer;
//! the host checks run as one named worker each (`host_checks`). What they decide is the
//! services' (`stacks`, `checks`); what `hafen worker list` shows is `worker_status`.

use crate::app::App;
use crate::worker::{Line, Round, Status, Worker};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Worker `engine-watch`: follows the engine's container events (one long round per connection;
/// after a reconnect a full resync), reconnecting with backoff (1 s doubling to 30 s).
pub struct EngineWatch {
    connected_before: bool,
    /// The wait after the next failed connection attempt.
    delay: Duration,
}

impl Default for EngineWatch {
    fn default() -> Self {
        EngineWatch { connected_before: false, delay: Duration::from_secs(1) }
    }
}

const ENGINE_WATCH: &str = "engine-watch";
/// How often the engine is looked at while its event stream is quiet.
const ENGINE_LOOK_EVERY: Duration = Duration::from_secs(15);

#[async_trait::async_trait]
impl Worker for EngineWatch {
    fn name(&self) -> &'static str {
        ENGINE_WATCH
    }
    fn every(&self, _app: &App) -> Line {
        Line::code("on_engine_events", &[])
    }
    async fn round(&mut self, app: &Arc<App>) -> Round {
        match app.shared.engine.events().await {
            Ok(mut stream) => {
                self.delay = Duration::from_secs(1);
                app.stacks.check_engine().await;
                if self.connected_before {
                    // Full resync: every service is looked at again; stopped ones go to the healer.
                    app.shared.wake_reconciler.notify_one();
                    app.health.kick();
                }
                self.connected_before = true;
                app.shared.workers.set(ENGINE_WATCH, Line::code("on_engine_events", &[]), "ok", Line::code("following_events", &[]));
                // A hung engine sends no events and closes nothing: look at it every
                // `ENGINE_LOOK_EVERY` as well, each look bounded by the ping limit.
                let mut look = tokio::time::interval(ENGINE_LOOK_EVERY);
                look.tick().await;
                let why = loop {
                    tokio::select! {
                        next = stream.next() => match next {
                            Some(Ok(ev)) => app.stacks.on_engine_event(&ev),
                            Some(Err(e)) => break format!("event stream broke: {e}; reconnecting"),
                            None => break "the engine closed the event stream; reconnecting".to_string(),
                        },
                        _ = look.tick() => {
                            if !app.stacks.check_engine().await {
                                break "the engine does not answer; reconnecting".to_string();
                            }
                        }
                    }
                };
                app.stacks.check_engine().await;
                Round { status: Some(Status { state: "error", detail: why.into() }), wait: Duration::from_secs(1) }
            }
            Err(e) => {
                app.stacks.check_engine().await;
                let wait = self.delay;
                self.delay = (wait * 2).min(Duration::from_secs(30));
                Round { status: Some(Status { state: "error", detail: format!("{e}; next attempt in {}s", wait.as_secs()).into() }), wait }
            }
        }
    }
}

/// The host checks, each a named worker on `health.host_check_interval` (SMART hourly at most:
/// it reads the disks themselves). Each check reports its own status.
pub fn host_checks(app: &App) -> Vec<Box<dyn Worker>> {
    let every = app.shared.cfg.health.host_check_interval;
    let ooms = Arc::new(std::sync::Mutex::new(None));
    [
        (HostCheck::DiskSpace, every),
        (HostCheck::BackupDisk, every),
        (HostCheck::Memory(ooms), every),
        (HostCheck::Clock, every),
        (HostCheck::Smart, every.max(Duration::from_secs(3600))),
        (HostCheck::BackupAge, every),
    ]
    .into_iter()
    .map(|(check, every)| Box::new(HostCheckWorker { check, every }) as Box<dyn Worker>)
    .collect()
}

enum HostCheck {
    DiskSpace,
    BackupDisk,
    /// The out-of-memory kill count seen last.
    Memory(Arc<std::sync::Mutex<Option<u64>>>),
    Clock,
    Smart,
    BackupAge,
}

struct HostCheckWorker {
    check: HostCheck,
    every: Duration,
}

#[async_trait::async_trait]
impl Worker for HostCheckWorker {
    fn name(&self) -> &'static str {
        match self.check {
            HostCheck::DiskSpace => "disk-space",
            HostCheck::BackupDisk => "backup-disk",
            HostCheck::Memory(_) => "memory",
            HostCheck::Clock => "clock",
            HostCheck::Smart => "smart",
            HostCheck::BackupAge => "backup-age",
        }
    }
    fn every(&self, app: &App) -> Line {
        // As the checks report it themselves.
        app.checks.every()
    }
    async fn round(&mut self, app: &Arc<App>) -> Round {
        match &self.check {
            HostCheck::DiskSpace => app.checks.check_disks().await,
            HostCheck::BackupDisk => app.checks.check_backup_disks().await,
            HostCheck::Memory(ooms) => app.checks.check_memory(ooms).await,
            HostCheck::Clock => app.checks.check_clock().await,
            HostCheck::Smart => app.checks.check_smart().await,
            HostCheck::BackupAge => app.checks.check_backup_age().await,
        }
        Round::wait(self.every)
    }
}

