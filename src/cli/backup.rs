//! `hafen backup …`, `hafen restore …` and `hafen keys …`: backups through the daemon, the
//! in-place restore, and the offline emergency restore and recovery kit (`hafen_daemon::offline`).

use crate::args::{BackupCmd, Cli, KeysCmd, RestoreArgs};
use crate::context::{client, load_config};
use crate::output::{print_json, progress_spinner, spinning};
use hafen_daemon::offline::{self, KitAccess, KitRepo};
use hafen_api::*;
use rust_i18n::t;
use std::io::Write;
use std::path::PathBuf;

/// Offline restore with the recovery identity: list, restore a snapshot (or one path of it)
/// into an empty directory — nothing outside it is written — or, with `--all`, the whole box.
pub async fn restore(cli: &Cli, a: &RestoreArgs) -> anyhow::Result<i32> {
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
    if a.check {
        let findings = repo.check(a.read_data).await?;
        let problems: Vec<String> = findings.iter().map(|f| hafen_core::i18n::render("en", f)).collect();
        if a.json {
            print_json(&problems);
        } else if problems.is_empty() {
            println!("{}", t!("restore_check_ok", repo = loc));
        } else {
            for f in &findings {
                println!("  ✗ {}", hafen_core::i18n::render(&rust_i18n::locale(), f));
            }
            eprintln!("{}", t!("restore_check_problems", count = problems.len(), repo = loc));
        }
        return Ok(if problems.is_empty() { 0 } else { 1 });
    }
    if a.repair {
        let r = if a.json { repo } else { repo.with_progress() }.repair(a.apply).await?;
        if a.json {
            print_json(&r);
        } else {
            print_repair(&r, &format!("hafen restore --repo {loc} --identity {} --repair --apply", identity_file.display()), "hafen restore --repo … --check --read-data");
        }
        return Ok(0);
    }
    let tags: Vec<String> = a.stack.iter().map(|s| format!("stack:{s}")).collect();
    let (snaps, damaged) = repo.snapshots_and_damage().await?;
    // A damaged snapshot file hides no other snapshot; the reader learns which one is skipped.
    for id in &damaged {
        eprintln!("{}", t!("restore_snapshot_damaged", id = id));
    }
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
pub async fn restore_stack(cli: &Cli, a: &RestoreArgs) -> anyhow::Result<i32> {
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
            println!("  {} {:<16} {:>6.1}s  {}", if s.ok { "✓" } else { "✗" }, step_name(&s.step), s.seconds, step_detail(s));
        }
        match run_error(&r) {
            None => println!("{}", t!("restore_stack_ok", stack = stack)),
            Some(e) => eprintln!("{}", t!("restore_stack_failed", stack = stack, error = e)),
        }
    }
    Ok(if r.error.is_none() { 0 } else { 1 })
}

pub async fn backup(cli: &Cli, b: &BackupCmd) -> anyhow::Result<i32> {
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
                    println!("  {} {:<14} {:>6.1}s  {}", if s.ok { "✓" } else { "✗" }, step_name(&s.step), s.seconds, step_detail(s));
                }
                match (&r.snapshot, &run_error(&r)) {
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
        BackupCmd::Repair { target, apply, json } => {
            let spinner = (!*json).then(|| progress_spinner(&t!(if *apply { "repairing" } else { "repair_planning" })));
            let r: Result<RepairReport, _> = c.post("/v1/backups/repair", &BackupRepairRequest { target: target.clone(), apply: *apply }).await;
            if let Some(s) = spinner {
                s.finish_and_clear();
            }
            let r = r?;
            if *json {
                print_json(&r);
            } else {
                let t_arg = target.as_ref().map(|t| format!(" --target {t}")).unwrap_or_default();
                print_repair(&r, &format!("hafen backup repair{t_arg} --apply"), &format!("hafen backup check{t_arg} --read-data"));
            }
            Ok(0)
        }
        BackupCmd::Check { target, read_data, json } => {
            let r: BackupCheckResponse = c.post("/v1/backups/check", &BackupCheckRequest { target: target.clone(), read_data: *read_data }).await?;
            if *json {
                print_json(&r);
            } else if r.problems.is_empty() {
                println!("{}", t!("check_repo_ok", target = r.target));
            } else if r.findings.len() == r.problems.len() {
                for f in &r.findings {
                    eprintln!("  {}", hafen_core::i18n::render(&rust_i18n::locale(), f));
                }
            } else {
                for p in &r.problems {
                    eprintln!("  {p}");
                }
            }
            Ok(if r.problems.is_empty() { 0 } else { 1 })
        }
    }
}

