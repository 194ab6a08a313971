//! Label and field selectors, parsed and matched with the grammar and semantics of
//! `k8s.io/apimachinery/pkg/labels` and `pkg/fields`: `a=b`, `a==b`, `a!=b`, `a`, `!a`,
//! `a in (x,y)`, `a notin (x)`, `a>1`, `a<1` for labels; `f=v`, `f==v`, `f!=v` for fields
//! (with backslash escapes). Bad input is an error (the caller answers 400), never a panic.

use serde_json::Value;

/// One label requirement.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Exists(String),
    DoesNotExist(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Greater(String, i64),
    Less(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => s.clone(),
            Token::Bang => "!".into(),
            Token::Eq => "=".into(),
            Token::DoubleEq => "==".into(),
            Token::NotEq => "!=".into(),
            Token::Gt => ">".into(),
            Token::Lt => "<".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
            Token::End => "".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '>' | '<' | '(' | ')' | ',')
}

fn tokenize(input: &str) -> Vec<Token> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        i += 1;
        match c {
            c if c.is_whitespace() => {}
            '!' if next == Some('=') => {
                out.push(Token::NotEq);
                i += 1;
            }
            '!' => out.push(Token::Bang),
            '=' if next == Some('=') => {
                out.push(Token::DoubleEq);
                i += 1;
            }
            '=' => out.push(Token::Eq),
            '>' => out.push(Token::Gt),
            '<' => out.push(Token::Lt),
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            ',' => out.push(Token::Comma),
            c => {
                let mut ident = String::from(c);
                while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                    ident.push(chars[i]);
                    i += 1;
                }
                out.push(Token::Ident(ident));
            }
        }
    }
    out.push(Token::End);
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if *self.peek() == Token::Bang {
            self.next();
            let key = self.key()?;
            return Ok(Requirement::DoesNotExist(key));
        }
        let key = self.key()?;
        match self.peek().clone() {
            Token::Comma | Token::End => Ok(Requirement::Exists(key)),
            Token::Eq | Token::DoubleEq => {
                self.next();
                Ok(Requirement::Equals(key, self.value()?))
            }
            Token::NotEq => {
                self.next();
                Ok(Requirement::NotEquals(key, self.value()?))
            }
            Token::Gt | Token::Lt => {
                let greater = self.next() == Token::Gt;
                let raw = self.value()?;
                let n: i64 = raw.parse().map_err(|_| {
                    format!("for 'Gt', 'Lt' operators, the value must be an integer, got {raw:?}")
                })?;
                Ok(if greater {
                    Requirement::Greater(key, n)
                } else {
                    Requirement::Less(key, n)
                })
            }
            Token::Ident(word) if word == "in" || word == "notin" => {
                self.next();
                let values = self.value_set()?;
                Ok(if word == "in" {
                    Requirement::In(key, values)
                } else {
                    Requirement::NotIn(key, values)
                })
            }
            other => Err(format!(
                "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                other.describe()
            )),
        }
    }

    fn key(&mut self) -> Result<String, String> {
        match self.next() {
            Token::Ident(k) => {
                validate_key(&k)?;
                Ok(k)
            }
            other => Err(format!(
                "found '{}', expected: identifier",
                other.describe()
            )),
        }
    }

    fn value(&mut self) -> Result<String, String> {
        match self.peek().clone() {
            Token::Ident(v) => {
                self.next();
                validate_value(&v)?;
                Ok(v)
            }
            Token::Comma | Token::End => Ok(String::new()),
            other => Err(format!(
                "found '{}', expected: identifier",
                other.describe()
            )),
        }
    }

    fn value_set(&mut self) -> Result<Vec<String>, String> {
        if self.next() != Token::Open {
            return Err("found '', expected: '('".into());
        }
        let mut values = Vec::new();
        loop {
            match self.next() {
                Token::Ident(v) => {
                    validate_value(&v)?;
                    values.push(v);
                    match self.next() {
                        Token::Comma => continue,
                        Token::Close => break,
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or ')'",
                                other.describe()
                            ));
                        }
                    }
                }
                Token::Close if values.is_empty() => {
                    return Err("for 'in', 'notin' operators, values set can't be empty".into());
                }
                Token::Comma => values.push(String::new()),
                other => {
                    return Err(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        other.describe()
                    ));
                }
            }
        }
        Ok(values)
    }
}

