//! What every command family needs first: the configuration (offline commands) or a client of
//! the daemon's socket (everything else), and `--set KEY=VALUE` parsing.

use crate::args::Cli;
use crate::client::Client;
use hafen_daemon::config::Config;
use rust_i18n::t;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Config::load(path.map(|p| p.as_path())).map_err(|issues| {
        anyhow::anyhow!("{}\n{}", t!("config_invalid"), issues.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n"))
    })
}

pub fn client(cli: &Cli) -> anyhow::Result<Client> {
    let socket = match &cli.socket {
        Some(s) => s.clone(),
        None => load_config(cli.config.as_ref())?.socket,
    };
    Ok(Client::new(&socket))
}

pub fn parse_sets(sets: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    sets.iter()
        .map(|s| s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| anyhow::anyhow!("{}", t!("bad_set", arg = s))))
        .collect()
}
