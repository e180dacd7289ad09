//! Maps field paths of a YAML document (`services.db.ports[0]`) to the line they start on, so
//! validation errors can name a line. Owns nothing else: values are decoded by `decode`.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Field path → 1-based line of the key (for mapping entries) or the item (for sequence items).
#[derive(Debug, Default, Clone)]
pub struct Positions {
    lines: HashMap<String, usize>,
}

impl Positions {
    /// Indexes `src`; on a syntax error returns an empty index (the YAML decoder reports the error).
    pub fn index(src: &str) -> Positions {
        let mut rec = Recorder::default();
        let mut parser = Parser::new_from_str(src);
        if parser.load(&mut rec, false).is_err() {
            return Positions::default();
        }
        Positions { lines: rec.lines }
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut p = path.to_string();
        loop {
            if let Some(l) = self.lines.get(&p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
            if p.is_empty() {
                return None;
            }
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, idx: usize },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Recorder {
    /// Path of the node that starts now, recording its line; advances the parent's cursor.
    fn enter_value(&mut self, line: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => {
                let k = key.take()?;
                Some(join(path, &k))
            }
            Some(Frame::Seq { path, idx }) => {
                let p = format!("{path}[{idx}]");
                *idx += 1;
                self.lines.entry(p.clone()).or_insert(line);
                Some(p)
            }
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(value, ..) => {
                // A scalar in key position of a mapping is a key.
                if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                    if key.is_none() {
                        let p = join(path, &value);
                        self.lines.entry(p).or_insert(line);
                        *key = Some(value);
                        return;
                    }
                }
                self.enter_value(line);
            }
            Event::Alias(_) => {
                self.enter_value(line);
            }
            Event::MappingStart(..) => {
                let path = self.enter_value(line).unwrap_or_default();
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.enter_value(line).unwrap_or_default();
                self.stack.push(Frame::Seq { path, idx: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_lines() {
        let src = "id: x\nservices:\n  db:\n    image: a\n    ports:\n      - \"1:2\"\n      - \"3:4\"\n  app:\n    user: \"1\"\n";
        let p = Positions::index(src);
        assert_eq!(p.line("id"), Some(1));
        assert_eq!(p.line("services.db.image"), Some(4));
        assert_eq!(p.line("services.db.ports[1]"), Some(7));
        assert_eq!(p.line("services.app.user"), Some(9));
        assert_eq!(p.line("services.app.nonexistent"), Some(8));
    }
}
