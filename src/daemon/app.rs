//! The composition root of the daemon's services: it builds each service with what it takes
//! from the others, in dependency order (shared ports → alerts → health → stacks → backups →
//! updates; host checks beside them), and hands them to the API server and the workers. It
//! owns no state and no behaviour of its own; each service owns its locks and state.

use crate::alerts::Alerts;
use crate::backup::Backups;
use crate::busy::Ops;
use crate::checks::HostChecks;
use crate::config::Config;
use crate::health::Health;
use crate::shared::Shared;
use crate::stacks::Stacks;
use crate::update::Updates;
use hafen_engine::Engine;
use hafen_store::Store;
use std::sync::Arc;

pub use crate::error::AppError;

pub struct App {
    pub shared: Arc<Shared>,
    pub alerts: Arc<Alerts>,
    pub health: Arc<Health>,
    pub stacks: Arc<Stacks>,
    pub backups: Arc<Backups>,
    pub updates: Arc<Updates>,
    pub checks: Arc<HostChecks>,
}

impl App {
    pub fn new(cfg: Config, store: Store, engine: Arc<dyn Engine>) -> App {
        let shared = Arc::new(Shared::new(cfg, store, engine));
        let ops = Arc::new(Ops::default());
        let alerts = Arc::new(Alerts::new(shared.clone()));
        let health = Arc::new(Health::new(shared.clone(), alerts.clone()));
        let stacks = Arc::new(Stacks::new(shared.clone(), alerts.clone(), health.clone(), ops.clone()));
        let backups = Arc::new(Backups::new(shared.clone(), alerts.clone(), health.clone(), stacks.clone(), ops.clone()));
        let updates = Arc::new(Updates::new(shared.clone(), alerts.clone(), health.clone(), stacks.clone(), backups.clone(), ops));
        let checks = Arc::new(HostChecks::new(shared.clone(), alerts.clone()));
        App { shared, alerts, health, stacks, backups, updates, checks }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The services on the in-memory engine and a fresh state store in a temporary directory
    /// (removed when the returned guard is dropped), for services' and workers' own tests.
    pub(crate) fn app_with_fake_engine() -> (tempfile::TempDir, Arc<App>) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config { state_dir: dir.path().to_path_buf(), socket: dir.path().join("hafen.sock"), ..Config::default() };
        let store = Store::open(&cfg.store_path()).unwrap();
        (dir, Arc::new(App::new(cfg, store, Arc::new(hafen_engine::fake::FakeEngine::default()))))
    }
}
