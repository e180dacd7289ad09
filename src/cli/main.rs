//! Thin entry point: parse arguments, set up logging and language, dispatch, map to an exit code.
//! The CLI is a front end: it parses, calls the daemon's API (`client`) or an offline operation
//! of the daemon's services, and prints (`commands`, `update`).

rust_i18n::i18n!("../../locales", fallback = "en");

mod args;
mod backup;
mod client;
mod commands;
mod context;
mod monitor;
mod output;
mod stack;
mod update;

fn main() {
    // glibc gives every thread that allocates its own malloc arena (up to 8 per core), and an
    // arena keeps what was freed in it: a restore's 20 reader threads held 480–550 MB at their
    // peak that way, 320–330 MB with four arenas at the same speed (bench/backup.sh).
    // SAFETY: mallopt before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
    let cli = args::parse();
    if !matches!(cli.cmd, args::Cmd::Serve) {
        // A CLI piped into `head` ends quietly, as other Unix tools do.
        // SAFETY: resetting a signal disposition before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    hafen_core::i18n::init();
    let json_logs = matches!(cli.cmd, args::Cmd::Serve)
        && hafen_daemon::config::Config::load(cli.config.as_deref()).map(|c| c.log_format == hafen_daemon::config::LogFormat::Json).unwrap_or(false);
    // The daemon logs what it does; a command at a person's terminal shows only its own output
    // (and warnings), unless `--verbose` asks for the libraries' lines too. HAFEN_LOG wins.
    let serve = matches!(cli.cmd, args::Cmd::Serve);
    // The repository library's own error lines (many lines each, with a backtrace) are not for
    // a person's terminal: hafen names what they found in one line of its own.
    let default = if serve || cli.verbose { "info" } else { "warn,rustic_core=off,rustic_backend=off" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HAFEN_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json_logs {
        builder.json().init();
    } else {
        builder.init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let code = rt.block_on(commands::run(cli));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}