/// A repair's plan or result for a person: what is damaged, what the repair does or did about
/// it, and what to do next (`apply` the command that carries the plan out, `check` the one that
/// checks afterwards).
fn print_repair(r: &RepairReport, apply: &str, check: &str) {
    let size = offline::human_bytes(r.bytes_read);
    if r.is_clean() {
        println!("{}", t!("repair_clean", repo = &r.location, packs = r.packs_read, size = size));
        return;
    }
    let head = if r.applied { "repair_done_head" } else { "repair_plan_head" };
    println!("{}", t!(head, repo = &r.location, packs = r.packs_read, size = size));
    let short = |id: &str| id[..8.min(id.len())].to_string();
    for id in &r.damaged_index_files {
        println!("  ✗ {}", t!("repair_index", id = short(id)));
    }
    for p in &r.damaged_packs {
        let key = if p.missing { "repair_pack_missing" } else { "repair_pack" };
        println!("  ✗ {}", t!(key, id = short(&p.id), blobs = p.blobs, salvaged = p.salvaged, lost = p.lost));
    }
    for id in &r.unindexed_packs {
        println!("  • {}", t!("repair_unindexed", id = short(id)));
    }
    for id in &r.damaged_snapshot_files {
        println!("  ✗ {}", t!("repair_snapfile", id = short(id)));
    }
    for s in &r.snapshots_lost {
        println!("  ✗ {}", t!("repair_lost", id = short(&s.id), label = &s.label, time = &s.time));
    }
    for s in &r.snapshots_incomplete {
        let paths = s.paths.join(", ");
        println!("  ! {}", t!("repair_incomplete", id = short(&s.snapshot.id), label = &s.snapshot.label, time = &s.snapshot.time, count = s.count, paths = paths));
    }
    if !r.applied {
        println!("{}", t!("repair_planned", cmd = apply));
        return;
    }
    // What heals the incomplete snapshots: new backups of their stacks (blobs are named by
    // their content, so the same data stored again completes the old snapshots too).
    let mut stacks: Vec<&str> = r.snapshots_incomplete.iter().flat_map(|s| s.snapshot.tags.iter()).filter_map(|t| t.strip_prefix("stack:")).collect();
    stacks.sort_unstable();
    stacks.dedup();
    if stacks.is_empty() {
        println!("{}", t!("repair_applied", check = check));
    } else {
        let runs: Vec<String> = stacks.iter().map(|s| format!("hafen backup run {s}")).collect();
        println!("{}", t!("repair_applied_backup", runs = runs.join("; "), check = check));
    }
}

pub fn keys(cli: &Cli, k: &KeysCmd) -> anyhow::Result<i32> {
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

/// A step of a backup or restore run (`open`, `dump /dumps/db.sql`, `swap`, …) in the reader's
/// language: the step's word from the catalogue (`runstep.*`), what it worked on as it came.
/// A step's detail in the reader's language (as it came when it came from elsewhere).
fn step_detail(s: &hafen_api::RunStep) -> String {
    s.text.as_ref().map(|m| hafen_core::i18n::render(&rust_i18n::locale(), m)).unwrap_or_else(|| s.detail.clone())
}

/// A run's failure in the reader's language; the daemon's own words for a code this build
/// does not know.
fn run_error(r: &hafen_api::RunReport) -> Option<String> {
    let e = r.error.as_ref()?;
    let lang = rust_i18n::locale();
    let known = |m: &hafen_api::Message| hafen_core::i18n::render_error(&lang, m).or_else(|| hafen_core::i18n::lookup(&lang, &m.code).map(|_| hafen_core::i18n::render(&lang, m)));
    Some(r.error_text.as_ref().and_then(known).unwrap_or_else(|| e.clone()))
}

fn step_name(step: &str) -> String {
    let lang = rust_i18n::locale();
    let key = |s: &str| format!("runstep.{}", s.replace(['-', ' '], "_"));
    if let Some(whole) = hafen_core::i18n::lookup(&lang, &key(step)) {
        return whole;
    }
    let (verb, rest) = step.split_once(' ').unwrap_or((step, ""));
    let word = hafen_core::i18n::lookup(&lang, &key(verb)).unwrap_or_else(|| verb.to_string());
    if rest.is_empty() { word } else { format!("{word} {rest}") }
}
