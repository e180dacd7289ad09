//! Watching the box from the command line: `hafen events`, `hafen worker list`, `hafen alerts`,
//! `hafen audit …` and `hafen notify test`, each line in the reader's language.

use crate::args::{AuditCmd, Cli, EventsArgs};
use crate::context::client;
use crate::output::word;
use rust_i18n::t;

pub async fn events(cli: &Cli, a: &EventsArgs) -> anyhow::Result<i32> {
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

pub async fn worker_list(cli: &Cli, json: bool) -> anyhow::Result<i32> {
    let w: Vec<hafen_api::WorkerInfo> = client(cli)?.get("/v1/workers").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&w)?);
        return Ok(0);
    }
    println!("{:<18} {:<9} {:<24} {:<26} {}", t!("col_worker"), t!("col_state"), t!("col_last_run"), t!("col_every"), t!("col_detail"));
    for i in &w {
        let lang = rust_i18n::locale();
        let text = |m: &Option<hafen_api::Message>, english: &str| m.as_ref().map(|m| hafen_core::i18n::render(&lang, m)).unwrap_or_else(|| english.to_string());
        let detail = |i: &hafen_api::WorkerInfo| {
            if i.detail_lines.is_empty() {
                text(&i.detail_text, &i.detail)
            } else {
                i.detail_lines.iter().map(|m| hafen_core::i18n::render(&lang, m)).collect::<Vec<_>>().join("; ")
            }
        };
        println!("{:<18} {:<9} {:<24} {:<26} {}", i.name, word(&i.state), i.last_run.as_deref().unwrap_or("-"), text(&i.every_text, &i.every), detail(i));
    }
    Ok(0)
}

pub async fn alerts(cli: &Cli, json: bool) -> anyhow::Result<i32> {
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

pub async fn audit(cli: &Cli, a: &AuditCmd) -> anyhow::Result<i32> {
    let c = client(cli)?;
    match a {
        AuditCmd::Verify(j) => {
            let r: hafen_api::AuditVerifyResponse = c.get("/v1/audit/verify").await?;
            if j.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if r.ok {
                println!("{}", t!("audit_ok", count = r.records));
            } else {
                let reason = r.reason_text.as_ref().map(|m| hafen_core::i18n::render(&rust_i18n::locale(), m)).or_else(|| r.reason.clone()).unwrap_or_default();
                eprintln!("{}", t!("audit_broken", seq = r.broken_at.unwrap_or(0), reason = reason));
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

pub async fn notify_test(cli: &Cli, json: bool) -> anyhow::Result<i32> {
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
