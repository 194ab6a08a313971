//! API discovery documents, as kube-apiserver serves them: `/version`, `/api` (`APIVersions`),
//! `/api/v1` and `/apis/{group}/{version}` (`APIResourceList`), `/apis` (`APIGroupList`) and
//! `/apis/{group}` (`APIGroup`). kubectl learns short names (`po`, `svc`…), verbs, scope and
//! subresources only from here.
//!
//! Only the legacy (unaggregated) format is served. When kubectl asks for aggregated discovery
//! (`Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,…,
//! application/json`) the reply's plain `application/json` content type makes client-go fall
//! back to the legacy documents, as it does against older servers.

use axum::response::Response;
use serde_json::{Value, json};

use crate::api::ok_json;
use crate::resources::{self, RESOURCES};

/// The Kubernetes version kubesim claims to be (the same minor as the kubectl it is tested with).
pub const GIT_VERSION: &str = "v1.32.4";

/// `/version`.
pub fn version() -> Response {
    ok_json(&version_info())
}

/// The `version.Info` document.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "kubesim",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T16:00:00Z",
        "goVersion": "go1.23.8",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions() -> Response {
    ok_json(&json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }))
}

fn group_doc(group: &str) -> Value {
    let versions: Vec<&str> = {
        let mut v: Vec<&str> = RESOURCES
            .iter()
            .filter(|r| r.group == group)
            .map(|r| r.version)
            .collect();
        v.dedup();
        v
    };
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(|v| gv(v)).unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn group_list() -> Response {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(group_doc)
        .collect();
    ok_json(&json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

/// `/apis/{group}`.
pub fn group(group: &str) -> Response {
    let mut doc = group_doc(group);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    ok_json(&doc)
}

/// The `APIResourceList` of one group version.
pub fn resource_list_doc(group: &str, version: &str) -> Value {
    let mut list = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for s in r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if s.group != r.group || s.version != r.version {
                sub["group"] = json!(s.group);
                sub["version"] = json!(s.version);
            }
            list.push(sub);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": list,
    })
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(group: &str, version: &str) -> Response {
    ok_json(&resource_list_doc(group, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_short_names_and_subresources() {
        let doc = resource_list_doc("", "v1");
        let resources = doc["resources"].as_array().unwrap();
        let pods = resources.iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["namespaced"], true);
        assert!(pods["verbs"].as_array().unwrap().contains(&json!("watch")));
        for sub in ["pods/log", "pods/exec", "pods/portforward", "pods/status"] {
            assert!(resources.iter().any(|r| r["name"] == sub), "{sub}");
        }
        let ns = resources
            .iter()
            .find(|r| r["name"] == "namespaces")
            .unwrap();
        assert_eq!(ns["namespaced"], false);
    }

    #[test]
    fn scale_subresource_names_autoscaling() {
        let doc = resource_list_doc("apps", "v1");
        let scale = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap()
            .clone();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(doc["groupVersion"], "apps/v1");
    }
}
