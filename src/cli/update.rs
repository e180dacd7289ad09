//! `hafen update check|plan|apply|rollback|pin|unpin|list`: clients of the daemon's update API.

use crate::client::Client;
use crate::output::{following, print_json, spinning};
use hafen_api::UpdateRequest;
use hafen_api::{ApplyReport, PlanView, StackCheck};
use hafen_api::UpdateRecord;
use crate::args::UpdateCmd;
use rust_i18n::t;


/// An update's state or step in the reader's language (`update_state.…`, `update_step.…`); the
/// daemon's word when the catalogue does not know it.
fn update_word(kind: &str, w: &str) -> String {
    hafen_core::i18n::render(&rust_i18n::locale(), &hafen_api::Message::new(&format!("{kind}.{w}"))).replace(&format!("{kind}.{w}"), w)
}

/// What the box lacks for an update, each with what to do (`update apply` refuses until then).
fn print_missing(missing: &[hafen_api::Message]) {
    if missing.is_empty() {
        return;
    }
    let lang = rust_i18n::locale();
    println!("{}", t!("update_plan_missing"));
    for m in missing {
        println!("  - {}", hafen_core::i18n::render_error(&lang, m).unwrap_or_else(|| m.code.clone()));
    }
}

fn print_header() {
    println!("{:>4}  {:<12} {:>8}   {:<8} {:<16} {:<14} {:>6}  {:<8}  {}", "#", t!("col_stack"), t!("col_from"), t!("col_to"), t!("col_state"), t!("col_step"), t!("col_down"), t!("col_snapshot"), t!("col_started"));
}

fn print_record(u: &UpdateRecord) {
    let down = u.downtime.map(|d| format!("{d:.0}s")).unwrap_or_else(|| "-".into());
    let snap: String = u.snapshot.as_deref().unwrap_or("-").chars().take(8).collect();
    println!(
        "{:>4}  {:<12} {:>8} → {:<8} {:<16} {:<14} {:>6}  {snap:<8}  {}",
        u.id,
        u.stack,
        u.from_version,
        u.to_version,
        update_word("update_state", &u.state),
        update_word("update_step", &u.step),
        down,
        u.started_at
    );
    if let Some(e) = &u.error {
        println!("      {e}");
    }
}

pub async fn run(c: Client, cmd: &UpdateCmd) -> anyhow::Result<i32> {
    match cmd {
        UpdateCmd::Check { stack, rebuild, json } => {
            let mut path = match stack {
                Some(s) => format!("/v1/updates/check?stack={s}"),
                None => "/v1/updates/check?".into(),
            };
            if *rebuild {
                path.push_str("&rebuild=true");
            }
            let l: Vec<StackCheck> = spinning(*rebuild && !*json, &t!("update_rebuilding"), c.get(&path)).await?;
            if *json {
                print_json(&l);
                return Ok(if l.iter().any(|x| x.error.is_some()) { 1 } else { 0 });
            }
            if l.is_empty() {
                println!("{}", t!("update_none_tracked"));
            }
            let mut failed = false;
            for x in &l {
                if let Some(e) = &x.error {
                    failed = true;
                    eprintln!("{}", t!("update_check_failed", stack = x.stack, error = e));
                } else if x.path.is_empty() && !x.rebuild {
                    println!("{}", t!("update_current", stack = x.stack, version = x.current));
                } else if x.path.is_empty() {
                    println!("{}", t!("update_rebuild", stack = x.stack, version = x.current));
                    for ch in &x.changes {
                        println!("    {ch}");
                    }
                } else {
                    println!("{}", t!("update_available", stack = x.stack, version = x.current, path = x.path.join(" → ")));
                }
                if let Some(p) = &x.pinned {
                    println!("  {}", t!("update_pinned_note", version = p));
                }
                print_missing(&x.missing);
            }
            Ok(if failed { 1 } else { 0 })
        }
        UpdateCmd::Plan { stack, to, json } => {
            let path = match to {
                Some(v) => format!("/v1/updates/{stack}/plan?to={v}"),
                None => format!("/v1/updates/{stack}/plan"),
            };
            let p: PlanView = c.get(&path).await?;
            if *json {
                print_json(&p);
                return Ok(0);
            }
            if p.hops.is_empty() {
                println!("{}", t!("update_current", stack = p.stack, version = p.current));
                return Ok(0);
            }
            println!("{}", t!("update_plan_head", stack = p.stack, from = p.current, to = p.target, hops = p.hops.len()));
            for (i, h) in p.hops.iter().enumerate() {
                println!("  {}. {} → {}", i + 1, h.from, h.to);
                for (svc, (a, b)) in &h.images {
                    println!("       {svc}: {a} → {b}");
                }
                for m in &h.migrations {
                    println!("       {}", t!("update_plan_migration", m = m));
                }
                println!("       {}", h.steps.join(" → "));
            }
            if !p.missing.is_empty() {
                println!();
                print_missing(&p.missing);
            }
            Ok(0)
        }
        UpdateCmd::Apply { stack, to, json } => {
            let r: ApplyReport = following(&c, !*json, stack, &t!("update_running", stack = stack), c.post(&format!("/v1/updates/{stack}/apply"), &UpdateRequest { to: to.clone() })).await?;
            if *json {
                print_json(&r);
            } else {
                for h in &r.hops {
                    print_record(h);
                }
                match &r.error {
                    None if r.hops.is_empty() => println!("{}", t!("update_current", stack = r.stack, version = r.version)),
                    None => println!("{}", t!("update_done", stack = r.stack, version = r.version)),
                    Some(e) => eprintln!("{}", t!("update_failed", stack = r.stack, version = r.version, error = e)),
                }
            }
            Ok(if r.error.is_none() { 0 } else { 1 })
        }
        UpdateCmd::Rollback { stack, yes, json } => {
            if !*yes {
                use std::io::Write;
                eprint!("{}", t!("update_rollback_prompt", stack = stack));
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                if line.trim() != stack {
                    eprintln!("{}", t!("update_rollback_aborted"));
                    return Ok(1);
                }
            }
            let r: UpdateRecord = following(&c, !*json, stack, &t!("update_rolling_back", stack = stack), c.post(&format!("/v1/updates/{stack}/rollback"), &UpdateRequest::default())).await?;
            if *json {
                print_json(&r);
            } else {
                print_record(&r);
            }
            Ok(if r.state == "rolled_back" { 0 } else { 1 })
        }
        UpdateCmd::Pin { stack, version } => {
            let _: serde_json::Value = c.post(&format!("/v1/updates/{stack}/pin"), &UpdateRequest { to: Some(version.clone()) }).await?;
            println!("{}", t!("update_pinned", stack = stack, version = version));
            Ok(0)
        }
        UpdateCmd::Unpin { stack } => {
            let _: serde_json::Value = c.post(&format!("/v1/updates/{stack}/pin"), &UpdateRequest::default()).await?;
            println!("{}", t!("update_unpinned", stack = stack));
            Ok(0)
        }
        UpdateCmd::List { stack, json } => {
            let path = match stack {
                Some(s) => format!("/v1/updates?stack={s}"),
                None => "/v1/updates".into(),
            };
            let l: Vec<UpdateRecord> = c.get(&path).await?;
            if *json {
                print_json(&l);
            } else if l.is_empty() {
                match stack {
                    Some(s) => println!("{}", t!("update_list_none_for", stack = s)),
                    None => println!("{}", t!("update_list_none")),
                }
            } else {
                print_header();
                for u in &l {
                    print_record(u);
                }
            }
            Ok(0)
        }
    }
}
