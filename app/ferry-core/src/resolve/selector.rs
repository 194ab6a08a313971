//! Which pods a target stands for: a pod by name, or the pods matching a label selector (the
//! service's `spec.selector`, the deployment's `spec.selector`, or one the user typed in
//! kubectl's syntax: `app=web,tier!=cache,env in (a,b),!legacy`).

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::core::{Expression, Selector, SelectorExt};
use kube::runtime::watcher;

use super::ResolveError;
use crate::spec::Target;

/// The pods a target stands for, in a form both the API server (watch parameters) and Ferry
/// (client-side matching of cached pods) understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodQuery {
    /// Exactly one pod, by name (`pod/NAME`).
    Name(String),
    /// Every pod whose labels match (services, deployments, typed selectors).
    Labels(Selector),
}

impl PodQuery {
    /// Whether a pod belongs to this target.
    pub fn matches(&self, pod: &Pod) -> bool {
        match self {
            PodQuery::Name(name) => pod.metadata.name.as_deref() == Some(name.as_str()),
            PodQuery::Labels(selector) => {
                let empty = Default::default();
                selector.matches(pod.metadata.labels.as_ref().unwrap_or(&empty))
            }
        }
    }

    /// Watch parameters that make the API server send only this target's pods.
    pub fn watcher_config(&self) -> watcher::Config {
        match self {
            PodQuery::Name(name) => {
                watcher::Config::default().fields(&format!("metadata.name={name}"))
            }
            PodQuery::Labels(selector) => watcher::Config::default().labels_from(selector),
        }
    }
}

