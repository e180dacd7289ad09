//! The command line's shape: every command, subcommand and flag (clap derive), in one place so
//! the command families and the dispatch read them without importing each other.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "hafen", version, about = "Deploys, reconciles and guards containerised stacks / Stellt Container-Stacks bereit, gleicht sie ab und bewacht sie")]
pub struct Cli {
    /// Config file (default: /etc/hafen/hafen.yaml when present, else built-in defaults)
    #[arg(long, global = true, env = "HAFEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// API socket of the daemon (default: from the config)
    #[arg(long, global = true, env = "HAFEN_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Also show the log lines of hafen's libraries (repository work, engine calls) on stderr
    #[arg(long, short, global = true)]
    pub verbose: bool,
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
    Update(UpdateCmd),
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

#[derive(Subcommand, Debug)]
pub enum UpdateCmd {
    /// Ask the registries what is new for each deployed stack (or one), with the path hafen
    /// would take
    Check {
        stack: Option<String>,
        /// Also rebuild the images built from Debian's packages in a throwaway build now and
        /// compare their packages (takes minutes)
        #[arg(long)]
        rebuild: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show every hop and step of an update before doing anything
    Plan {
        stack: String,
        /// Target version (default: the newest the stack's channel and pin allow)
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Update now: per hop a backup first, then pull, stop, migrate, start, probes; rolled back
    /// by itself on any failure
    Apply {
        stack: String,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Take back the last committed update: the previous images and the data of its pre-update
    /// backup (changes made since are lost)
    Rollback {
        stack: String,
        /// Do not ask
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Never update the stack beyond this version
    Pin { stack: String, version: String },
    /// Remove the stack's version pin
    Unpin { stack: String },
    /// Past and running updates (newest first)
    List {
        stack: Option<String>,
        #[arg(long)]
        json: bool,
    },
}
