//! The stacks directory on disk: reads `stacks/<id>/stack.yaml` files and hands their text to the
//! core's validation (`hafen_core::catalogue`, which owns the format and reads no files itself).
//! Never talks to the engine or the state store.

pub use hafen_core::catalogue::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// All stacks found under a directory, plus the problems of those that did not validate.
#[derive(Debug, Default)]
pub struct Catalogue {
    pub dir: PathBuf,
    pub stacks: BTreeMap<String, StackDef>,
    pub issues: Vec<Issue>,
}

impl Catalogue {
    /// Loads `<dir>/*/stack.yaml`. A missing directory is an empty catalogue with one issue.
    pub fn load(dir: &Path) -> Catalogue {
        let mut c = Catalogue { dir: dir.to_path_buf(), ..Default::default() };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                c.issues.push(Issue {
                    file: dir.display().to_string(),
                    line: None,
                    path: "(directory)".into(),
                    message: format!("cannot read the stacks directory: {e}"),
                });
                return c;
            }
        };
        let mut files: Vec<PathBuf> =
            entries.flatten().map(|e| e.path().join("stack.yaml")).filter(|p| p.is_file()).collect();
        files.sort();
        for f in files {
            match load_file(&f) {
                Ok(s) => {
                    c.stacks.insert(s.id.clone(), s);
                }
                Err(mut i) => c.issues.append(&mut i),
            }
        }
        c
    }
}

/// Validates the given files or directories (a directory means every `*/stack.yaml` in it, or
/// its own `stack.yaml`). Returns the stacks that passed and every issue found.
pub fn check_paths(paths: &[PathBuf]) -> (Vec<StackDef>, Vec<Issue>) {
    let mut ok = Vec::new();
    let mut issues = Vec::new();
    for p in paths {
        if p.is_dir() && p.join("stack.yaml").is_file() {
            match load_file(&p.join("stack.yaml")) {
                Ok(s) => ok.push(s),
                Err(mut i) => issues.append(&mut i),
            }
        } else if p.is_dir() {
            let mut c = Catalogue::load(p);
            ok.extend(c.stacks.into_values());
            issues.append(&mut c.issues);
        } else {
            match load_file(p) {
                Ok(s) => ok.push(s),
                Err(mut i) => issues.append(&mut i),
            }
        }
    }
    (ok, issues)
}

/// Reads and validates one stack file.
pub fn load_file(path: &Path) -> Result<StackDef, Vec<Issue>> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        vec![Issue { file: file.clone(), line: None, path: "(file)".into(), message: format!("cannot read: {e}") }]
    })?;
    let dir_id = path.parent().and_then(|p| p.file_name()).map(|s| s.to_string_lossy().to_string());
    load::parse_stack(&file, &src, dir_id.as_deref())
}

