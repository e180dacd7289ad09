//! Turns a parsed YAML value into typed fields while collecting *every* problem (unknown field,
//! wrong type, bad value) with its field path and line, instead of stopping at the first.
//! Owns the `Issue` type that `hafen stack check` and `hafen config check` print.

use rust_i18n::t;
use super::yamlpos::Positions;
use serde::de::DeserializeOwned;
use serde_norway::{Mapping, Value};
use std::collections::BTreeSet;


pub use hafen_api::Issue;

/// Collector of issues for one file.
pub struct Issues {
    file: String,
    positions: Positions,
    pub list: Vec<Issue>,
}

impl Issues {
    pub fn new(file: impl Into<String>, src: &str) -> Issues {
        Issues { file: file.into(), positions: Positions::index(src), list: Vec::new() }
    }

    pub fn push(&mut self, path: &str, message: impl Into<String>) {
        let line = self.positions.line(path);
        self.list.push(Issue {
            file: self.file.clone(),
            line,
            path: if path.is_empty() { t!("v.path_top").to_string() } else { path.to_string() },
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The issues in file order (unknown fields are found last but belong where they are).
    pub fn into_sorted(mut self) -> Vec<Issue> {
        self.list.sort_by_key(|i| i.line.unwrap_or(0));
        self.list
    }
}

/// Parses YAML text into a value, reporting a syntax error as an issue with its line.
pub fn parse_yaml(file: &str, src: &str) -> Result<Value, Vec<Issue>> {
    serde_norway::from_str::<Value>(src).map_err(|e| {
        vec![Issue {
            file: file.to_string(),
            line: e.location().map(|l| l.line()),
            path: t!("v.path_syntax").to_string(),
            message: t!("v.yaml", e = e.to_string()).to_string(),
        }]
    })
}

pub fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A mapping being decoded field by field; `finish` reports the fields nobody asked for.
pub struct Obj<'a> {
    map: &'a Mapping,
    pub path: String,
    seen: BTreeSet<String>,
}

impl<'a> Obj<'a> {
    /// `None` (and an issue) when `v` is not a mapping.
    pub fn new(v: &'a Value, path: &str, issues: &mut Issues) -> Option<Obj<'a>> {
        match v {
            Value::Mapping(map) => Some(Obj { map, path: path.to_string(), seen: BTreeSet::new() }),
            Value::Null => None,
            other => {
                issues.push(path, t!("v.want_map", found = kind(other)).to_string());
                None
            }
        }
    }

    /// The raw value of `key`, marking it as known.
    pub fn raw(&mut self, key: &str) -> Option<&'a Value> {
        self.seen.insert(key.to_string());
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn path_of(&self, key: &str) -> String {
        child(&self.path, key)
    }

    /// Optional typed field; a value of the wrong type is an issue.
    pub fn opt<T: DeserializeOwned>(&mut self, key: &str, issues: &mut Issues) -> Option<T> {
        let v = self.raw(key)?;
        match serde_norway::from_value::<T>(v.clone()) {
            Ok(t) => Some(t),
            Err(e) => {
                issues.push(&self.path_of(key), t!("v.invalid", e = clean(&e.to_string())).to_string());
                None
            }
        }
    }

    /// Required typed field.
    pub fn req<T: DeserializeOwned>(&mut self, key: &str, issues: &mut Issues) -> Option<T> {
        if self.raw(key).is_none() {
            issues.push(&self.path, t!("v.missing", key = key).to_string());
            return None;
        }
        self.opt(key, issues)
    }

    /// Keys of the mapping, as strings.
    pub fn keys(&self) -> Vec<String> {
        self.map.keys().map(key_str).collect()
    }

    /// Reports every key that was never asked for, with a suggestion when one is close.
    pub fn finish(self, issues: &mut Issues) {
        for k in self.map.keys() {
            let k = key_str(k);
            if !self.seen.contains(&k) {
                let hint = suggest(&k, self.seen.iter().map(String::as_str))
                    .map(|s| t!("v.did_you_mean", s = s).to_string())
                    .unwrap_or_default();
                let known: Vec<&str> = self.seen.iter().map(String::as_str).collect();
                issues.push(
                    &child(&self.path, &k),
                    t!("v.unknown", k = k, hint = hint, known = known.join(", ")).to_string(),
                );
            }
        }
    }
}

pub fn key_str(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_norway::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

/// What kind of value `v` is, in words (`a list`), for messages.
pub fn kind(v: &Value) -> String {
    let key = match v {
        Value::Null => "v.kind.null",
        Value::Bool(_) => "v.kind.bool",
        Value::Number(_) => "v.kind.number",
        Value::String(_) => "v.kind.string",
        Value::Sequence(_) => "v.kind.list",
        Value::Mapping(_) => "v.kind.mapping",
        Value::Tagged(_) => "v.kind.tagged",
    };
    t!(key).to_string()
}

/// Iterates a mapping's entries as (key, value, path).
pub fn entries<'a>(v: &'a Value, path: &str, issues: &mut Issues) -> Vec<(String, &'a Value, String)> {
    match v {
        Value::Mapping(m) => m.iter().map(|(k, v)| (key_str(k), v, child(path, &key_str(k)))).collect(),
        Value::Null => Vec::new(),
        other => {
            issues.push(path, t!("v.want_map", found = kind(other)).to_string());
            Vec::new()
        }
    }
}

/// Iterates a list's items as (value, path).
pub fn items<'a>(v: &'a Value, path: &str, issues: &mut Issues) -> Vec<(&'a Value, String)> {
    match v {
        Value::Sequence(s) => s.iter().enumerate().map(|(i, v)| (v, format!("{path}[{i}]"))).collect(),
        Value::Null => Vec::new(),
        other => {
            issues.push(path, t!("v.want_list", found = kind(other)).to_string());
            Vec::new()
        }
    }
}

/// A scalar as text (numbers and booleans are accepted where Compose accepts them).
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn clean(msg: &str) -> String {
    msg.split(" at line ").next().unwrap_or(msg).to_string()
}

fn suggest<'a>(k: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known.filter(|c| edit_distance(k, c) <= 2).min_by_key(|c| edit_distance(k, c))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The longest duration any setting takes: 100 years. Longer is a typo, and would overflow
/// where it becomes a date.
pub const MAX_DURATION_SECS: u64 = 100 * 366 * 86_400;

/// Parses `10s`, `500ms`, `5m`, `2h`, `1d` into a duration (at most `MAX_DURATION_SECS`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| t!("v.duration", s = s).to_string())?;
    let too_large = || t!("v.too_large", s = s).to_string();
    let d = match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" | "" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n.checked_mul(60).ok_or_else(too_large)?),
        "h" => std::time::Duration::from_secs(n.checked_mul(3600).ok_or_else(too_large)?),
        "d" => std::time::Duration::from_secs(n.checked_mul(86_400).ok_or_else(too_large)?),
        _ => return Err(t!("v.duration_unit", s = s, unit = unit).to_string()),
    };
    if d.as_secs() > MAX_DURATION_SECS {
        return Err(too_large());
    }
    Ok(d)
}

/// Parses a Compose-style size (`512m`, `1g`, `1048576`) into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| t!("v.size", s = s).to_string())?;
    let mult: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(t!("v.size_unit", s = s, unit = unit).to_string()),
    };
    n.checked_mul(mult).ok_or_else(|| t!("v.too_large", s = s).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("2gib").unwrap(), 2 << 30);
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("2m").unwrap().as_secs(), 120);
        assert_eq!(parse_duration("250ms").unwrap().as_millis(), 250);
        assert!(parse_duration("5 weeks").is_err());
        // Found by cargo-afl (tests/fuzz): these overflowed (a panic in debug builds, a wrong
        // value in release builds).
        for big in ["213503982334602d", "5124095576030432h", "307445734561825861m", "36700d", "18446744073709551615ms"] {
            assert!(parse_duration(big).unwrap_err().contains("too large"), "{big}");
        }
        assert_eq!(parse_duration("36500d").unwrap().as_secs(), 36_500 * 86_400);
    }

    #[test]
    fn typo_suggestion() {
        assert_eq!(suggest("imgae", ["image", "command"].into_iter()), Some("image"));
        assert_eq!(suggest("zzzzzz", ["image"].into_iter()), None);
    }
}
