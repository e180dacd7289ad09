//! Language choice for everything hafen says to people: German first, English by setting.
//! `HAFEN_LANG` wins; else `LC_ALL`, `LC_MESSAGES`, `LANG`; German when none names a language
//! hafen has. Texts live in `locales/*.yml` (rust-i18n, compiled in). Messages that travel as
//! code + arguments (`hafen_api::Message`, API errors) are rendered here, in the language the
//! reader chose, not the daemon's.

use hafen_api::Message;
use std::collections::BTreeMap;

pub fn choose() -> &'static str {
    for var in ["HAFEN_LANG", "LC_ALL", "LC_MESSAGES", "LANG"] {
        if let Ok(v) = std::env::var(var) {
            let v = v.to_ascii_lowercase();
            if v.starts_with("en") {
                return "en";
            }
            if v.starts_with("de") {
                return "de";
            }
            if var == "HAFEN_LANG" && !v.is_empty() {
                break;
            }
        }
    }
    "de"
}

pub fn init() {
    rust_i18n::set_locale(choose());
}

/// The text for `key` in `lang` (English when `lang` lacks it), or `None` when no language has it.
pub fn lookup(lang: &str, key: &str) -> Option<String> {
    // `t!` answers a missing key with `<lang>.<key>`; this is the lookup it makes, without that.
    crate::_rust_i18n_try_translate(lang, key).map(|c| c.into_owned())
}

/// A state word the daemon reports (`healthy`, `not deployed`, `warning`, …) in `lang`, when the
/// catalogue has it (`word.*`).
pub fn word(lang: &str, w: &str) -> Option<String> {
    lookup(lang, &format!("word.{}", w.replace(' ', "_")))
}

/// A message whose code is a full catalogue key (events, plan actions) in `lang`; the code
/// itself when no language has it.
pub fn render(lang: &str, m: &Message) -> String {
    lookup(lang, &m.code).map(|t| fill(&t, &m.args)).unwrap_or_else(|| m.code.clone())
}

/// An error message (`err.<code>`) in `lang`, its arguments filled in; `None` for a code the
/// catalogue does not know (a newer daemon): the caller shows the daemon's own rendering then.
pub fn render_error(lang: &str, m: &Message) -> Option<String> {
    if m.code.is_empty() {
        return None;
    }
    lookup(lang, &format!("err.{}", m.code)).map(|t| fill(&t, &m.args))
}

/// Replaces each `%{name}` in one pass (a value is never read as a template). A line starting
/// with `?` is optional: kept, without the `?`, only when all its arguments are given and not
/// empty. A missing argument elsewhere becomes `?`.
pub fn fill(template: &str, args: &BTreeMap<String, String>) -> String {
    let mut lines = Vec::new();
    for line in template.split('\n') {
        match line.strip_prefix('?') {
            Some(optional) if placeholders(optional).iter().all(|p| arg(args, p).is_some_and(|v| !v.is_empty())) => {
                lines.push(fill_line(optional, args))
            }
            Some(_) => {}
            None => lines.push(fill_line(line, args)),
        }
    }
    lines.join("\n")
}

fn arg<'a>(args: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    let v = args.get(name)?.as_str();
    // `percent` is followed by `%` in the texts.
    Some(if name == "percent" { v.trim().trim_end_matches('%').trim_end() } else { v })
}

fn placeholders(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("%{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    out
}

fn fill_line(line: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("%{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        out.push_str(arg(args, &after[..end]).unwrap_or("?"));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_code_renders_in_either_language() {
        let m = Message::new("app_not_found").arg("id", "nosuch").arg("dir", "/srv/stacks").arg("available", "radicale, tryton");
        assert_eq!(render_error("en", &m).unwrap(), "no stack `nosuch` in /srv/stacks; available: radicale, tryton");
        assert_eq!(render_error("de", &m).unwrap(), "Kein Stack `nosuch` in /srv/stacks; vorhanden: radicale, tryton");
        assert_eq!(render_error("de", &Message::new("no_such_code_yet")), None);
    }
}

/// German first: every text of the catalogue exists in German, and a German text that equals the
/// English one is either only placeholders or a true cognate on this list.
#[cfg(test)]
mod catalogue_tests {
    /// Words German uses as English does (checked by hand); everything else must be translated.
    const COGNATES: &[&str] = &["col_stack", "col_name", "notify.label.test"];

    fn only_placeholders(s: &str) -> bool {
        let mut rest = s.to_string();
        while let Some(a) = rest.find("%{") {
            let Some(b) = rest[a..].find('}') else { break };
            rest.replace_range(a..a + b + 1, "");
        }
        rest.chars().all(|c| !c.is_alphabetic())
    }

    #[test]
    fn every_text_is_in_german_and_not_just_english() {
        // The package directory as the test runner gives it, else as compiled in (see tests/common).
        let package = std::env::var_os("CARGO_MANIFEST_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let dir = package.join("../../locales");
        let mut bad = Vec::new();
        let mut seen = 0;
        for f in std::fs::read_dir(&dir).unwrap().flatten().filter(|f| f.path().extension().is_some_and(|e| e == "yml")) {
            let doc: serde_norway::Mapping = serde_norway::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap();
            for (k, v) in doc {
                let key = k.as_str().map(str::to_string).unwrap_or_else(|| format!("{k:?}"));
                if key.starts_with('_') {
                    continue;
                }
                seen += 1;
                let text = |lang: &str| v.get(lang).and_then(|t| t.as_str()).map(str::to_string);
                match (text("en"), text("de")) {
                    (_, None) => bad.push(format!("{key}: no German text")),
                    (Some(en), Some(de)) if en == de && !only_placeholders(&de) && !COGNATES.contains(&key.as_str()) => {
                        bad.push(format!("{key}: German equals English ({de:?})"))
                    }
                    (None, _) => bad.push(format!("{key}: no English text")),
                    _ => {}
                }
            }
        }
        assert!(seen > 200, "only {seen} texts read from {}", dir.display());
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
