//! Turns a language-neutral [`Notice`] into the words a person reads, in German or English:
//! what happened, since when, what hafen already tried, what to do, on which machine and how
//! bad. Texts live in `locales/notify.yml`; an unknown code still renders, with its code and
//! arguments. Pure: no I/O, no clock.

pub use hafen_core::i18n::fill;
use hafen_core::i18n::lookup;
use super::{Notice, NoticeKind, Severity, Step};
use std::collections::BTreeMap;

/// A notice in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// E-mail subject, e.g. `[hafen box1] KRITISCH: tryton: Absturzschleife bei server`.
    pub subject: String,
    /// The alert's title alone, e.g. `Absturzschleife bei server`.
    pub title: String,
    /// The whole message as plain text.
    pub text: String,
    /// What hafen already tried, one line each.
    pub tried: Vec<String>,
}

pub fn render(n: &Notice, lang: &str) -> Rendered {
    let texts = AlertTexts::of(n, lang);
    let tried: Vec<String> = n.tried.iter().map(|s| step_line(s, lang)).collect();
    let subject = subject(n, lang, &texts.title);
    let text = body(n, lang, &texts, &tried);
    Rendered { subject, title: texts.title, text, tried }
}

/// The title, description and advice of one alert code, filled in.
struct AlertTexts {
    title: String,
    what: String,
    todo: String,
}

impl AlertTexts {
    fn of(n: &Notice, lang: &str) -> AlertTexts {
        let part = |p: &str| lookup(lang, &format!("alert.{}.{p}", n.code));
        match (part("title"), part("what"), part("todo")) {
            (Some(t), Some(w), Some(d)) => AlertTexts { title: fill(&t, &n.args), what: fill(&w, &n.args), todo: fill(&d, &n.args) },
            _ => {
                let a = generic_args(&n.code, &n.args);
                AlertTexts { title: text(lang, "notify.unknown.title", &a), what: text(lang, "notify.unknown.what", &a), todo: text(lang, "notify.unknown.todo", &a) }
            }
        }
    }
}

/// One line for something hafen already did.
pub fn step_line(s: &Step, lang: &str) -> String {
    match lookup(lang, &format!("step.{}", s.code)) {
        Some(t) => fill(&t, &s.args),
        None => text(lang, "notify.unknown.step", &generic_args(&s.code, &s.args)),
    }
}

/// `KRITISCH`, `WEITERHIN KRITISCH`, `BEHOBEN` …
fn label(n: &Notice, lang: &str) -> String {
    let kind = match n.kind {
        NoticeKind::Problem => "problem",
        NoticeKind::Reminder => "reminder",
        NoticeKind::Escalated => "escalated",
        NoticeKind::Resolved => "resolved",
        NoticeKind::Test => "test",
    };
    text(lang, &format!("notify.label.{kind}"), &sev_args(n.severity, lang))
}

fn severity_word(s: Severity, lang: &str) -> String {
    text(lang, &format!("notify.sev.{}", s.word()), &BTreeMap::new())
}

fn sev_args(s: Severity, lang: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("sev".to_string(), severity_word(s, lang))])
}

fn subject(n: &Notice, lang: &str, title: &str) -> String {
    let stack = n.stack.as_deref().map(|s| format!("{s}: ")).unwrap_or_default();
    format!("[hafen {}] {}: {stack}{title}", n.host, label(n, lang))
}

fn body(n: &Notice, lang: &str, t: &AlertTexts, tried: &[String]) -> String {
    let none = BTreeMap::new();
    let h = |key: &str| text(lang, key, &none);
    let mut args = sev_args(n.severity, lang);
    args.insert("host".into(), n.host.clone());
    let stack = n.stack.as_deref().map(|s| format!("{s}: ")).unwrap_or_default();
    let mut out = vec![
        format!("{}: {stack}{}", label(n, lang), t.title),
        String::new(),
        text(lang, &format!("notify.intro.{}", kind_word(n.kind)), &args),
        String::new(),
        h("notify.h.what"),
        t.what.clone(),
        String::new(),
    ];
    if n.kind != NoticeKind::Test {
        let since_heading = if n.kind == NoticeKind::Resolved { "notify.h.since_resolved" } else { "notify.h.since" };
        out.extend([h(since_heading), hafen_core::events::utc_minute(&n.since), String::new(), h("notify.h.tried")]);
        if tried.is_empty() {
            out.push(h("notify.tried_nothing"));
        }
        out.extend(tried.iter().map(|l| format!("- {l}")));
        out.push(String::new());
    }
    let todo = if n.kind == NoticeKind::Resolved { h("notify.todo_resolved") } else { t.todo.clone() };
    out.extend([h("notify.h.todo"), todo, String::new(), "-- ".into()]);
    out.push(format!("{}: {}", h("notify.footer.host"), n.host));
    out.push(format!("{}: {}", h("notify.footer.severity"), severity_word(n.severity, lang)));
    out.push(format!("{}: {}", h("notify.footer.key"), n.key));
    let open = matches!(n.kind, NoticeKind::Problem | NoticeKind::Reminder | NoticeKind::Escalated);
    out.push(h(if open { "notify.footer.reminders" } else { "notify.footer.sent_by" }));
    out.join("\n") + "\n"
}