/// The object a service or deployment target refers to, fetched from the cluster (or the
/// catalog) by the caller.
#[derive(Debug, Clone, Copy)]
pub enum TargetObject<'a> {
    Service(&'a Service),
    Deployment(&'a Deployment),
}

/// The pods a target stands for. `pod/NAME` and typed selectors need no object; services and
/// deployments need theirs (`ResolveError::ObjectNeeded` otherwise). A service without a
/// selector is refused with an explanation.
pub fn target_selector(
    target: &Target,
    object: Option<TargetObject<'_>>,
) -> Result<PodQuery, ResolveError> {
    match (target, object) {
        (Target::Pod(name), _) => Ok(PodQuery::Name(name.clone())),
        (Target::Selector(text), _) => parse_selector(text).map(PodQuery::Labels),
        (Target::Service(_), Some(TargetObject::Service(svc))) => {
            service_selector(svc).map(PodQuery::Labels)
        }
        (Target::Deployment(_), Some(TargetObject::Deployment(dep))) => {
            deployment_selector(dep).map(PodQuery::Labels)
        }
        (other, _) => Err(ResolveError::ObjectNeeded {
            target: other.to_kubectl(),
        }),
    }
}

/// A service's pods. Services without a selector (backed by manual Endpoints, often pointing
/// outside the cluster) are refused: there is no pod to forward to.
pub fn service_selector(svc: &Service) -> Result<Selector, ResolveError> {
    let map = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    if map.is_empty() {
        return Err(ResolveError::ServiceWithoutSelector {
            service: svc.metadata.name.clone().unwrap_or_default(),
        });
    }
    Ok(map.into_iter().collect())
}

/// A deployment's pods (`matchLabels` and `matchExpressions`). An empty selector is refused:
/// it would match every pod in the namespace.
pub fn deployment_selector(dep: &Deployment) -> Result<Selector, ResolveError> {
    let name = dep.metadata.name.clone().unwrap_or_default();
    let bad = |reason: String| ResolveError::DeploymentSelector {
        deployment: name.clone(),
        reason,
    };
    let label_selector = dep.spec.selector.clone();
    let selector = Selector::try_from(label_selector).map_err(|e| bad(e.to_string()))?;
    if selector.selects_all() {
        return Err(bad("it is empty and would match every pod".to_string()));
    }
    Ok(selector)
}

/// Parses a label selector in kubectl's syntax: requirements separated by commas, each one of
/// `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`.
/// Keys and values are checked as Kubernetes checks them. An empty selector is refused.
pub fn parse_selector(text: &str) -> Result<Selector, ResolveError> {
    let bad = |reason: &str| ResolveError::BadSelector {
        selector: text.to_string(),
        reason: reason.to_string(),
    };
    let tokens = tokenize(text);
    if tokens.is_empty() {
        return Err(bad(
            "it is empty; give at least one requirement such as app=web",
        ));
    }
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
    };
    let mut selector = Selector::default();
    loop {
        selector.extend(parser.requirement().map_err(|r| bad(&r))?);
        match parser.next() {
            None => return Ok(selector),
            Some(Token::Comma) => continue,
            Some(other) => return Err(bad(&format!("expected ',' before {}", other.describe()))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Not,
    Eq,
    NotEq,
    Open,
    Close,
    Comma,
    Compare,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("\"{w}\""),
            Token::Not => "'!'".into(),
            Token::Eq => "'='".into(),
            Token::NotEq => "'!='".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Comma => "','".into(),
            Token::Compare => "'<' or '>'".into(),
        }
    }
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '!' | '=' => {
                chars.next();
                let double = chars.next_if_eq(&'=').is_some();
                tokens.push(match (c, double) {
                    ('!', true) => Token::NotEq,
                    ('!', false) => Token::Not,
                    _ => Token::Eq,
                });
            }
            '(' | ')' | ',' | '<' | '>' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    ',' => Token::Comma,
                    _ => Token::Compare,
                });
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "!=(),<>".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    tokens
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn requirement(&mut self) -> Result<Expression, String> {
        match self.next() {
            Some(Token::Not) => Ok(Expression::DoesNotExist(self.key()?)),
            Some(Token::Word(w)) => {
                check_key(&w)?;
                self.operator(w)
            }
            Some(other) => Err(format!("expected a label key, found {}", other.describe())),
            None => Err("expected a label key after ','".into()),
        }
    }

    fn key(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => check_key(&w).map(|()| w),
            Some(other) => Err(format!(
                "expected a label key after '!', found {}",
                other.describe()
            )),
            None => Err("expected a label key after '!'".into()),
        }
    }

    fn operator(&mut self, key: String) -> Result<Expression, String> {
        match self.peek() {
            None | Some(Token::Comma) => Ok(Expression::Exists(key)),
            Some(Token::Eq) => {
                self.pos += 1;
                Ok(Expression::Equal(key, self.value()?))
            }
            Some(Token::NotEq) => {
                self.pos += 1;
                Ok(Expression::NotEqual(key, self.value()?))
            }
            Some(Token::Word(w)) if w == "in" || w == "notin" => {
                let negate = w == "notin";
                self.pos += 1;
                let values = self.set()?;
                Ok(if negate {
                    Expression::NotIn(key, values)
                } else {
                    Expression::In(key, values)
                })
            }
            Some(Token::Compare) => {
                Err("numeric comparisons ('<', '>') are not supported here".into())
            }
            Some(other) => Err(format!(
                "expected '=', '!=', 'in' or 'notin' after \"{key}\", found {}",
                other.describe()
            )),
        }
    }

    /// A value after `=`/`!=`; may be empty (`tier=`), as in Kubernetes.
    fn value(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                check_value(&w).map(|()| w)
            }
            None | Some(Token::Comma) => Ok(String::new()),
            Some(other) => Err(format!("expected a value, found {}", other.describe())),
        }
    }

    fn set(&mut self) -> Result<BTreeSet<String>, String> {
        if self.next() != Some(Token::Open) {
            return Err("expected '(' after 'in'/'notin'".into());
        }
        let mut values = BTreeSet::new();
        loop {
            match self.next() {
                Some(Token::Word(w)) => {
                    check_value(&w)?;
                    values.insert(w);
                    match self.next() {
                        Some(Token::Comma) => continue,
                        Some(Token::Close) => break,
                        _ => return Err("expected ',' or ')' in a value list".into()),
                    }
                }
                Some(Token::Close) if values.is_empty() => break,
                _ => return Err("expected a value or ')' in a value list".into()),
            }
        }
        if values.is_empty() {
            return Err("a value list needs at least one value".into());
        }
        Ok(values)
    }
}

/// A label key: optional DNS-subdomain prefix and '/', then a name of at most 63 characters.
/// `in` and `notin` are operators in the selector grammar (apimachinery's lexer makes them
/// keywords), never keys.
fn check_key(key: &str) -> Result<(), String> {
    if key == "in" || key == "notin" {
        return Err(format!(
            "\"{key}\" is an operator (key in (a,b)), not a label key"
        ));
    }
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(format!(
            "label key prefix \"{prefix}\" must be a DNS subdomain such as example.com"
        ));
    }
    if name.is_empty() || !is_label_value(name) {
        return Err(format!(
            "\"{key}\" is not a valid label key: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), String> {
    if is_label_value(value) {
        Ok(())
    } else {
        Err(format!(
            "\"{value}\" is not a valid label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

/// Empty, or ≤ 63 of `[A-Za-z0-9-_.]` starting and ending alphanumeric.
fn is_label_value(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    let bytes = v.as_bytes();
    v.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b.first().is_some_and(|c| c.is_ascii_alphanumeric())
                && b.last().is_some_and(|c| c.is_ascii_alphanumeric())
        })
}
