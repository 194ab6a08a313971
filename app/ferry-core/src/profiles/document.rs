//! Reading a profile file's text into a [`Document`], keeping every usable entry and saying
//! precisely (file, line, column, why) what could not be used.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::migrate::migrate;
use super::model::{CURRENT_VERSION, Cluster, Document, Profile};

/// Something in a file that Ferry could not use. Shown to people as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// 1-based; `None` when the position is not known (e.g. after migrating an old file).
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let (Some(line), Some(col)) = (self.line, self.column) {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What reading a file produced.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Everything that could be read (all of it when `problems` is empty).
    pub document: Document,
    pub problems: Vec<Problem>,
    /// The file has errors: writing it back would lose what could not be read, so it must not be.
    pub damaged: bool,
    /// The file's version when it is newer than this Ferry knows (then it is read-only).
    pub newer_version: Option<u32>,
    /// The file's version when it was older and has been migrated in memory.
    pub migrated_from: Option<u32>,
}

/// Reads a file's raw bytes; text that is not UTF-8 is reported (and the file left alone).
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Parsed {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(path, text),
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let (line, column) = line_col(valid, valid.len());
            Parsed {
                problems: vec![Problem {
                    path: path.to_path_buf(),
                    line: Some(line),
                    column: Some(column),
                    message: "the file is not UTF-8 text (is it a profile file?)".into(),
                }],
                damaged: true,
                ..Parsed::default()
            }
        }
    }
}

/// Reads `text` (the contents of `path`, which is used only in messages).
pub fn parse(path: &Path, text: &str) -> Parsed {
    let problem = |line_col: Option<(usize, usize)>, message: String| Problem {
        path: path.to_path_buf(),
        line: line_col.map(|lc| lc.0),
        column: line_col.map(|lc| lc.1),
        message,
    };
    let table: Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let at = e.span().map(|s| line_col(text, s.start));
            return Parsed {
                problems: vec![problem(at, first_line(e.message()))],
                damaged: true,
                ..Parsed::default()
            };
        }
    };
    let version = match table.get("version") {
        None => 0,
        Some(Value::Integer(v)) if *v >= 0 => u32::try_from(*v).unwrap_or(u32::MAX),
        Some(_) => {
            let mut parsed = lenient(&table, |m| problem(None, m));
            parsed.problems.insert(
                0,
                problem(None, "`version` must be a whole number such as 1".into()),
            );
            parsed.damaged = true;
            return parsed;
        }
    };
    if version > CURRENT_VERSION {
        let mut parsed = lenient(&table, |m| problem(None, m));
        parsed.newer_version = Some(version);
        return parsed;
    }
    let strict = if version == CURRENT_VERSION {
        toml::from_str::<Document>(text).map_err(|e| {
            let message = first_line(e.message());
            let at = e
                .span()
                .map(|s| line_col(text, pinpoint(text, s.start, &message)));
            problem(at, message)
        })
    } else {
        Value::Table(migrate(table.clone(), version))
            .try_into::<Document>()
            .map_err(|e| {
                problem(
                    None,
                    format!(
                        "after upgrading from version {version}: {}",
                        first_line(e.message())
                    ),
                )
            })
    };
    let mut parsed = match strict {
        Ok(document) => Parsed {
            document,
            ..Parsed::default()
        },
        Err(p) => {
            let source = if version == CURRENT_VERSION {
                table
            } else {
                migrate(table, version)
            };
            let mut parsed = lenient(&source, |m| problem(None, m));
            parsed.problems.insert(0, p);
            parsed.damaged = true;
            parsed
        }
    };
    if version < CURRENT_VERSION {
        parsed.migrated_from = Some(version);
    }
    check_unique_names(&mut parsed, |name, m| {
        problem(second_name_line(text, name).map(|at| line_col(text, at)), m)
    });
    parsed
}

/// Reads entry by entry, skipping (and reporting) the ones that do not fit.
fn lenient(table: &Table, problem: impl Fn(String) -> Problem) -> Parsed {
    let mut parsed = Parsed::default();
    for (key, value) in table {
        match key.as_str() {
            "version" => {}
            "profile" => {
                parsed.document.profiles =
                    entries::<Profile>(value, "profile", &mut parsed.problems, &problem)
            }
            "cluster" => {
                parsed.document.clusters =
                    entries::<Cluster>(value, "cluster", &mut parsed.problems, &problem)
            }
            _ => {
                parsed.document.extra.insert(key.clone(), value.clone());
            }
        }
    }
    parsed
}

fn entries<T: serde::de::DeserializeOwned>(
    value: &Value,
    kind: &str,
    problems: &mut Vec<Problem>,
    problem: &impl Fn(String) -> Problem,
) -> Vec<T> {
    let Value::Array(items) = value else {
        problems.push(problem(format!(
            "`{kind}` must be a list of [[{kind}]] tables"
        )));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.clone().try_into::<T>() {
            Ok(t) => out.push(t),
            Err(e) => {
                let name = item
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("(no name)");
                problems.push(problem(format!(
                    "{kind} #{} \"{name}\" was skipped: {}",
                    i + 1,
                    first_line(e.message())
                )));
            }
        }
    }
    out
}

/// Two entries with one name would make edits ambiguous; keep the first and refuse writes.
fn check_unique_names(parsed: &mut Parsed, problem: impl Fn(&str, String) -> Problem) {
    let mut seen = HashSet::new();
    let mut dupes = Vec::new();
    parsed.document.profiles.retain(|p| {
        let fresh = seen.insert(p.name.clone());
        if !fresh {
            dupes.push((
                p.name.clone(),
                format!("two profiles are named \"{}\"; rename one", p.name),
            ));
        }
        fresh
    });
    let mut seen = HashSet::new();
    parsed.document.clusters.retain(|c| {
        let fresh = seen.insert(c.name.clone());
        if !fresh {
            dupes.push((
                c.name.clone(),
                format!("two clusters are named \"{}\"; rename one", c.name),
            ));
        }
        fresh
    });
    if !dupes.is_empty() {
        parsed.damaged = true;
        parsed
            .problems
            .extend(dupes.into_iter().map(|(name, m)| problem(&name, m)));
    }
}

/// Errors inside a tunnel are reported by toml at the start of its table (the struct is read
/// through `flatten`). When the message quotes the offending value, point at that value within
/// the same table instead, so the person lands on the right line.
fn pinpoint(text: &str, start: usize, message: &str) -> usize {
    let Some(quoted) = message.split('"').nth(1).filter(|q| !q.is_empty()) else {
        return start;
    };
    let Some(table) = text.get(start..) else {
        return start;
    };
    // The table ends where the next header starts.
    let end = table
        .match_indices("\n[")
        .map(|(i, _)| i)
        .find(|&i| i > 0)
        .unwrap_or(table.len());
    let needle = format!("\"{quoted}\"");
    table[..end].find(&needle).map_or(start, |i| start + i + 1)
}

/// Where the second `name = "NAME"` line is (the duplicate), if it is written that simply.
fn second_name_line(text: &str, name: &str) -> Option<usize> {
    let needle = format!("\"{name}\"");
    text.match_indices(&needle)
        .filter(|(i, _)| {
            let line_start = text[..*i].rfind('\n').map_or(0, |n| n + 1);
            let before = text[line_start..*i].trim();
            before.starts_with("name") && before.ends_with('=')
        })
        .nth(1)
        .map(|(i, _)| i)
}

/// 1-based line and column (in characters) of byte offset `at`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}
