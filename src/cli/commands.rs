//! The command line: clap definitions and the commands. `serve` runs the daemon; `stack check`,
//! `stack render` and `config check` work offline; everything else is a client of the daemon's
//! API. Human output follows the chosen language (`i18n`); `--json` prints the API's types.



use crate::client::Client;
use hafen_daemon::offline::{self, KitAccess, KitRepo};
use crate::output::{print_json, progress_spinner, spinning, word};
use hafen_api::*;
use hafen_daemon::catalogue;
use hafen_daemon::config::Config;
use clap::{Args, Parser, Subcommand};
use rust_i18n::t;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "hafen", version, about = "Deploys, reconciles and guards containerised stacks / Stellt Container-Stacks bereit, gleicht sie ab und bewacht sie")]
pub struct Cli {
    /// Config file (default: /etc/hafen/hafen.yaml when present, else built-in defaults)
    #[arg(long, global = true, env = "HAFEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// API socket of the daemon (default: from the config)
    #[arg(long, global = true, env = "HAFEN_SOCKET")]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the daemon
    Serve,
    /// Exit 0 when the daemon answers
    Healthcheck,
    /// Daemon, engine and stacks at a glance
    Status(JsonFlag),
    /// The daemon's configuration
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Stacks: check, list, show, deploy, remove, logs
    #[command(subcommand)]
    Stack(StackCmd),
    /// The event record
    Events(EventsArgs),
    /// Images built from Debian's packages (works without the daemon)
    #[command(subcommand)]
    Image(ImageCmd),
    /// Backups: run, list, check
    #[command(subcommand)]
    Backup(BackupCmd),
    /// Restore from a backup repository, without the daemon (works on a new machine with only
    /// the recovery identity)
    Restore(RestoreArgs),
    /// Backup keys: recovery identities and recipients (works without the daemon, as root)
    #[command(subcommand)]
    Keys(KeysCmd),
    /// The daemon's named workers (reconciler, prober, host checks, …) and their state
    #[command(subcommand)]
    Worker(WorkerCmd),
    /// Open alerts
    Alerts(JsonFlag),
    /// The hash-chained audit log: verify, export
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Notifications: send a test message to every configured channel
    #[command(subcommand)]
    Notify(NotifyCmd),
    /// Updates: check, plan, apply (backup first, rolled back by itself on failure), rollback,
    /// pin, unpin, list
    #[command(subcommand)]
    Update(crate::update::UpdateCmd),
}

