//! Who may do what: bearer-token authentication and a small fixed RBAC.
//!
//! Three users exist, with tokens drawn at random on every start (so no token is ever valid
//! twice, and none is written anywhere but the 0600 kubeconfig):
//! - `admin` may do everything;
//! - `restricted` may use the `default` namespace only (so listing namespaces or pods
//!   cluster-wide is forbidden, as for a user with a namespaced RoleBinding);
//! - `viewer` may only read (`get`, `list`, `watch`), and may not open `pods/exec`,
//!   `pods/portforward` or `pods/attach`, which need `create`.

use std::collections::HashMap;

use crate::api::status::ApiError;
use crate::resources::Resource;

/// The simulated users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum User {
    Admin,
    Restricted,
    Viewer,
}

impl User {
    /// Every user, in kubeconfig order.
    pub const ALL: [User; 3] = [User::Admin, User::Restricted, User::Viewer];

    /// The user name as RBAC messages and the kubeconfig show it.
    pub fn name(self) -> &'static str {
        match self {
            User::Admin => "admin",
            User::Restricted => "restricted",
            User::Viewer => "viewer",
        }
    }

    /// The user with this name.
    pub fn from_name(name: &str) -> Option<User> {
        User::ALL.into_iter().find(|u| u.name() == name)
    }
}

/// The namespace the `restricted` user may use.
pub const RESTRICTED_NAMESPACE: &str = "default";

/// The bearer tokens of one kubesim process.
#[derive(Clone)]
pub struct Tokens {
    by_token: HashMap<String, User>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets themselves.
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Tokens {
    /// Fresh random tokens for every user.
    pub fn generate() -> Self {
        let by_token = User::ALL.into_iter().map(|u| (random_token(), u)).collect();
        Self { by_token }
    }

    /// The token of `user`.
    pub fn token(&self, user: User) -> &str {
        self.by_token
            .iter()
            .find(|(_, u)| **u == user)
            .map(|(t, _)| t.as_str())
            .unwrap_or_default()
    }

    /// The user a request authenticates as, from its `Authorization` header value.
    /// `None` for a missing, malformed or unknown token (the caller answers 401).
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<User> {
        let value = authorization?.trim();
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.by_token.get(token.trim()).copied()
    }
}

fn random_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let body: String = (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("kubesim-{body}")
}

/// One request as RBAC sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'a str,
    pub resource: &'a Resource,
    pub subresource: Option<&'a str>,
    /// `None` for cluster-scoped requests (and cluster-wide lists).
    pub namespace: Option<&'a str>,
    /// Empty for collection requests.
    pub name: &'a str,
}

/// Whether `user` may do what `attrs` describe (for access reviews).
pub fn allowed(user: User, attrs: &Attributes<'_>) -> bool {
    authorize(user, attrs).is_ok()
}

/// Decides whether `user` may do what `attrs` describe; the error is the 403 a real RBAC
/// authorizer gives, worded the same way.
pub fn authorize(user: User, attrs: &Attributes<'_>) -> Result<(), ApiError> {
    // Every authenticated user may ask what they may do (`system:basic-user`).
    if crate::resources::is_review(attrs.resource.plural) {
        return Ok(());
    }
    let allowed = match user {
        User::Admin => true,
        // Like the built-in `view` role: no secrets.
        User::Viewer => {
            matches!(attrs.verb, "get" | "list" | "watch")
                && attrs.resource.plural != "secrets"
                && !matches!(attrs.subresource, Some("exec" | "portforward" | "attach"))
        }
        User::Restricted => match (attrs.resource.namespaced, attrs.namespace) {
            (true, Some(ns)) => ns == RESTRICTED_NAMESPACE,
            (true, None) => false,
            // A namespaced user may read its own Namespace object, nothing else cluster-wide.
            (false, _) => {
                attrs.resource.plural == "namespaces"
                    && attrs.name == RESTRICTED_NAMESPACE
                    && attrs.verb == "get"
            }
        },
    };
    if allowed {
        return Ok(());
    }
    let resource = match attrs.subresource {
        Some(sub) => format!("{}/{sub}", attrs.resource.plural),
        None => attrs.resource.plural.to_string(),
    };
    let scope = match attrs.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let message = format!(
        "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.name(),
        attrs.verb,
        attrs.resource.group
    );
    Err(ApiError::forbidden(attrs.resource, attrs.name, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_plural;

    fn attrs<'a>(
        verb: &'a str,
        plural: &str,
        sub: Option<&'a str>,
        ns: Option<&'a str>,
        name: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            resource: by_plural(plural).expect("known resource"),
            subresource: sub,
            namespace: ns,
            name,
        }
    }

    #[test]
    fn viewer_cannot_port_forward_with_the_real_message() {
        let err = authorize(
            User::Viewer,
            &attrs("create", "pods", Some("portforward"), Some("default"), "x"),
        )
        .unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "pods \"x\" is forbidden: User \"viewer\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"default\""
        );
        assert!(
            authorize(
                User::Viewer,
                &attrs("list", "pods", None, Some("default"), "")
            )
            .is_ok()
        );
        assert!(
            authorize(
                User::Viewer,
                &attrs("get", "pods", Some("log"), Some("default"), "x")
            )
            .is_ok()
        );
        // The built-in `view` role does not include secrets.
        let secrets = attrs("list", "secrets", None, Some("default"), "");
        assert!(authorize(User::Viewer, &secrets).is_err());
        assert!(authorize(User::Admin, &secrets).is_ok());
    }

    #[test]
    fn restricted_is_confined_to_its_namespace() {
        assert!(
            authorize(
                User::Restricted,
                &attrs("list", "pods", None, Some("default"), "")
            )
            .is_ok()
        );
        let err = authorize(
            User::Restricted,
            &attrs("list", "namespaces", None, None, ""),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "namespaces is forbidden: User \"restricted\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
        );
        assert!(
            authorize(
                User::Restricted,
                &attrs("list", "pods", None, Some("other"), "")
            )
            .is_err()
        );
        assert!(authorize(User::Restricted, &attrs("list", "pods", None, None, "")).is_err());
    }

    #[test]
    fn tokens_authenticate_only_as_bearer() {
        let tokens = Tokens::generate();
        let admin = tokens.token(User::Admin).to_string();
        assert_eq!(
            tokens.authenticate(Some(&format!("Bearer {admin}"))),
            Some(User::Admin)
        );
        assert_eq!(tokens.authenticate(Some(&format!("Basic {admin}"))), None);
        assert_eq!(tokens.authenticate(Some("Bearer nope")), None);
        assert_eq!(tokens.authenticate(None), None);
        assert_ne!(Tokens::generate().token(User::Admin), admin);
    }
}
