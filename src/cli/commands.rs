//! The dispatch: each command to its family (`stack`, `backup`, `monitor`, `update`) or to the
//! daemon itself (`serve`). `serve` runs the daemon; `stack check`, `stack render`, `config
//! check`, `image build`, `keys …` and `restore --repo` work offline; everything else is a
//! client of the daemon's API. Human output follows the chosen language; `--json` prints the
//! API's types.

use crate::args::{Cli, Cmd, ConfigCmd, ImageCmd, NotifyCmd, WorkerCmd};
use crate::context::{client, load_config};
use crate::output::print_json;
use hafen_api::*;
use rust_i18n::t;

/// Exit codes: 0 ok, 1 failure, 2 bad input (clap), 3 daemon unreachable.
pub async fn run(cli: Cli) -> i32 {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            let code = if matches!(e.downcast_ref::<crate::client::ClientError>(), Some(crate::client::ClientError::Unreachable { .. })) { 3 } else { 1 };
            eprintln!("{}: {e:#}", t!("error"));
            code
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match &cli.cmd {
        Cmd::Serve => {
            let cfg = load_config(cli.config.as_ref())?;
            let mut cfg = cfg;
            if let Some(s) = &cli.socket {
                cfg.socket = s.clone();
            }
            hafen_daemon::serve::serve(cfg).await?;
            Ok(0)
        }
        Cmd::Healthcheck => {
            let h: HealthResponse = client(&cli)?.get("/v1/health").await?;
            println!("{}", t!("daemon_ok", version = h.version));
            Ok(0)
        }
        Cmd::Status(f) => {
            let s: StatusResponse = client(&cli)?.get("/v1/status").await?;
            if f.json {
                print_json(&s);
            } else {
                crate::stack::print_status(&s);
            }
            Ok(if s.engine.reachable { 0 } else { 1 })
        }
        Cmd::Config(ConfigCmd::Check { path }) => {
            let cfg = load_config(path.as_ref().or(cli.config.as_ref()))?;
            println!("{}", t!("config_ok", source = cfg.source));
            Ok(0)
        }
        Cmd::Stack(sc) => crate::stack::stack(&cli, sc).await,
        Cmd::Events(a) => crate::monitor::events(&cli, a).await,
        Cmd::Worker(WorkerCmd::List(j)) => crate::monitor::worker_list(&cli, j.json).await,
        Cmd::Alerts(j) => crate::monitor::alerts(&cli, j.json).await,
        Cmd::Audit(a) => crate::monitor::audit(&cli, a).await,
        Cmd::Notify(NotifyCmd::Test(j)) => crate::monitor::notify_test(&cli, j.json).await,
        Cmd::Keys(k) => crate::backup::keys(&cli, k),
        Cmd::Backup(b) => crate::backup::backup(&cli, b).await,
        Cmd::Update(u) => crate::update::run(client(&cli)?, u).await,
        Cmd::Restore(r) if r.repo.is_none() => crate::backup::restore_stack(&cli, r).await,
        Cmd::Restore(r) => crate::backup::restore(&cli, r).await,
        Cmd::Image(ImageCmd::Build { recipes }) => {
            let cfg = load_config(cli.config.as_ref())?;
            let progress = |line: &str| eprintln!("  {line}");
            hafen_daemon::offline::build_images(&cfg, recipes, &progress, &mut |r, tag, took| println!("{r}: {tag} ({}s)", took.as_secs())).await?;
            Ok(0)
        }
    }
}