#[derive(Subcommand, Debug)]
pub enum WorkerCmd {
    /// Every worker with its schedule, state, last run and detail
    List(JsonFlag),
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check the hash chain; exit 1 and name the first bad record when it was tampered with
    Verify(JsonFlag),
    /// Write the audit log as JSON lines (to a file, or to stdout)
    Export {
        /// Write here (refused if it exists) instead of stdout
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum NotifyCmd {
    /// Send a test message by e-mail and to every webhook now, and say what each answered
    Test(JsonFlag),
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Offline: the repository as the recovery kit names it — a path (the mounted backup disk,
    /// e.g. /mnt/backup/hafen), sftp:user@host:/path, sftp://user@host:port/path,
    /// s3:https://endpoint/bucket/prefix or rest:https://host/path/. Without it, the daemon
    /// restores the stack in place (stop, staging, swap, start, health check).
    #[arg(long)]
    pub repo: Option<String>,
    /// Offline: the recovery kit's text file, or a file with just the recovery identity
    /// (AGE-SECRET-KEY-1…)
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// Offline: the repository's wrapped key file (default: hafen-repo-key.age in a local
    /// repository, else the block for this location in the kit file given as --identity)
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Offline, SFTP: the SSH private key file
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// Offline, SFTP: known_hosts file with the server's host key
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Offline, S3 or REST: credentials file (S3: AWS_ACCESS_KEY_ID=… and AWS_SECRET_ACCESS_KEY=…
    /// lines; REST: user:password), mode 0600
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// Offline, S3: the region (default us-east-1)
    #[arg(long)]
    pub region: Option<String>,
    /// Through the daemon: the backup target to restore from (default: the first)
    #[arg(long)]
    pub target: Option<String>,
    /// List the snapshots and exit
    #[arg(long)]
    pub list: bool,
    /// Snapshot id (or prefix), or `latest`
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Instead of an id: the newest snapshot taken at or before this time (local time
    /// `2026-11-27 03:00`, a day `2026-11-27`, or RFC 3339)
    #[arg(long)]
    pub at: Option<String>,
    /// Only snapshots of this stack
    #[arg(long)]
    pub stack: Option<String>,
    /// Offline, on a new machine: bring back hafen's own state (configuration, keys, secrets,
    /// state store) and then every stack with its data
    #[arg(long, conflicts_with_all = ["stack", "path", "to", "list"])]
    pub all: bool,
    /// Only this path inside the snapshot (e.g. /dumps/tryton.sql or /volumes/data)
    #[arg(long, default_value = "")]
    pub path: String,
    /// Empty or new directory to restore into
    #[arg(long)]
    pub to: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum BackupCmd {
    /// Back up a deployed stack now (or, with --host, hafen's own state)
    Run {
        #[arg(required_unless_present = "host")]
        stack: Option<String>,
        /// hafen's own state: configuration, state store, keys, secrets, stack definitions
        #[arg(long, conflicts_with = "stack")]
        host: bool,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Snapshots in a target
    List {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Check a target's repository (structure; with --read-data every pack)
    Check {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        read_data: bool,
        #[arg(long)]
        json: bool,
    },
    /// Apply the retention policy to a target and remove unused data (refused on append-only
    /// targets)
    Prune {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write one snapshot of a stack as a single tar | zstd | age file for the recovery
    /// recipients (readable with age, zstd and tar alone; see docs/restore.md)
    Export {
        stack: String,
        /// The file to write (must not exist)
        #[arg(long)]
        out: PathBuf,
        /// Snapshot id (or prefix); default: the newest of the stack
        #[arg(long)]
        snapshot: Option<String>,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a recovery identity and print the recovery kit once
    Init {
        /// Name of this recovery identity (e.g. where the paper copy lives)
        #[arg(long, default_value = "recovery-1")]
        label: String,
        /// Also write the kit to this file (mode 0600), e.g. on a USB stick to print; a name
        /// ending in .pdf gets a printable A4 PDF with the QR code, any other name the text
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the recipients every repository key is encrypted to
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a recovery recipient (age1…) and re-wrap all repository keys
    Add { label: String, recipient: String },
    /// Remove a recovery recipient and re-wrap all repository keys
    Remove { label: String },
    /// Print the recovery kit's target pages again (locations, wrapped keys, commands; no
    /// identity), e.g. after adding a target
    Kit {
        /// Also write it to this file (mode 0600; .pdf: a printable A4 PDF)
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// Build recipes from the images directory (and the Debian bases they need); default: all
    Build { recipes: Vec<String> },
}

#[derive(Args, Debug)]
pub struct JsonFlag {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Validate a config file (default: the one serve would use)
    Check { path: Option<PathBuf> },
}

#[derive(Subcommand, Debug)]
pub enum StackCmd {
    /// Validate stack definitions offline (files or directories; default: the stacks directory)
    Check {
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print the container specs a stack would get, offline
    Render {
        id: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Stacks that can be deployed and their state
    List(JsonFlag),
    /// One stack in detail
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Deploy a stack or apply changed settings (one path for both)
    Deploy {
        id: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print the plan without changing anything
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for the health probes (0: do not wait)
        #[arg(long, default_value_t = 900)]
        wait: u64,
        #[arg(long)]
        json: bool,
    },
    /// Remove a stack; data volumes are kept unless --purge
    Remove {
        id: String,
        /// Also delete the data volumes and secrets (asks for confirmation)
        #[arg(long)]
        purge: bool,
        /// Confirm --purge non-interactively by repeating the stack id
        #[arg(long, value_name = "ID")]
        confirm: Option<String>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Logs of a stack's services
    Logs {
        id: String,
        service: Option<String>,
        #[arg(long, default_value_t = 100)]
        tail: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[arg(long, default_value_t = 0)]
    pub since: i64,
    #[arg(long)]
    pub stack: Option<String>,
    /// Keep printing new events
    #[arg(long)]
    pub follow: bool,
    #[arg(long)]
    pub json: bool,
}

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

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Config::load(path.map(|p| p.as_path())).map_err(|issues| {
        anyhow::anyhow!("{}\n{}", t!("config_invalid"), issues.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n"))
    })
}

pub(crate) fn client(cli: &Cli) -> anyhow::Result<Client> {
    let socket = match &cli.socket {
        Some(s) => s.clone(),
        None => load_config(cli.config.as_ref())?.socket,
    };
    Ok(Client::new(&socket))
}

fn parse_sets(sets: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    sets.iter()
        .map(|s| s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| anyhow::anyhow!("{}", t!("bad_set", arg = s))))
        .collect()
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
                print_status(&s);
            }
            Ok(if s.engine.reachable { 0 } else { 1 })
        }
        Cmd::Config(ConfigCmd::Check { path }) => {
            let cfg = load_config(path.as_ref().or(cli.config.as_ref()))?;
            println!("{}", t!("config_ok", source = cfg.source));
            Ok(0)
        }
        Cmd::Stack(sc) => stack(&cli, sc).await,
        Cmd::Events(a) => events(&cli, a).await,
        Cmd::Worker(WorkerCmd::List(j)) => worker_list(&cli, j.json).await,
        Cmd::Alerts(j) => alerts(&cli, j.json).await,
        Cmd::Audit(a) => audit(&cli, a).await,
        Cmd::Notify(NotifyCmd::Test(j)) => notify_test(&cli, j.json).await,
        Cmd::Keys(k) => keys(&cli, k),
        Cmd::Backup(b) => backup(&cli, b).await,
        Cmd::Update(u) => crate::update::run(client(&cli)?, u).await,
        Cmd::Restore(r) if r.repo.is_none() => restore_stack(&cli, r).await,
        Cmd::Restore(r) => restore(&cli, r).await,
        Cmd::Image(ImageCmd::Build { recipes }) => {
            let cfg = load_config(cli.config.as_ref())?;
            let progress = |line: &str| eprintln!("  {line}");
            hafen_daemon::offline::build_images(&cfg, recipes, &progress, &mut |r, tag, took| println!("{r}: {tag} ({}s)", took.as_secs())).await?;
            Ok(0)
        }
    }
}

fn print_status(s: &StatusResponse) {
    println!("hafen {}  —  {}: {}", s.version, t!("config_from"), s.config_source);
    let e = if s.engine.reachable { t!("reachable") } else { t!("unreachable") };
    println!("{}: {e} ({}, {} {})", t!("engine"), s.engine.detail, word("since"), s.engine.since);
    if let Some(lr) = &s.last_reconcile {
        println!("{}: {lr}", t!("last_reconcile"));
    }
    if let Some(err) = &s.last_reconcile_error {
        println!("{}: {err}", t!("reconcile_error"));
    }
    if !s.catalogue_issues.is_empty() {
        println!("{}", t!("catalogue_issues", count = s.catalogue_issues.len()));
    }
    println!();
    if s.stacks.is_empty() {
        println!("{}", t!("no_stacks"));
    } else {
        print_stacks(&s.stacks);
    }
    if !s.unmanaged.is_empty() {
        println!("{}", t!("unmanaged", list = s.unmanaged.join(", ")));
    }
}

fn print_stacks(stacks: &[StackSummary]) {
    println!("{:<14} {:<14} {:<15} {}", t!("col_stack"), t!("col_state"), t!("col_enabled"), t!("col_name"));
    for st in stacks {
        let en = if st.enabled { t!("yes") } else { t!("no") };
        println!("{:<14} {:<14} {:<15} {}", st.id, word(&st.state), en, st.name);
        for sv in st.services.iter().filter(|_| st.state != "not deployed") {
            let detail = sv.health_detail.as_deref().map(|d| format!(" — {d}")).unwrap_or_default();
            println!("  {:<12} {:<10} {:<9} {}{detail}", sv.service, word(&sv.health), word(&sv.status), sv.ports.join(" "));
        }
    }
}

/// A spinner with elapsed time on a terminal; one plain line otherwise.
/// Runs `f` with a spinner showing `msg` when `show` (a terminal user waiting for the daemon).


fn print_plan(plan: &hafen_daemon::reconcile::Plan, images: &[String]) {
    if !images.is_empty() {
        println!("{}", t!("images_header"));
        for i in images {
            println!("  {i}");
        }
    }
    if plan.is_empty() {
        println!("{}", t!("plan_empty", stack = plan.stack));
    } else {
        println!("{}", t!("plan_header", stack = plan.stack));
        for (i, a) in plan.actions.iter().enumerate() {
            println!("  {:>2}. {}", i + 1, hafen_core::describe::action_in(&rust_i18n::locale(), a));
        }
    }
}

async fn stack(cli: &Cli, sc: &StackCmd) -> anyhow::Result<i32> {
    match sc {
        StackCmd::Check { paths, json } => {
            let paths = if paths.is_empty() { vec![load_config(cli.config.as_ref())?.stacks_dir] } else { paths.clone() };
            let (ok, issues) = catalogue::check_paths(&paths);
            if *json {
                print_json(&serde_json::json!({"valid": ok.iter().map(|s| &s.id).collect::<Vec<_>>(), "issues": issues}));
            } else if issues.is_empty() {
                println!("{}", t!("check_ok", count = ok.len()));
            } else {
                eprintln!("{}", t!("check_failed", count = issues.len()));
                for i in &issues {
                    eprintln!("  {i}");
                }
            }
            Ok(if issues.is_empty() && !ok.is_empty() { 0 } else { 1 })
        }
        StackCmd::Render { id, set } => {
            let cfg = load_config(cli.config.as_ref())?;
            let specs = hafen_daemon::offline::render_stack(&cfg, id, &parse_sets(set)?)?;
            print_json(&specs);
            Ok(0)
        }
        StackCmd::List(f) => {
            let l: Vec<StackSummary> = client(cli)?.get("/v1/stacks").await?;
            if f.json {
                print_json(&l);
            } else {
                print_stacks(&l);
            }
            Ok(0)
        }
        StackCmd::Show { id, json } => {
            let d: StackDetail = client(cli)?.get(&format!("/v1/stacks/{id}")).await?;
            if *json {
                print_json(&d);
            } else {
                print_stacks(std::slice::from_ref(&d.summary));
                println!("\n{}\n{}", d.description, d.definition);
                for (k, v) in &d.settings {
                    println!("  {k} = {v}");
                }
                for v in &d.volumes {
                    println!("  volume {v}");
                }
            }
            Ok(0)
        }
        StackCmd::Deploy { id, set, dry_run, wait, json } => {
            let c = client(cli)?;
            let settings = parse_sets(set)?;
            // Show the plan first: the real call may take minutes when images must be built.
            let preview: DeployResponse = c.post(&format!("/v1/stacks/{id}/deploy"), &DeployRequest { settings: settings.clone(), dry_run: true }).await?;
            if *dry_run {
                if *json {
                    print_json(&preview);
                } else {
                    print_plan(&preview.plan, &preview.images);
                    println!("{}", t!("dry_run_note"));
                }
                return Ok(0);
            }
            if !*json {
                print_plan(&preview.plan, &preview.images);
            }
            let spinner = (!*json && !preview.images.is_empty()).then(|| progress_spinner(&t!("building_images")));
            let r: Result<DeployResponse, _> = c.post(&format!("/v1/stacks/{id}/deploy"), &DeployRequest { settings, dry_run: false }).await;
            if let Some(s) = spinner {
                s.finish_and_clear();
            }
            let r = r?;
            if *json && *wait == 0 {
                print_json(&r);
                return Ok(0);
            }
            if !*json && !r.plan.is_empty() {
                println!("{}", t!("applied_ok", count = r.applied.len(), stack = id));
            }
            if *wait == 0 {
                return Ok(0);
            }
            if !*json {
                println!("{}", t!("waiting", stack = id, secs = wait));
            }
            let deadline = Instant::now() + Duration::from_secs(*wait);
            let mut last = String::new();
            loop {
                let d: StackDetail = c.get(&format!("/v1/stacks/{id}")).await?;
                if d.summary.state == "healthy" {
                    if *json {
                        print_json(&serde_json::json!({"deploy": r, "state": d.summary}));
                    } else {
                        println!("{}", t!("healthy", stack = id));
                    }
                    return Ok(0);
                }
                let line = d.summary.services.iter().map(|s| format!("{}={}", s.service, word(&s.health))).collect::<Vec<_>>().join(" ");
                if line != last && !*json {
                    println!("  {line}");
                    last = line;
                }
                if Instant::now() > deadline {
                    eprintln!("{}", t!("not_healthy", stack = id, secs = wait, state = word(&d.summary.state)));
                    return Ok(1);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        StackCmd::Remove { id, purge, confirm, dry_run, json } => {
            let mut confirm = confirm.clone();
            if *purge && confirm.is_none() && !*dry_run {
                eprint!("{}", t!("purge_prompt", stack = id));
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                if line.trim() != id {
                    eprintln!("{}", t!("purge_aborted"));
                    return Ok(1);
                }
                confirm = Some(id.clone());
            }
            let req = RemoveRequest { purge: *purge, confirm, dry_run: *dry_run };
            let r: RemoveResponse = client(cli)?.post(&format!("/v1/stacks/{id}/remove"), &req).await?;
            if *json {
                print_json(&r);
            } else {
                print_plan(&r.plan, &[]);
                if *dry_run {
                    println!("{}", t!("dry_run_note"));
                } else {
                    println!("{}", t!("removed", stack = id));
                }
                if !r.kept_volumes.is_empty() {
                    println!("{}", t!("kept_volumes", list = r.kept_volumes.join(", ")));
                }
            }
            Ok(0)
        }
        StackCmd::Logs { id, service, tail, json } => {
            let mut path = format!("/v1/stacks/{id}/logs?tail={tail}");
            if let Some(s) = service {
                path.push_str(&format!("&service={s}"));
            }
            let r: LogsResponse = client(cli)?.get(&path).await?;
            if *json {
                print_json(&r);
            } else {
                for (svc, text) in &r.logs {
                    for line in text.lines() {
                        println!("{svc:>10} | {line}");
                    }
                }
            }
            Ok(0)
        }
    }
}



/// Offline restore with the recovery identity: list, restore a snapshot (or one path of it)
/// into an empty directory — nothing outside it is written — or, with `--all`, the whole box.
async fn restore(cli: &Cli, a: &RestoreArgs) -> anyhow::Result<i32> {
    let (Some(loc), Some(identity_file)) = (&a.repo, &a.identity) else {
        anyhow::bail!("{}", t!("restore_need_identity"));
    };
    let access = hafen_daemon::config::TargetAccess { ssh_key: a.ssh_key.clone(), known_hosts: a.known_hosts.clone(), credentials: a.credentials.clone(), region: a.region.clone() };
    let kit = KitAccess { repo: loc.clone(), identity_file: identity_file.clone(), key_file: a.key_file.clone(), access };
    let repo = offline::open_with_kit(&kit).await?;
    let at = match &a.at {
        Some(s) => Some(offline::parse_at(s).map_err(|e| anyhow::anyhow!("--at: {e}"))?),
        None => None,
    };
    if a.all {
        let repo = if a.json { repo } else { repo.with_progress() };
        let say = |line: String| eprintln!("{line}");
        let report = repo.restore_all(cli.config.as_deref(), at, &say).await?;
        let failed = report.stacks.iter().filter(|s| s.error.is_some()).count();
        if a.json {
            print_json(&report);
        } else {
            println!("{}", t!("recover_done", ok = report.stacks.len() - failed, failed = failed, state = &report.state_dir));
        }
        return Ok(if failed == 0 { 0 } else { 1 });
    }
    let tags: Vec<String> = a.stack.iter().map(|s| format!("stack:{s}")).collect();
    let snaps = repo.snapshots().await?;
    if a.list {
        let snaps: Vec<_> = snaps.into_iter().filter(|s| tags.iter().all(|t| s.tags.contains(t)) && at.is_none_or(|at| s.unix_time <= at)).collect();
        if a.json {
            print_json(&snaps);
        } else {
            for s in &snaps {
                println!("{}  {:<25} {:<12} {}", &s.id[..8.min(s.id.len())], s.time, s.label, s.paths.join(" "));
            }
        }
        return Ok(0);
    }
    let Some(to) = a.to.clone() else {
        anyhow::bail!("{}", t!("restore_need_to"));
    };
    if to.exists() && std::fs::read_dir(&to)?.next().is_some() {
        anyhow::bail!("{}", t!("restore_not_empty", path = to.display()));
    }
    let Some(chosen) = KitRepo::pick(&snaps, &tags, &a.snapshot, at) else {
        anyhow::bail!("{}", t!("restore_no_match", snapshot = a.at.as_deref().unwrap_or(&a.snapshot), stack = a.stack.as_deref().unwrap_or("*")));
    };
    if !a.json {
        eprintln!("{}", t!("restoring_snapshot", id = &chosen.id[..8.min(chosen.id.len())], time = &chosen.time, path = to.display()));
    }
    let repo = if a.json { repo } else { repo.with_progress() };
    let snap = repo.restore(&chosen.id, &tags, &a.path, &to).await?;
    if a.json {
        print_json(&snap);
    } else {
        println!("{}", t!("restored", id = &snap.id[..8.min(snap.id.len())], path = to.display()));
    }
    Ok(0)
}

/// Restores a deployed stack in place through the daemon.
async fn restore_stack(cli: &Cli, a: &RestoreArgs) -> anyhow::Result<i32> {
    let Some(stack) = &a.stack else {
        anyhow::bail!("{}", t!("restore_need_stack"));
    };
    let snapshot = (a.snapshot != "latest").then(|| a.snapshot.clone());
    let spinner = (!a.json).then(|| progress_spinner(&t!("restoring", path = stack)));
    let r: Result<hafen_daemon::backup::RunReport, _> =
        client(cli)?.post("/v1/restore", &RestoreRequest { stack: stack.clone(), snapshot, at: a.at.clone(), target: a.target.clone() }).await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let r = r?;
    if a.json {
        print_json(&r);
    } else {
        for s in &r.steps {
            println!("  {} {:<16} {:>6.1}s  {}", if s.ok { "✓" } else { "✗" }, s.step, s.seconds, s.detail);
        }
        match &r.error {
            None => println!("{}", t!("restore_stack_ok", stack = stack)),
            Some(e) => eprintln!("{}", t!("restore_stack_failed", stack = stack, error = e)),
        }
    }
    Ok(if r.error.is_none() { 0 } else { 1 })
}

async fn backup(cli: &Cli, b: &BackupCmd) -> anyhow::Result<i32> {
    let c = client(cli)?;
    match b {
        BackupCmd::Run { stack, host, target, json } => {
            let stack = if *host { hafen_daemon::backup::HOST_TAG.to_string() } else { stack.clone().unwrap_or_default() };
            let req = BackupRunRequest { stack: if *host { String::new() } else { stack.clone() }, target: target.clone(), host: *host };
            let r: hafen_daemon::backup::RunReport = spinning(!*json, &t!("backup_running", stack = stack), c.post("/v1/backups/run", &req)).await?;
            if *json {
                print_json(&r);
            } else {
                for s in &r.steps {
                    println!("  {} {:<14} {:>6.1}s  {}", if s.ok { "✓" } else { "✗" }, s.step, s.seconds, s.detail);
                }
                match (&r.snapshot, &r.error) {
                    (Some(snap), None) => println!("{}", t!("backup_ok", stack = stack, target = r.target, id = &snap.id[..8.min(snap.id.len())], secs = format!("{:.1}", r.quiesced_seconds))),
                    (_, Some(e)) => eprintln!("{}", t!("backup_failed", stack = stack, error = e)),
                    _ => {}
                }
            }
            Ok(if r.error.is_none() { 0 } else { 1 })
        }
        BackupCmd::List { target, json } => {
            let path = match target {
                Some(t) => format!("/v1/backups?target={t}"),
                None => "/v1/backups".into(),
            };
            let l: Vec<hafen_api::SnapInfo> = c.get(&path).await?;
            if *json {
                print_json(&l);
            } else {
                for s in &l {
                    println!("{}  {:<25} {:<12} {:>10} B  {}", &s.id[..8.min(s.id.len())], s.time, s.label, s.bytes, s.tags.join(","));
                }
            }
            Ok(0)
        }
        BackupCmd::Prune { target, json } => {
            let r: BackupPruneResponse = spinning(!*json, &t!("prune_running"), c.post("/v1/backups/prune", &BackupPruneRequest { target: target.clone() })).await?;
            if *json {
                print_json(&r);
            } else {
                if let Some(why) = &r.skipped {
                    eprintln!("{why}");
                }
                println!("{}", t!("prune_ok", target = r.target, kept = r.kept.len(), forgotten = r.forgotten.len()));
            }
            Ok(0)
        }
        BackupCmd::Export { stack, out, snapshot, target, json } => {
            let out = if out.is_absolute() { out.clone() } else { std::env::current_dir()?.join(out) };
            let req = BackupExportRequest { stack: stack.clone(), snapshot: snapshot.clone(), target: target.clone(), out: out.display().to_string() };
            let r: hafen_api::ExportReport = spinning(!*json, &t!("export_running", stack = stack, path = out.display()), c.post("/v1/backups/export", &req)).await?;
            if *json {
                print_json(&r);
            } else {
                println!("{}", t!("export_ok", path = r.file, size = offline::human_bytes(r.bytes), sha = r.sha256, id = &r.snapshot.id[..8.min(r.snapshot.id.len())]));
                println!("{}", t!("export_howto", path = r.file));
            }
            Ok(0)
        }
        BackupCmd::Check { target, read_data, json } => {
            let r: BackupCheckResponse = c.post("/v1/backups/check", &BackupCheckRequest { target: target.clone(), read_data: *read_data }).await?;
            if *json {
                print_json(&r);
            } else if r.problems.is_empty() {
                println!("{}", t!("check_repo_ok", target = r.target));
            } else {
                for p in &r.problems {
                    eprintln!("  {p}");
                }
            }
            Ok(if r.problems.is_empty() { 0 } else { 1 })
        }
    }
}

fn keys(cli: &Cli, k: &KeysCmd) -> anyhow::Result<i32> {
    let cfg = load_config(cli.config.as_ref())?;
    // `--out kit.pdf` writes the printable A4 PDF, any other name the text; never over a file.
    let write = |path: &PathBuf, kit: &offline::KitPages| -> anyhow::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let pdf = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf"));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        f.write_all(if pdf { &kit.pdf } else { kit.text.as_bytes() })?;
        println!("{}", t!("kit_written", path = path.display()));
        Ok(())
    };
    match k {
        KeysCmd::Init { label, out } => {
            let kit = offline::keys_init(&cfg, label)?;
            println!("{}", kit.screen);
            if let Some(path) = out {
                write(path, &kit)?;
            }
            println!("{}", t!("kit_once", count = kit.rewrapped));
            Ok(0)
        }
        KeysCmd::List { json } => {
            let list = offline::keys_list(&cfg)?;
            if *json {
                print_json(&list);
            } else {
                for r in &list {
                    println!("{:<8} {:<16} {}", r.role, r.label, r.recipient);
                }
            }
            Ok(0)
        }
        KeysCmd::Add { label, recipient } => {
            println!("{}", t!("keys_rewrapped", count = offline::keys_add(&cfg, label, recipient)?));
            Ok(0)
        }
        KeysCmd::Remove { label } => {
            println!("{}", t!("keys_rewrapped", count = offline::keys_remove(&cfg, label)?));
            Ok(0)
        }
        KeysCmd::Kit { out } => {
            let kit = offline::keys_kit(&cfg)?;
            println!("{}", kit.screen);
            if let Some(path) = out {
                write(path, &kit)?;
            }
            Ok(0)
        }
    }
}


async fn events(cli: &Cli, a: &EventsArgs) -> anyhow::Result<i32> {
    let c = client(cli)?;
    let mut since = a.since;
    loop {
        let mut path = format!("/v1/events?since={since}");
        if let Some(s) = &a.stack {
            path.push_str(&format!("&stack={s}"));
        }
        if a.follow {
            path.push_str("&wait=25");
        }
        let ev: Vec<hafen_api::EventRecord> = c.get(&path).await?;
        let lang = rust_i18n::locale();
        for e in &ev {
            if a.json {
                println!("{}", serde_json::to_string(e).unwrap_or_default());
            } else {
                // The line in the reader's language, from the event itself; the stored line
                // when this build cannot read it.
                let line = hafen_core::events::render_detail(&lang, &e.detail).unwrap_or_else(|| e.message.clone());
                println!("{} {:<22} {:<16} {}", e.ts, e.kind, e.actor, line);
            }
            since = e.seq;
        }
        if !a.follow {
            return Ok(0);
        }
    }
}

async fn worker_list(cli: &Cli, json: bool) -> anyhow::Result<i32> {
    let w: Vec<hafen_api::WorkerInfo> = client(cli)?.get("/v1/workers").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&w)?);
        return Ok(0);
    }
    println!("{:<18} {:<9} {:<24} {:<26} {}", t!("col_worker"), t!("col_state"), t!("col_last_run"), t!("col_every"), t!("col_detail"));
    for i in &w {
        println!("{:<18} {:<9} {:<24} {:<26} {}", i.name, word(&i.state), i.last_run.as_deref().unwrap_or("-"), i.every, i.detail);
    }
    Ok(0)
}

async fn alerts(cli: &Cli, json: bool) -> anyhow::Result<i32> {
    let a: Vec<hafen_api::AlertRecord> = client(cli)?.get("/v1/alerts").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&a)?);
        return Ok(0);
    }
    if a.is_empty() {
        println!("{}", t!("no_alerts"));
    }
    for x in &a {
        let lang = hafen_core::i18n::choose();
        let n = hafen_daemon::notify::Notice {
            kind: hafen_daemon::notify::NoticeKind::Problem,
            severity: hafen_daemon::notify::Severity::parse(&x.severity),
            key: x.key.clone(),
            code: x.code.clone(),
            stack: x.stack.clone(),
            args: x.args.clone(),
            since: x.since.clone(),
            tried: x.tried.clone(),
            host: String::new(),
        };
        println!("{} [{}] {}", x.since, x.severity, hafen_daemon::notify::render(&n, lang).subject);
    }
    Ok(0)
}

async fn audit(cli: &Cli, a: &AuditCmd) -> anyhow::Result<i32> {
    let c = client(cli)?;
    match a {
        AuditCmd::Verify(j) => {
            let r: hafen_api::AuditVerifyResponse = c.get("/v1/audit/verify").await?;
            if j.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if r.ok {
                println!("{}", t!("audit_ok", count = r.records));
            } else {
                eprintln!("{}", t!("audit_broken", seq = r.broken_at.unwrap_or(0), reason = r.reason.clone().unwrap_or_default()));
            }
            Ok(if r.ok { 0 } else { 1 })
        }
        AuditCmd::Export { out } => {
            let records: Vec<hafen_api::AuditRecord> = c.get("/v1/audit").await?;
            let mut text = String::new();
            for r in &records {
                text.push_str(&serde_json::to_string(r)?);
                text.push('\n');
            }
            match out {
                None => print!("{text}"),
                Some(p) => {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(p).map_err(|e| anyhow::anyhow!("{}", t!("file_exists", path = p.display(), e = e)))?;
                    f.write_all(text.as_bytes())?;
                    f.sync_all()?;
                    eprintln!("{}", t!("audit_exported", count = records.len(), path = p.display()));
                }
            }
            Ok(0)
        }
    }
}

async fn notify_test(cli: &Cli, json: bool) -> anyhow::Result<i32> {
    let r: Vec<hafen_api::NotifyTestResult> = client(cli)?.post("/v1/notify/test", &serde_json::json!({})).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else if r.is_empty() {
        println!("{}", t!("notify_none"));
    }
    if !json {
        for x in &r {
            match &x.error {
                None => println!("{}", t!("notify_sent", channel = x.channel)),
                Some(e) => println!("{}", t!("notify_failed", channel = x.channel, e = e)),
            }
        }
    }
    Ok(if !r.is_empty() && r.iter().all(|x| x.ok) { 0 } else { 1 })
}