fn kind_word(k: NoticeKind) -> &'static str {
    match k {
        NoticeKind::Problem => "problem",
        NoticeKind::Reminder => "reminder",
        NoticeKind::Escalated => "escalated",
        NoticeKind::Resolved => "resolved",
        NoticeKind::Test => "test",
    }
}



/// A text that must exist (hafen's own frame), filled in; the key itself if it is missing.
fn text(lang: &str, key: &str, args: &BTreeMap<String, String>) -> String {
    fill(&lookup(lang, key).unwrap_or_else(|| key.to_string()), args)
}

fn generic_args(code: &str, args: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let list = args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    BTreeMap::from([("code".to_string(), code.to_string()), ("args".to_string(), list)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every alert code the texts cover, with the arguments it is raised with.
    const ALERTS: &[(&str, &[&str])] = &[
        ("stack_unhealthy", &["stack", "services", "detail"]),
        ("crash_loop", &["stack", "service", "restarts", "window"]),
        ("definition_invalid", &["stack", "file", "issues"]),
        ("service_oom", &["stack", "service"]),
        ("engine_unreachable", &["endpoint", "detail"]),
        ("disk_low", &["what", "path", "free", "total", "percent", "forecast"]),
        ("target_absent", &["target", "path"]),
        ("memory_pressure", &["available", "total", "detail"]),
        ("oom_kill", &["count"]),
        ("smart_failed", &["device", "detail"]),
        ("clock_unsynced", &["detail"]),
        ("clock_jumped", &["from", "to", "hold"]),
        ("clock_behind", &["target", "group"]),
        ("backup_failed", &["stack", "target", "error"]),
        ("backup_stale", &["stack", "age", "last"]),
        ("backup_check_failed", &["target", "problems"]),
        ("update_rolled_back", &["stack", "from", "to", "step", "error", "log"]),
        ("update_failed", &["stack", "to", "error"]),
        ("update_available", &["stack", "current", "path"]),
        ("test", &[]),
    ];

    const STEPS: &[(&str, &[&str])] = &[
        ("restarted", &["service", "count"]),
        ("backoff", &["seconds"]),
        ("restarts_stopped", &["service"]),
        ("reconnecting", &[]),
        ("resynced", &[]),
        ("retry_scheduled", &["when"]),
        ("update_backup", &["snapshot"]),
        ("update_rolled_back", &["from"]),
        ("data_restored", &["snapshot"]),
    ];

    const KINDS: [NoticeKind; 5] = [NoticeKind::Problem, NoticeKind::Reminder, NoticeKind::Escalated, NoticeKind::Resolved, NoticeKind::Test];

    fn args(names: &[&str]) -> BTreeMap<String, String> {
        names.iter().map(|a| (a.to_string(), format!("<{a}-value>"))).collect()
    }

    fn notice(code: &str, names: &[&str], kind: NoticeKind) -> Notice {
        Notice {
            kind,
            severity: Severity::Critical,
            key: format!("{code}:x"),
            code: code.into(),
            stack: Some("tryton".into()),
            args: args(names),
            since: "2025-03-01T14:05:09.123Z".into(),
            tried: STEPS.iter().map(|(c, a)| Step { code: c.to_string(), args: args(a) }).collect(),
            host: "box1".into(),
        }
    }

    #[test]
    fn every_code_renders_in_both_languages_with_all_its_arguments() {
        for (code, names) in ALERTS {
            for lang in ["de", "en"] {
                for kind in KINDS {
                    let r = render(&notice(code, names, kind), lang);
                    for part in [&r.subject, &r.text] {
                        assert!(!part.contains("%{"), "{code}/{lang}/{kind:?}: leftover placeholder in {part}");
                        assert!(!part.contains("notify.") && !part.contains("alert."), "{code}/{lang}: missing text in {part}");
                    }
                    for a in names.iter() {
                        assert!(r.text.contains(&format!("<{a}-value>")), "{code}/{lang}: argument {a} not shown:\n{}", r.text);
                    }
                    assert!(r.text.contains("box1") && r.subject.starts_with("[hafen box1] "), "{code}/{lang}: host missing");
                }
            }
        }
    }

    #[test]
    fn every_code_and_step_has_its_own_german_and_english_text() {
        for (code, _) in ALERTS {
            for part in ["title", "what", "todo"] {
                let key = format!("alert.{code}.{part}");
                let (de, en) = (lookup("de", &key), lookup("en", &key));
                assert!(de.is_some() && en.is_some(), "{key} is missing");
                assert_ne!(de, en, "{key} has no German text of its own");
            }
        }
        for (code, names) in STEPS {
            let s = Step { code: code.to_string(), args: args(names) };
            let (de, en) = (step_line(&s, "de"), step_line(&s, "en"));
            assert!(!de.contains("%{") && !en.contains("%{"), "{code}: leftover placeholder");
            assert_ne!(de, en, "step.{code} has no German text of its own");
            for a in names.iter() {
                assert!(de.contains(&format!("<{a}-value>")) && en.contains(&format!("<{a}-value>")), "step {code}: {a} not shown");
            }
        }
    }

    #[test]
    fn a_german_problem_reads_german() {
        let mut n = notice("crash_loop", &[], NoticeKind::Problem);
        n.args = BTreeMap::from([
            ("stack".into(), "tryton".into()),
            ("service".into(), "server".into()),
            ("restarts".into(), "5".into()),
            ("window".into(), "10m".into()),
        ]);
        n.tried = vec![Step { code: "restarted".into(), args: BTreeMap::from([("service".into(), "server".into()), ("count".into(), "5".into())]) }];
        let r = render(&n, "de");
        assert_eq!(r.subject, "[hafen box1] KRITISCH: tryton: Absturzschleife bei server");
        for words in ["Was ist passiert?", "Seit wann?", "2025-03-01 14:05 UTC", "Was hafen schon versucht hat:", "- server neu gestartet (5-mal)", "Was ist zu tun?", "Rechner: box1", "Schweregrad: KRITISCH", "hafen stack logs tryton server"] {
            assert!(r.text.contains(words), "missing `{words}` in\n{}", r.text);
        }
        let en = render(&n, "en");
        assert_eq!(en.subject, "[hafen box1] CRITICAL: tryton: Crash loop in server");
        assert!(en.text.contains("What hafen already tried:") && en.text.contains("2025-03-01 14:05 UTC"));
    }

    #[test]
    fn kinds_say_still_now_and_resolved() {
        let n = |kind| notice("disk_low", &["what", "path", "free", "total", "percent"], kind);
        let subj = |kind, lang| render(&n(kind), lang).subject;
        assert!(subj(NoticeKind::Reminder, "de").contains("] WEITERHIN KRITISCH: "));
        assert!(subj(NoticeKind::Reminder, "en").contains("] STILL CRITICAL: "));
        assert!(subj(NoticeKind::Escalated, "de").contains("] JETZT KRITISCH: "));
        assert!(subj(NoticeKind::Resolved, "de").contains("] BEHOBEN: "));
        assert!(subj(NoticeKind::Resolved, "en").contains("] RESOLVED: "));
        let resolved = render(&n(NoticeKind::Resolved), "de").text;
        assert!(resolved.contains("ist behoben") && resolved.contains("Nichts mehr."), "{resolved}");
    }

    #[test]
    fn unknown_codes_still_show_code_and_arguments() {
        let mut n = notice("new_thing", &["alpha"], NoticeKind::Problem);
        n.tried = vec![Step { code: "new_step".into(), args: args(&["beta"]) }];
        for lang in ["de", "en", "fr"] {
            let r = render(&n, lang);
            assert!(r.subject.contains("new_thing"), "{}", r.subject);
            assert!(r.text.contains("alpha=<alpha-value>") && r.text.contains("new_step (beta=<beta-value>)"), "{}", r.text);
            assert!(!r.text.contains("%{"));
        }
    }

    #[test]
    fn optional_lines_need_their_arguments_and_missing_ones_show_as_question_marks() {
        let a = BTreeMap::from([("x".to_string(), "1".to_string()), ("e".to_string(), String::new())]);
        assert_eq!(fill("a %{x}\n?b %{e}\n?c %{x}", &a), "a 1\nc 1");
        assert_eq!(fill("%{missing} and %{x}", &a), "? and 1");
        assert_eq!(fill("no close %{x", &a), "no close %{x");
        let v = BTreeMap::from([("x".to_string(), "%{y}".to_string()), ("y".to_string(), "boom".to_string())]);
        assert_eq!(fill("%{x}", &v), "%{y}", "values are not templates");
        let p = BTreeMap::from([("percent".to_string(), "4.2%".to_string())]);
        assert_eq!(fill("%{percent} %", &p), "4.2 %");
    }
}
