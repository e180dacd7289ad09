//! `hafen status` and `hafen stack …`: what can be deployed and how it runs, deploy (waiting for
//! the probes), remove, logs, and the offline `stack check` and `stack render`.

use crate::args::{Cli, StackCmd};
use crate::context::{client, load_config, parse_sets};
use crate::output::{following, print_json, word};
use hafen_daemon::catalogue;
use hafen_api::*;
use rust_i18n::t;
use std::io::Write;
use std::time::{Duration, Instant};

pub fn print_status(s: &StatusResponse) {
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
        if st.pending_change {
            println!("  {}", t!("pending_change", stack = st.id));
        }
        for sv in st.services.iter().filter(|_| st.state != "not deployed") {
            let detail = sv.health_detail.as_deref().map(|d| format!(" — {d}")).unwrap_or_default();
            println!("  {:<12} {:<10} {:<9} {}{detail}", sv.service, word(&sv.health), word(&sv.status), sv.ports.join(" "));
        }
    }
}

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

pub async fn stack(cli: &Cli, sc: &StackCmd) -> anyhow::Result<i32> {
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
                let description = d.descriptions.get(&*rust_i18n::locale()).unwrap_or(&d.description);
                println!("\n{}\n{}", description, d.definition);
                for (k, v) in &d.settings {
                    println!("  {k} = {v}");
                }
                for v in &d.volumes {
                    println!("  volume {v}");
                }
                for sv in d.summary.services.iter().filter(|s| s.reference.is_some()) {
                    // The digest alone (a registry's answer names the repository before it).
                    let digest = sv.digest.as_deref().map(|g| format!(" ({})", g.rsplit_once('@').map(|(_, d)| d).unwrap_or(g))).unwrap_or_default();
                    println!("  {}: {}{digest}", sv.service, sv.reference.as_deref().unwrap_or_default());
                }
                if let Some(plan) = &d.pending_plan {
                    println!();
                    print_plan(plan, &[]);
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
            // Each image built and each service started is told as it happens.
            let show = !*json && !preview.images.is_empty();
            let r: DeployResponse = following(&c, show, id, &t!("building_images"), c.post(&format!("/v1/stacks/{id}/deploy"), &DeployRequest { settings, dry_run: false })).await?;
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
