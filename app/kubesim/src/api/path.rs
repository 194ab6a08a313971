//! Turns a request path into what it addresses: a discovery document, or a resource
//! collection / object / subresource. Pure string work, unit-tested; the handlers never look at
//! raw paths.

use crate::resources::{self, Resource};

/// What a resource path addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourcePath {
    pub resource: &'static Resource,
    /// Set for namespaced requests (`/namespaces/{ns}/...`); `None` for cluster-scoped
    /// resources and for cluster-wide lists of namespaced ones.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Every kind of path the server answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Version,
    Health(&'static str),
    OpenApi,
    /// `/api`
    CoreVersions,
    /// `/api/v1`
    CoreResources,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/apis/{group}/{version}`
    GroupResources(String, String),
    Resource(ResourcePath),
    /// A path under a served API prefix that names nothing we serve (a 404 `Status`).
    UnknownResource,
    /// Anything else (a plain-text 404 like the real server's).
    NotFound,
}

/// Parses a request path (without the query).
pub fn parse(path: &str) -> Route {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] => Route::Health("healthz"),
        ["livez"] => Route::Health("livez"),
        ["readyz"] => Route::Health("readyz"),
        ["healthz" | "livez" | "readyz", ..] => Route::Health("check"),
        ["openapi", ..] => Route::OpenApi,
        ["api"] => Route::CoreVersions,
        ["api", "v1"] => Route::CoreResources,
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["api", ..] => Route::UnknownResource,
        ["apis"] => Route::Groups,
        ["apis", group] => {
            if resources::groups().contains(group) && !group.is_empty() {
                Route::Group((*group).to_string())
            } else {
                Route::UnknownResource
            }
        }
        ["apis", group, version] => {
            if resources::serves_group_version(group, version) {
                Route::GroupResources((*group).to_string(), (*version).to_string())
            } else {
                Route::UnknownResource
            }
        }
        ["apis", group, version, rest @ ..] => {
            if resources::serves_group_version(group, version) && !group.is_empty() {
                resource_route(group, version, rest)
            } else {
                Route::UnknownResource
            }
        }
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let find = |plural: &str| resources::find(group, version, plural);
    let path =
        |resource: &'static Resource, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
            if sub.is_some_and(|s| resource.subresource(s).is_none()) {
                return Route::UnknownResource;
            }
            Route::Resource(ResourcePath {
                resource,
                namespace: ns.map(str::to_string),
                name: name.map(str::to_string),
                subresource: sub.map(str::to_string),
            })
        };
    match rest {
        // /namespaces/{ns}/{plural}[/{name}[/{sub}]] for namespaced resources.
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|r| r.namespaced) => {
            let Some(r) = find(plural) else {
                return Route::UnknownResource;
            };
            match tail {
                [] => path(r, Some(ns), None, None),
                [name] => path(r, Some(ns), Some(name), None),
                [name, sub] => path(r, Some(ns), Some(name), Some(sub)),
                _ => Route::UnknownResource,
            }
        }
        [plural, tail @ ..] => {
            let Some(r) = find(plural) else {
                return Route::UnknownResource;
            };
            match (r.namespaced, tail) {
                // Cluster-wide list/watch of a namespaced resource.
                (true, []) => path(r, None, None, None),
                (false, []) => path(r, None, None, None),
                (false, [name]) => path(r, None, Some(name), None),
                (false, [name, sub]) => path(r, None, Some(name), Some(sub)),
                _ => Route::UnknownResource,
            }
        }
        [] => Route::UnknownResource,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(route: Route) -> ResourcePath {
        match route {
            Route::Resource(r) => r,
            other => panic!("expected a resource route, got {other:?}"),
        }
    }

    #[test]
    fn namespaced_paths() {
        let r = res(parse("/api/v1/namespaces/default/pods/web-1/portforward"));
        assert_eq!(r.resource.plural, "pods");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web-1"));
        assert_eq!(r.subresource.as_deref(), Some("portforward"));
        let r = res(parse("/apis/apps/v1/namespaces/x/deployments"));
        assert_eq!(r.resource.kind, "Deployment");
        assert_eq!(r.name, None);
    }

    #[test]
    fn cluster_paths() {
        let r = res(parse("/api/v1/pods"));
        assert_eq!((r.resource.plural, r.namespace), ("pods", None));
        let r = res(parse("/api/v1/namespaces/default"));
        assert_eq!(r.resource.plural, "namespaces");
        assert_eq!(r.name.as_deref(), Some("default"));
        let r = res(parse("/api/v1/namespaces"));
        assert_eq!(r.name, None);
        let r = res(parse("/api/v1/nodes/n1/status"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
    }

    #[test]
    fn unknown_things() {
        assert_eq!(parse("/api/v1/foos"), Route::UnknownResource);
        assert_eq!(
            parse("/api/v1/namespaces/default/foos"),
            Route::UnknownResource
        );
        assert_eq!(parse("/apis/apps/v2/deployments"), Route::UnknownResource);
        assert_eq!(parse("/apis/nope/v1"), Route::UnknownResource);
        assert_eq!(parse("/api/v1/pods/x"), Route::UnknownResource);
        assert_eq!(parse("/nothing"), Route::NotFound);
        assert_eq!(parse("/apis/apps"), Route::Group("apps".into()));
    }
}