fn validate_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    if prefix_ok && validate_name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid label key {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || validate_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value: {value:?}: at key: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

impl LabelSelector {
    /// Parses a `labelSelector` query value. The message of an error is what the apiserver
    /// puts in its 400 `Status`.
    pub fn parse(input: &str) -> Result<Self, String> {
        let mut parser = Parser {
            tokens: tokenize(input),
            pos: 0,
        };
        let mut requirements = Vec::new();
        if *parser.peek() == Token::End {
            return Ok(Self::default());
        }
        loop {
            requirements.push(
                parser
                    .requirement()
                    .map_err(|e| format!("unable to parse requirement: {e}"))?,
            );
            match parser.next() {
                Token::End => break,
                Token::Comma => continue,
                other => {
                    return Err(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        other.describe()
                    ));
                }
            }
        }
        Ok(Self { requirements })
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &serde_json::Map<String, Value>) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Greater(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Requirement::Less(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }

    /// Whether the object's `metadata.labels` are selected.
    pub fn matches_object(&self, object: &Value) -> bool {
        if self.requirements.is_empty() {
            return true;
        }
        let empty = serde_json::Map::new();
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.matches(labels)
    }
}

/// One field requirement: `field=value` or `field!=value`.
#[derive(Debug, Clone, PartialEq)]
struct FieldRequirement {
    field: String,
    value: String,
    equal: bool,
}

/// A parsed field selector over the fields a resource supports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Fields every resource can be selected by.
const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// Extra fields a resource supports (as its registry strategy's `GetAttrs` lists them).
fn extra_fields(plural: &str) -> &'static [&'static str] {
    match plural {
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "namespaces" => &["status.phase"],
        "nodes" => &["spec.unschedulable"],
        "services" => &["spec.clusterIP", "spec.type"],
        "events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        _ => &[],
    }
}

/// Splits on `sep` where it is not escaped by a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if let Some(last) = parts.last_mut() {
                last.push('\\');
                last.push(c);
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(String::new());
        } else if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{e}"
                    ));
                }
                None => {
                    return Err("invalid field selector: invalid trailing escape sequence".into());
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// Parses a `fieldSelector` for the resource with this plural name.
    pub fn parse(input: &str, plural: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(Self::default());
        }
        for part in split_unescaped(input, ',') {
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                ));
            };
            let field = field.trim().to_string();
            if !COMMON_FIELDS.contains(&field.as_str())
                && !extra_fields(plural).contains(&field.as_str())
            {
                return Err(format!("field label not supported: {field}"));
            }
            requirements.push(FieldRequirement {
                field,
                value: unescape(value)?,
                equal,
            });
        }
        Ok(Self { requirements })
    }

    /// Whether the object is selected.
    pub fn matches_object(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let pointer = match r.field.as_str() {
                // The event's `source` field selects on the reporting component.
                "source" => "/source/component".to_string(),
                "reportingComponent" => "/reportingController".to_string(),
                f => format!("/{}", f.replace('.', "/")),
            };
            let actual = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == r.value) == r.equal
        })
    }

    /// The name the selector pins with `metadata.name=…`, if any.
    pub fn pinned_name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.equal && r.field == "metadata.name")
            .map(|r| r.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn equality_and_inequality_follow_kubernetes_semantics() {
        let l = labels(json!({"app": "kubia", "tier": "web"}));
        assert!(LabelSelector::parse("app=kubia").unwrap().matches(&l));
        assert!(
            LabelSelector::parse("app==kubia,tier=web")
                .unwrap()
                .matches(&l)
        );
        assert!(!LabelSelector::parse("app!=kubia").unwrap().matches(&l));
        // `!=` selects objects without the label.
        assert!(LabelSelector::parse("env!=prod").unwrap().matches(&l));
    }

    #[test]
    fn set_based_requirements() {
        let l = labels(json!({"app": "kubia"}));
        assert!(
            LabelSelector::parse("app in (kubia, other)")
                .unwrap()
                .matches(&l)
        );
        assert!(
            !LabelSelector::parse("app notin (kubia)")
                .unwrap()
                .matches(&l)
        );
        assert!(
            LabelSelector::parse("env notin (prod)")
                .unwrap()
                .matches(&l)
        );
        assert!(LabelSelector::parse("app").unwrap().matches(&l));
        assert!(!LabelSelector::parse("!app").unwrap().matches(&l));
        assert!(LabelSelector::parse("!env,app").unwrap().matches(&l));
    }

    #[test]
    fn numeric_comparisons() {
        let l = labels(json!({"rank": "5"}));
        assert!(LabelSelector::parse("rank>3").unwrap().matches(&l));
        assert!(!LabelSelector::parse("rank<3").unwrap().matches(&l));
        assert!(LabelSelector::parse("rank>x").is_err());
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(
            LabelSelector::parse("")
                .unwrap()
                .matches(&labels(json!({})))
        );
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for bad in [
            "app in",
            "app in (",
            "app in ()",
            "=x",
            "app=a b",
            "a b",
            "!",
            "app=(x)",
            "-bad=x",
            "a,,b",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn field_selectors_match_pod_fields() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Running"}, "spec": {}});
        let fs = FieldSelector::parse("status.phase=Running,metadata.name=a", "pods").unwrap();
        assert!(fs.matches_object(&pod));
        assert_eq!(fs.pinned_name(), Some("a"));
        assert!(
            !FieldSelector::parse("status.phase!=Running", "pods")
                .unwrap()
                .matches_object(&pod)
        );
        assert!(
            FieldSelector::parse("spec.nodeName=", "pods")
                .unwrap()
                .matches_object(&pod)
        );
        assert!(FieldSelector::parse("status.phase=Running", "services").is_err());
        assert!(FieldSelector::parse("nonsense", "pods").is_err());
    }

    #[test]
    fn field_selector_values_may_escape_commas() {
        let obj = json!({"metadata": {"name": "a,b"}});
        let fs = FieldSelector::parse(r"metadata.name=a\,b", "pods").unwrap();
        assert!(fs.matches_object(&obj));
    }
}
