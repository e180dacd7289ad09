//! The command line's shape: every command, subcommand and flag (clap derive), in one place so
//! the command families and the dispatch read them without importing each other.
//!
//! What a person reads about them lives in `locales/help.yml`, in German and English (its head
//! names the keys; a unit test below fails for a command or argument without them): [`parse`]
//! puts the chosen language's texts into clap's command tree, and clap's own words (headings,
//! `--help`, parse errors) with them.

use clap::builder::Styles;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Args, Command, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "hafen", version)]
pub struct Cli {
    #[arg(long, global = true, env = "HAFEN_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, global = true, env = "HAFEN_SOCKET")]
    pub socket: Option<PathBuf>,
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    Serve,
    Healthcheck,
    Status(JsonFlag),
    #[command(subcommand)]
    Config(ConfigCmd),
    #[command(subcommand)]
    Stack(StackCmd),
    Events(EventsArgs),
    #[command(subcommand)]
    Image(ImageCmd),
    #[command(subcommand)]
    Backup(BackupCmd),
    Restore(RestoreArgs),
    #[command(subcommand)]
    Keys(KeysCmd),
    #[command(subcommand)]
    Worker(WorkerCmd),
    Alerts(JsonFlag),
    #[command(subcommand)]
    Audit(AuditCmd),
    #[command(subcommand)]
    Notify(NotifyCmd),
    #[command(subcommand)]
    Update(UpdateCmd),
}

#[derive(Subcommand, Debug)]
pub enum WorkerCmd {
    List(JsonFlag),
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    Verify(JsonFlag),
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum NotifyCmd {
    Test(JsonFlag),
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[arg(long)]
    pub repo: Option<String>,
    #[arg(long)]
    pub identity: Option<PathBuf>,
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long)]
    pub list: bool,
    #[arg(long, conflicts_with_all = ["list", "all", "to", "path"])]
    pub check: bool,
    #[arg(long, requires = "check")]
    pub read_data: bool,
    #[arg(long, conflicts_with_all = ["list", "all", "to", "path", "check"])]
    pub repair: bool,
    #[arg(long, requires = "repair")]
    pub apply: bool,
    #[arg(default_value = "latest")]
    pub snapshot: String,
    #[arg(long)]
    pub at: Option<String>,
    #[arg(long)]
    pub stack: Option<String>,
    #[arg(long, conflicts_with_all = ["stack", "path", "to", "list"])]
    pub all: bool,
    #[arg(long, default_value = "")]
    pub path: String,
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum BackupCmd {
    Run {
        #[arg(required_unless_present = "host")]
        stack: Option<String>,
        #[arg(long, conflicts_with = "stack")]
        host: bool,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Check {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        read_data: bool,
        #[arg(long)]
        json: bool,
    },
    Repair {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        apply: bool,
        #[arg(long)]
        json: bool,
    },
    Prune {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Export {
        stack: String,
        #[arg(long)]
        out: PathBuf,
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
    Init {
        #[arg(long, default_value = "recovery-1")]
        label: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Add { label: String, recipient: String },
    Remove { label: String },
    Kit {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    Build { recipes: Vec<String> },
}

#[derive(Args, Debug)]
pub struct JsonFlag {
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    Check { path: Option<PathBuf> },
}

#[derive(Subcommand, Debug)]
pub enum StackCmd {
    Check {
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    Render {
        id: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    List(JsonFlag),
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    Deploy {
        id: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value_t = 900)]
        wait: u64,
        #[arg(long)]
        json: bool,
    },
    Remove {
        id: String,
        #[arg(long)]
        purge: bool,
        #[arg(long, value_name = "ID")]
        confirm: Option<String>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
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
    #[arg(long)]
    pub follow: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum UpdateCmd {
    Check {
        stack: Option<String>,
        #[arg(long)]
        rebuild: bool,
        #[arg(long)]
        json: bool,
    },
    Plan {
        stack: String,
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Apply {
        stack: String,
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Rollback {
        stack: String,
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    Pin { stack: String, version: String },
    Unpin { stack: String },
    List {
        stack: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

// The help in the reader's language. clap takes its texts from the derive above (none: they live
// in locales/help.yml) and has its own words only in English; this puts both in.

/// Parses the process's arguments into [`Cli`], with help, usage and parse errors in the chosen
/// language (`hafen_core::i18n::choose`). Exits as clap does: 0 after `--help` and `--version`,
/// 2 on a usage error.
pub fn parse() -> Cli {
    let lang = hafen_core::i18n::choose();
    let mut cmd = command(lang);
    let matches = match cmd.try_get_matches_from_mut(std::env::args_os()) {
        Ok(m) => m,
        Err(e) => exit_on(e, &cmd, lang),
    };
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let e = e.format(&mut cmd);
            exit_on(e, &cmd, lang)
        }
    }
}

/// The whole command tree with every text in `lang`, built (clap's `help` subcommands and the
/// global options propagated).
pub fn command(lang: &str) -> Command {
    let version = Arg::new("version").short('V').long("version").action(ArgAction::Version).help(word(lang, "version")).display_order(BUILT_IN);
    let mut cmd = localise(Cli::command(), "", lang).disable_version_flag(true).arg(version);
    cmd.build();
    finish(&mut cmd, lang);
    cmd
}

/// The display order clap gives its own `--help` and `--version`: after every other option.
const BUILT_IN: usize = 999;

fn text(lang: &str, key: &str) -> Option<String> {
    crate::_rust_i18n_try_translate(lang, key).map(|t| t.into_owned())
}

/// One of clap's own words (`clap.<key>`) in `lang`, its `%{…}` filled from `args`.
fn word_with(lang: &str, key: &str, args: &[(&str, &str)]) -> String {
    let template = text(lang, &format!("clap.{key}")).unwrap_or_else(|| key.to_string());
    hafen_core::i18n::fill(&template, &args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>())
}

fn word(lang: &str, key: &str) -> String {
    word_with(lang, key, &[])
}

/// The catalogue key of a command's about: `help.cmd`, `help.cmd.stack.deploy`.
fn command_key(path: &str) -> String {
    if path.is_empty() {
        "help.cmd".into()
    } else {
        format!("help.cmd.{path}")
    }
}

/// The catalogue key of an argument's help: `help.arg.<path>.<id>`, else the one all arguments
/// of that id share (`help.shared.<id>`); `None` when neither exists.
fn arg_key(path: &str, id: &str) -> Option<String> {
    let own = if path.is_empty() { format!("help.arg.{id}") } else { format!("help.arg.{path}.{id}") };
    [own, format!("help.shared.{id}")].into_iter().find(|k| text("en", k).is_some())
}

/// A value name (`TARGET`) in `lang`; as it is where German says it the same way (`STACK`).
fn value_name(lang: &str, name: &str) -> String {
    text(lang, &format!("help.value.{name}")).unwrap_or_else(|| name.to_string())
}

/// clap takes names as `&'static str` (without its `string` feature); the few a process makes
/// are kept for its life.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn subpath(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Before the build: the about of `cmd` and its subcommands, the help of their arguments, and a
/// `--help` flag of our own in `lang` instead of clap's English one.
fn localise(mut cmd: Command, path: &str, lang: &str) -> Command {
    if let Some(about) = text(lang, &command_key(path)) {
        cmd = cmd.about(about).long_about(None);
    }
    cmd = cmd.mut_args(|a| localise_arg(a, path, lang));
    cmd = cmd.mut_subcommands(|sub| {
        let p = subpath(path, sub.get_name());
        localise(sub, &p, lang)
    });
    let help = Arg::new("help").short('h').long("help").action(ArgAction::Help).help(word(lang, "help")).display_order(BUILT_IN);
    cmd.disable_help_flag(true).arg(help)
}

fn localise_arg(mut a: Arg, path: &str, lang: &str) -> Arg {
    let mut help = arg_key(path, a.get_id().as_str()).and_then(|k| text(lang, &k)).unwrap_or_default();
    if let Some(names) = a.get_value_names().filter(|_| a.get_action().takes_values()) {
        let names: Vec<&'static str> = names.iter().map(|n| value_name(lang, n.as_str())).map(leak).collect();
        a = a.value_names(names);
    }
    // clap appends `[env: …]` and `[default: …]` in English; these say the same in `lang`.
    if let Some(var) = a.get_env().map(|v| v.to_string_lossy().into_owned()) {
        let value = std::env::var(&var).map(|v| format!("={v}")).unwrap_or_default();
        help.push_str(&format!(" [{}: {var}{value}]", word(lang, "env")));
        a = a.hide_env(true);
    }
    if a.get_action().takes_values() && !a.get_default_values().is_empty() {
        let values: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy())
            .map(|v| if v.is_empty() || v.contains(char::is_whitespace) { format!("{v:?}") } else { v.into_owned() })
            .collect();
        help.push_str(&format!(" [{}: {}]", word(lang, "default"), values.join(" ")));
        a = a.hide_default_value(true);
    }
    let help = help.trim_start().to_string();
    if help.is_empty() {
        a
    } else {
        a.help(help)
    }
}

/// After the build (which adds clap's `help` subcommands and copies the global options down):
/// headings, placeholders and the `help` subcommand's about in `lang`, for `cmd` and below.
fn finish(cmd: &mut Command, lang: &str) {
    let template = help_template(cmd, lang);
    *cmd = std::mem::take(cmd).subcommand_value_name(leak(word(lang, "command_placeholder"))).help_template(template);
    // clap's usage line has `[OPTIONS]` in it; where `lang` says it otherwise, it is given whole.
    let rendered = cmd.render_usage().ansi().to_string();
    if let Some((_, after)) = rendered.split_once("Usage:") {
        let reset = cmd.get_styles().get_usage().render_reset().to_string();
        let usage = after.strip_prefix(reset.as_str()).unwrap_or(after).trim_start();
        let translated = usage.replace("[OPTIONS]", &format!("[{}]", word(lang, "options_placeholder")));
        if translated != usage {
            *cmd = std::mem::take(cmd).override_usage(translated);
        }
    }
    for sub in cmd.get_subcommands_mut() {
        if sub.get_name() == "help" {
            // clap's own (the unit tests make sure no command of ours is called so)
            *sub = std::mem::take(sub).about(word(lang, "help_command"));
        }
        finish(sub, lang);
    }
}

/// clap's default layout, with the headings in `lang`.
fn help_template(cmd: &Command, lang: &str) -> String {
    let styles = cmd.get_styles();
    let (usage, header) = (styles.get_usage(), styles.get_header());
    let mut t = format!("{{before-help}}{{about-with-newline}}\n{usage}{}:{usage:#} {{usage}}", word(lang, "usage"));
    let sections = [
        (cmd.get_subcommands().any(|s| !s.is_hide_set()), "commands", "{subcommands}"),
        (cmd.get_positionals().any(|a| !a.is_hide_set()), "arguments", "{positionals}"),
        (cmd.get_arguments().any(|a| !a.is_positional() && !a.is_hide_set()), "options", "{options}"),
    ];
    for (_, heading, tag) in sections.into_iter().filter(|s| s.0) {
        t.push_str(&format!("\n\n{header}{}:{header:#}\n{tag}", word(lang, heading)));
    }
    t.push_str("{after-help}");
    t
}

/// Ends the process for a parse result that is not a command line to run: help and version as
/// clap prints them (in `lang`, through the templates), a usage error in `lang`, exit code 2.
fn exit_on(e: clap::Error, cmd: &Command, lang: &str) -> ! {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        e.exit()
    }
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    match render_error(&e, lang, cmd.get_styles(), color) {
        Some(message) => {
            eprint!("{message}");
            std::process::exit(2)
        }
        None => e.exit(),
    }
}

/// A parse error as clap words it, in `lang`: the message, tips, the usage line and the hint to
/// `--help`. `None` for a kind this does not know, in English (clap's own rendering is shown
/// then); in another language such a kind gets a general message.
fn render_error(e: &clap::Error, lang: &str, styles: &Styles, color: bool) -> Option<String> {
    let one = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let many = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    };
    let number = |kind| match e.get(kind) {
        Some(ContextValue::Number(n)) => n.to_string(),
        _ => "?".into(),
    };
    let quoted = |v: &[String]| v.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    let arg = one(ContextKind::InvalidArg).unwrap_or_default();
    let value = one(ContextKind::InvalidValue).unwrap_or_default();
    let list = |heading: &str, values: Vec<String>| if values.is_empty() { String::new() } else { format!("\n  [{}: {}]", word(lang, heading), values.join(", ")) };
    let message = match e.kind() {
        ErrorKind::UnknownArgument => word_with(lang, "err.unknown_argument", &[("arg", &arg)]),
        ErrorKind::InvalidSubcommand => word_with(lang, "err.invalid_subcommand", &[("name", &one(ContextKind::InvalidSubcommand).unwrap_or_default())]),
        ErrorKind::InvalidValue if value.is_empty() => word_with(lang, "err.empty_value", &[("arg", &arg)]) + &list("err.possible_values", many(ContextKind::ValidValue)),
        ErrorKind::InvalidValue => word_with(lang, "err.invalid_value", &[("value", &value), ("arg", &arg)]) + &list("err.possible_values", many(ContextKind::ValidValue)),
        ErrorKind::ValueValidation => {
            let m = word_with(lang, "err.invalid_value", &[("value", &value), ("arg", &arg)]);
            match validation_reason(e, lang) {
                Some(why) => format!("{m}: {why}"),
                None => m,
            }
        }
        ErrorKind::MissingRequiredArgument => {
            let args: Vec<String> = many(ContextKind::InvalidArg).iter().map(|a| format!("\n  {a}")).collect();
            word(lang, "err.missing_required") + &args.concat()
        }
        ErrorKind::MissingSubcommand => {
            word_with(lang, "err.missing_subcommand", &[("name", &one(ContextKind::InvalidSubcommand).unwrap_or_default())])
                + &list("err.subcommands", many(ContextKind::ValidSubcommand))
        }
        ErrorKind::ArgumentConflict => {
            let prior = many(ContextKind::PriorArg);
            let other = if prior.is_empty() { word(lang, "err.conflict_one_or_more") } else { quoted(&prior) };
            match one(ContextKind::InvalidSubcommand) {
                Some(name) if arg.is_empty() => word_with(lang, "err.conflict_subcommand", &[("name", &name), ("other", &other)]),
                _ if prior == [arg.clone()] => word_with(lang, "err.used_twice", &[("arg", &arg)]),
                _ => word_with(lang, "err.conflict", &[("arg", &arg), ("other", &other)]),
            }
        }
        ErrorKind::TooManyValues => word_with(lang, "err.too_many_values", &[("value", &value), ("arg", &arg)]),
        ErrorKind::TooFewValues => {
            word_with(lang, "err.too_few_values", &[("min", &number(ContextKind::MinValues)), ("actual", &number(ContextKind::ActualNumValues)), ("arg", &arg)])
        }
        ErrorKind::WrongNumberOfValues => word_with(
            lang,
            "err.wrong_number_of_values",
            &[("expected", &number(ContextKind::ExpectedNumValues)), ("actual", &number(ContextKind::ActualNumValues)), ("arg", &arg)],
        ),
        ErrorKind::NoEquals => word_with(lang, "err.no_equals", &[("arg", &arg)]),
        ErrorKind::InvalidUtf8 => word(lang, "err.invalid_utf8"),
        _ if lang == "en" => return None,
        _ => word(lang, "err.other"),
    };

    let mut tips = Vec::new();
    if let Some(a) = one(ContextKind::SuggestedArg) {
        tips.push(word_with(lang, "err.similar_argument", &[("arg", &a)]));
    }
    let subcommands = many(ContextKind::SuggestedSubcommand);
    match subcommands.as_slice() {
        [] => {}
        [name] => tips.push(word_with(lang, "err.similar_subcommand", &[("name", name)])),
        names => tips.push(word_with(lang, "err.similar_subcommands", &[("names", &names.join("', '"))])),
    }
    if let Some(v) = one(ContextKind::SuggestedValue) {
        tips.push(word_with(lang, "err.similar_value", &[("value", &v)]));
    }
    if let Some(ContextValue::StyledStrs(suggested)) = e.get(ContextKind::Suggested) {
        tips.extend(suggested.iter().filter_map(|s| suggestion(&s.to_string(), lang)));
    }

    let (error_style, reset) = if color { (styles.get_error().render().to_string(), styles.get_error().render_reset().to_string()) } else { Default::default() };
    let mut out = format!("{error_style}{}:{reset} {message}", word(lang, "error"));
    for (i, tip) in tips.iter().enumerate() {
        out.push_str(if i == 0 { "\n\n" } else { "\n" });
        out.push_str(&format!("  {}: {tip}", word(lang, "tip")));
    }
    if let Some(ContextValue::StyledStr(usage)) = e.get(ContextKind::Usage) {
        let usage = if color { usage.ansi().to_string() } else { usage.to_string() };
        out.push_str("\n\n");
        out.push_str(&usage.replacen("Usage:", &format!("{}:", word(lang, "usage")), 1));
    }
    out.push_str("\n\n");
    out.push_str(&word_with(lang, "try_help", &[("help", "--help")]));
    out.push('\n');
    Some(out)
}

/// Why a value did not parse, in `lang`: the number parsers' reasons; another parser's own
/// (English) text only in English.
fn validation_reason(e: &clap::Error, lang: &str) -> Option<String> {
    let source = std::error::Error::source(e)?;
    if let Some(p) = source.downcast_ref::<std::num::ParseIntError>() {
        let key = match p.kind() {
            std::num::IntErrorKind::PosOverflow => "err.int_too_large",
            std::num::IntErrorKind::NegOverflow => "err.int_too_small",
            _ => "err.int_invalid",
        };
        return Some(word(lang, key));
    }
    (lang == "en").then(|| source.to_string())
}

/// One of clap's English tips, said in `lang` (clap gives them as finished sentences, so they are
/// recognised by their shape and their quoted parts).
fn suggestion(tip: &str, lang: &str) -> Option<String> {
    let quoted: Vec<&str> = tip.split('\'').skip(1).step_by(2).collect();
    match quoted.as_slice() {
        [arg, with] if tip.starts_with("to pass ") => Some(word_with(lang, "err.pass_as_value", &[("arg", arg), ("use", with)])),
        [name, _] if tip.starts_with("subcommand ") => Some(word_with(lang, "err.remove_dashes", &[("name", name)])),
        [what] if tip.ends_with(" exists") => Some(word_with(lang, "err.exists_elsewhere", &[("what", what)])),
        _ => (lang == "en").then(|| tip.to_string()),
    }
}

/// German first: every command and argument has its help in both languages, and the help and
/// the parse errors in German have no English left in them.
#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Value names German writes as English does; every other one needs a `help.value.*` text.
    const SAME_IN_GERMAN: &[&str] = &["STACK", "ID", "SNAPSHOT", "REGION", "VERSION"];

    /// English words that must not be in German output (whole words; `the`, `and` are not caught
    /// inside `Zustand`).
    const ENGLISH: &str = "Usage Commands Arguments Options OPTIONS COMMAND Print Show default env error tip the and of for with subcommand subcommands found information";

    fn english_words(s: &str) -> Vec<&str> {
        let mut found: Vec<&str> = s.split(|c: char| !c.is_alphabetic()).filter(|w| ENGLISH.split(' ').any(|e| e == *w)).collect();
        if s.contains("'s ") {
            found.push("'s");
        }
        found
    }

    /// `key` has an English text and a German one that is not the English (a key German lacks
    /// reads as the English one).
    fn check(key: &str, problems: &mut Vec<String>) {
        match (text("en", key), text("de", key)) {
            (None, _) => problems.push(format!("{key}: no text in locales/help.yml")),
            (Some(en), Some(de)) if en == de => problems.push(format!("{key}: no German text (or the same as the English {en:?})")),
            _ => {}
        }
    }

    fn walk(cmd: &Command, path: &str, problems: &mut Vec<String>, used: &mut BTreeSet<String>) {
        let key = command_key(path);
        check(&key, problems);
        used.insert(key);
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let id = a.get_id().as_str();
            match arg_key(path, id) {
                Some(key) => {
                    check(&key, problems);
                    used.insert(key);
                }
                None => problems.push(format!("`hafen {}` argument `{id}`: no help.arg.{} (nor help.shared.{id})", path.replace('.', " "), subpath(path, id))),
            }
            let shown = if a.get_action().takes_values() { a.get_value_names().unwrap_or_default() } else { &[] };
            for name in shown.iter().filter(|n| !SAME_IN_GERMAN.contains(&n.as_str())) {
                let key = format!("help.value.{name}");
                check(&key, problems);
                used.insert(key);
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                problems.push(format!("`hafen {path}`: a command called `help` would be taken for clap's own"));
            }
            walk(sub, &subpath(path, sub.get_name()), problems, used);
        }
    }

    #[test]
    fn every_command_and_argument_has_its_help_in_german_and_english() {
        let mut problems = Vec::new();
        let mut used = BTreeSet::new();
        walk(&Cli::command(), "", &mut problems, &mut used);
        assert!(used.len() > 100, "only {} texts", used.len());

        // And no text is left over from a command or argument that is gone or renamed.
        let package = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let file = package.join("../../locales/help.yml");
        let doc: serde_norway::Mapping = serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for key in doc.keys().filter_map(|k| k.as_str()).filter(|k| k.starts_with("help.")) {
            if !used.contains(key) {
                problems.push(format!("{key}: no command or argument has it"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// The help of `cmd` and of every command below it (clap's `help` subcommands included).
    fn every_help(cmd: &mut Command, out: &mut Vec<(String, String)>) {
        let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
        out.push((name, cmd.render_help().to_string()));
        for sub in cmd.get_subcommands_mut() {
            every_help(sub, out);
        }
    }

    #[test]
    fn the_german_help_has_no_english_in_it() {
        let mut helps = Vec::new();
        every_help(&mut command("de"), &mut helps);
        assert!(helps.len() > 60, "only {} commands", helps.len());
        for (name, help) in &helps {
            assert!(english_words(help).is_empty(), "`{name} --help` has {:?}:\n{help}", english_words(help));
            assert!(help.contains("Aufruf: "), "{help}");
        }
        let root = &helps[0].1;
        for want in ["\nBefehle:\n", "\nOptionen:\n", "Hilfe anzeigen", "Version anzeigen", "[OPTIONEN] <BEFEHL>", "[Umgebungsvariable: HAFEN_CONFIG"] {
            assert!(root.contains(want), "no {want:?} in\n{root}");
        }
        let restore = &helps.iter().find(|(n, _)| n == "hafen restore").unwrap().1;
        assert!(restore.contains("\nArgumente:\n") && restore.contains("[Vorgabe: latest]") && restore.contains("--to <VERZEICHNIS>"), "{restore}");

        let mut english = Vec::new();
        every_help(&mut command("en"), &mut english);
        let root = &english[0].1;
        for want in ["Usage: hafen [OPTIONS] <COMMAND>", "\nCommands:\n", "\nOptions:\n", "Print help", "Print version", "help         Print this message"] {
            assert!(root.contains(want), "no {want:?} in\n{root}");
        }
    }

    /// The error for `hafen <args>` as it is shown in `lang`.
    fn error(lang: &str, args: &[&str]) -> String {
        let mut cmd = command(lang);
        let e = cmd.try_get_matches_from_mut(std::iter::once("hafen").chain(args.iter().copied())).unwrap_err();
        render_error(&e, lang, cmd.get_styles(), false).unwrap_or_else(|| e.render().to_string())
    }

    #[test]
    fn parse_errors_are_in_german() {
        let cases: &[(&[&str], &str)] = &[
            (&["--bogus"], "Fehler: Unerwartetes Argument '--bogus'\n\nAufruf: hafen [OPTIONEN] <BEFEHL>\n\nMehr dazu mit '--help'.\n"),
            (&["stak"], "Tipp: Ähnliche Unterbefehle gibt es: 'status', 'stack'"),
            (&["stack", "deploy", "web", "--jsn"], "Tipp: Ein ähnliches Argument gibt es: '--json'"),
            (&["stack", "deploy", "web", "--wait", "soon"], "Fehler: Ungültiger Wert 'soon' für '--wait <SEKUNDEN>': keine ganze Zahl"),
            (&["stack", "deploy", "web", "--set"], "Fehler: '--set <SCHLÜSSEL=WERT>' braucht einen Wert, angegeben wurde keiner"),
            (&["backup", "export", "web"], "Fehler: Diese nötigen Argumente fehlen:\n  --out <DATEI>"),
            (&["restore", "--all", "--stack", "web"], "Fehler: Das Argument '--all' kann nicht zusammen mit '--stack <STACK>' verwendet werden"),
            (&["stack", "show", "web", "--json", "--json"], "Fehler: Das Argument '--json' darf nur einmal angegeben werden"),
            (&["stack", "logs", "web", "--tail", "-1"], "Tipp: Um '-1' als Wert zu übergeben: '-- -1'"),
            (&["help", "bogus"], "Fehler: Unbekannter Unterbefehl 'bogus'"),
        ];
        for (args, want) in cases {
            let out = error("de", args);
            assert!(out.contains(want), "hafen {}: no {want:?} in\n{out}", args.join(" "));
            assert!(english_words(&out).is_empty(), "hafen {}: {:?} in\n{out}", args.join(" "), english_words(&out));
        }
    }

    #[test]
    fn english_parse_errors_read_as_clap_writes_them() {
        let cases: &[&[&str]] = &[
            &["--bogus"],
            &["stak"],
            &["stack", "deploy", "web", "--jsn"],
            &["stack", "deploy", "web", "--set"],
            &["backup", "export", "web"],
            &["restore", "--all", "--stack", "web"],
            &["stack", "show", "web", "--json", "--json"],
            &["stack", "logs", "web", "--tail", "-1"],
            &["backup", "run", "web", "--host"],
        ];
        for args in cases {
            let mut cmd = command("en");
            let e = cmd.try_get_matches_from_mut(std::iter::once("hafen").chain(args.iter().copied())).unwrap_err();
            assert_eq!(render_error(&e, "en", cmd.get_styles(), false).unwrap(), e.render().to_string(), "hafen {}", args.join(" "));
        }
    }

    #[test]
    fn the_translated_command_line_parses_as_before() {
        let m = command("de").try_get_matches_from(["hafen", "stack", "deploy", "web", "--set", "a=b", "--wait", "5", "--dry-run"]).unwrap();
        match Cli::from_arg_matches(&m).unwrap().cmd {
            Cmd::Stack(StackCmd::Deploy { id, set, dry_run, wait, json }) => assert!(id == "web" && set == ["a=b"] && dry_run && wait == 5 && !json),
            other => panic!("{other:?}"),
        }
        let m = command("en").try_get_matches_from(["hafen", "-v", "restore", "--to", "/tmp/r", "--path", "/volumes"]).unwrap();
        let cli = Cli::from_arg_matches(&m).unwrap();
        assert!(cli.verbose);
        match cli.cmd {
            Cmd::Restore(r) => assert!(r.to.as_deref() == Some(std::path::Path::new("/tmp/r")) && r.path == "/volumes" && r.snapshot == "latest"),
            other => panic!("{other:?}"),
        }
        for (args, kind) in
            [(&["hafen", "help", "stack"][..], ErrorKind::DisplayHelp), (&["hafen", "stack", "-h"], ErrorKind::DisplayHelp), (&["hafen", "-V"], ErrorKind::DisplayVersion)]
        {
            let e = command("de").try_get_matches_from(args).unwrap_err();
            assert_eq!(e.kind(), kind, "{args:?}");
        }
        let e = command("de").try_get_matches_from(["hafen", "help", "stack"]).unwrap_err();
        assert!(e.render().to_string().contains(&text("de", "help.cmd.stack").unwrap()));
    }
}
