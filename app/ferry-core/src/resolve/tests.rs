//! Unit tests for target resolution: objects are written as the JSON the API server returns.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::spec::{LocalPort, PortSpec, RemotePort, Target};

fn from(v: Value) -> Pod {
    serde_json::from_value(v).expect("test pod JSON is valid")
}

/// A pod with the facts ranking looks at. `ready_at`/`created` are seconds after 2026-01-01.
#[derive(Clone)]
struct P {
    name: &'static str,
    node: Option<&'static str>,
    phase: &'static str,
    ready_at: Option<Option<i64>>,
    restarts: i32,
    created: Option<i64>,
    deleting: bool,
}

const BASE: P = P {
    name: "p",
    node: Some("node-1"),
    phase: "Running",
    ready_at: Some(Some(100)),
    restarts: 0,
    created: Some(10),
    deleting: false,
};

fn ts(secs: i64) -> String {
    let t = k8s_openapi::jiff::Timestamp::from_second(1_767_225_600 + secs).expect("valid time");
    t.to_string()
}

impl P {
    fn pod(&self) -> Pod {
        let mut conditions = vec![];
        if let Some(at) = self.ready_at {
            let mut c = json!({"type": "Ready", "status": "True"});
            if let Some(at) = at {
                c["lastTransitionTime"] = json!(ts(at));
            }
            conditions.push(c);
        } else {
            conditions
                .push(json!({"type": "Ready", "status": "False", "lastTransitionTime": ts(1)}));
        }
        let mut meta = json!({"name": self.name, "namespace": "shop", "labels": {"app": "web"}});
        if let Some(c) = self.created {
            meta["creationTimestamp"] = json!(ts(c));
        }
        if self.deleting {
            meta["deletionTimestamp"] = json!(ts(500));
        }
        let mut spec = json!({"containers": [{"name": "web", "image": "nginx"}]});
        if let Some(node) = self.node {
            spec["nodeName"] = json!(node);
        }
        from(json!({
            "metadata": meta,
            "spec": spec,
            "status": {
                "phase": self.phase,
                "conditions": conditions,
                "containerStatuses": [{"name": "web", "image": "nginx", "imageID": "", "ready": true, "restartCount": self.restarts}]
            }
        }))
    }
}

fn names(pods: &[&Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

fn best(a: P, b: P) -> String {
    let pods = [a.pod(), b.pod()];
    names(&rank_pods(&pods))[0].clone()
}

// ---- ranking (kubectl's ActivePods, best first) ----

#[test]
fn a_pod_on_a_node_beats_an_unscheduled_one() {
    let a = P {
        name: "a",
        node: None,
        ..BASE
    };
    let b = P { name: "b", ..BASE };
    assert_eq!(best(a.clone(), b.clone()), "b");
    assert_eq!(best(b, a), "b");
}

#[test]
fn running_beats_unknown_beats_pending() {
    let pending = P {
        name: "pending",
        phase: "Pending",
        ready_at: None,
        ..BASE
    };
    let unknown = P {
        name: "unknown",
        phase: "Unknown",
        ready_at: None,
        ..BASE
    };
    let running = P {
        name: "running",
        phase: "Running",
        ready_at: None,
        ..BASE
    };
    let pods = [pending.pod(), running.pod(), unknown.pod()];
    assert_eq!(names(&rank_pods(&pods)), ["running", "unknown", "pending"]);
}

#[test]
fn a_ready_pod_beats_a_running_but_unready_one() {
    let unready = P {
        name: "a",
        ready_at: None,
        created: Some(1),
        ..BASE
    };
    let ready = P {
        name: "b",
        created: Some(9),
        ..BASE
    };
    assert_eq!(best(unready, ready), "b");
}

#[test]
fn a_pod_being_deleted_loses_to_a_healthy_one() {
    let deleting = P {
        name: "a",
        deleting: true,
        ready_at: Some(Some(1)),
        ..BASE
    };
    let healthy = P {
        name: "b",
        ready_at: Some(Some(50)),
        ..BASE
    };
    assert_eq!(best(deleting, healthy), "b");
}

#[test]
fn the_pod_ready_for_longer_wins() {
    let early = P {
        name: "early",
        ready_at: Some(Some(10)),
        ..BASE
    };
    let late = P {
        name: "late",
        ready_at: Some(Some(90)),
        ..BASE
    };
    assert_eq!(best(late, early), "early");
}

#[test]
fn a_ready_pod_without_a_ready_time_counts_as_ready_most_recently() {
    let no_time = P {
        name: "a",
        ready_at: Some(None),
        ..BASE
    };
    let timed = P {
        name: "b",
        ready_at: Some(Some(90)),
        ..BASE
    };
    assert_eq!(best(no_time, timed), "b");
}

#[test]
fn fewer_restarts_win_when_ready_equally_long() {
    let flappy = P {
        name: "a",
        restarts: 5,
        ..BASE
    };
    let steady = P {
        name: "b",
        restarts: 1,
        ..BASE
    };
    assert_eq!(best(flappy, steady), "b");
}

#[test]
fn older_pods_win_when_all_else_is_equal() {
    let young = P {
        name: "a",
        created: Some(60),
        ..BASE
    };
    let old = P {
        name: "b",
        created: Some(5),
        ..BASE
    };
    assert_eq!(best(young, old), "b");
    let no_time = P {
        name: "a",
        created: None,
        ..BASE
    };
    assert_eq!(best(no_time, P { name: "b", ..BASE }), "b");
}

#[test]
fn identical_pods_are_ordered_by_name_for_a_stable_choice() {
    let pods = [
        P {
            name: "zeta",
            ..BASE
        }
        .pod(),
        P {
            name: "alpha",
            ..BASE
        }
        .pod(),
    ];
    assert_eq!(names(&rank_pods(&pods)), ["alpha", "zeta"]);
}

#[test]
fn only_ready_running_live_pods_are_tunnel_candidates() {
    let pods = [
        P {
            name: "unready",
            ready_at: None,
            ..BASE
        }
        .pod(),
        P {
            name: "pending",
            phase: "Pending",
            ready_at: None,
            ..BASE
        }
        .pod(),
        P {
            name: "deleting",
            deleting: true,
            ..BASE
        }
        .pod(),
        P {
            name: "done",
            phase: "Succeeded",
            ..BASE
        }
        .pod(),
        P {
            name: "young",
            ready_at: Some(Some(300)),
            ..BASE
        }
        .pod(),
        P {
            name: "veteran",
            ready_at: Some(Some(20)),
            ..BASE
        }
        .pod(),
    ];
    assert_eq!(names(&rank_ready_pods(&pods)), ["veteran", "young"]);
}

#[test]
fn ranking_works_on_shared_snapshots() {
    let pods = vec![
        std::sync::Arc::new(
            P {
                name: "b",
                restarts: 3,
                ..BASE
            }
            .pod(),
        ),
        std::sync::Arc::new(
            P {
                name: "a",
                restarts: 0,
                ..BASE
            }
            .pod(),
        ),
    ];
    assert_eq!(names(&rank_ready_pods(&pods)), ["a", "b"]);
}

#[test]
fn pods_that_are_not_running_are_refused_with_their_phase() {
    let pod = P {
        name: "boot",
        phase: "Pending",
        ..BASE
    }
    .pod();
    let err = require_running(&pod).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pod \"boot\" is not running (phase Pending); port-forwarding needs a running pod"
    );
    assert!(require_running(&BASE.pod()).is_ok());
}

fn arb_pod(i: usize) -> impl Strategy<Value = Pod> {
    (
        any::<bool>(),
        prop::sample::select(vec!["Running", "Pending", "Unknown", "Failed"]),
        prop::option::of(prop::option::of(0i64..50)),
        0i32..4,
        prop::option::of(0i64..50),
        any::<bool>(),
    )
        .prop_map(
            move |(on_node, phase, ready_at, restarts, created, deleting)| {
                let name: &'static str = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"][i % 8];
                P {
                    name,
                    node: on_node.then_some("n"),
                    phase,
                    ready_at,
                    restarts,
                    created,
                    deleting,
                }
                .pod()
            },
        )
}

proptest! {
    #[test]
    fn ranking_is_a_consistent_total_order(a in arb_pod(0), b in arb_pod(1), c in arb_pod(2)) {
        use std::cmp::Ordering;
        prop_assert_eq!(compare_pods(&a, &b), compare_pods(&b, &a).reverse());
        if compare_pods(&a, &b) != Ordering::Greater && compare_pods(&b, &c) != Ordering::Greater {
            prop_assert_ne!(compare_pods(&a, &c), Ordering::Greater);
        }
    }

    #[test]
    fn the_first_ready_candidate_is_never_beaten_by_another(pods in prop::collection::vec(arb_pod(0), 0..6)) {
        let pods: Vec<Pod> = pods.into_iter().enumerate().map(|(i, mut p)| {
            p.metadata.name = Some(format!("p{i}"));
            p
        }).collect();
        let ranked = rank_ready_pods(&pods);
        for pod in &ranked {
            prop_assert!(is_pod_ready(pod) && !is_terminating(pod));
        }
        if let Some(first) = ranked.first() {
            for other in &ranked {
                prop_assert_ne!(compare_pods(first, other), std::cmp::Ordering::Greater);
            }
        }
        let ready = pods.iter().filter(|p| is_pod_ready(p) && !is_terminating(p)
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).count();
        prop_assert_eq!(ranked.len(), ready);
    }
}

// ---- ports ----

fn service(v: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": v})).expect("valid service")
}

fn pod_with_ports(containers: Value, init: Value) -> Pod {
    from(
        json!({"metadata": {"name": "web-1"}, "spec": {"containers": containers, "initContainers": init}}),
    )
}

fn web_pod() -> Pod {
    pod_with_ports(
        json!([{"name": "app", "ports": [
            {"name": "http", "containerPort": 8080},
            {"name": "metrics", "containerPort": 9090},
            {"name": "dns", "containerPort": 53, "protocol": "UDP"}
        ]}]),
        json!([{"name": "sidecar", "restartPolicy": "Always", "ports": [{"name": "proxy", "containerPort": 15001}]}]),
    )
}

fn num(n: u16) -> RemotePort {
    RemotePort::Number(n)
}
fn name(s: &str) -> RemotePort {
    RemotePort::Name(s.into())
}

#[test]
fn numeric_target_port_is_used_as_is() {
    let svc =
        service(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}));
    assert_eq!(resolve_service_port(&svc, &web_pod(), &num(80)), Ok(8080));
}

#[test]
fn missing_or_zero_target_port_means_the_service_port() {
    let svc = service(json!({"ports": [{"port": 5432}, {"port": 6379, "targetPort": 0}]}));
    assert_eq!(resolve_service_port(&svc, &web_pod(), &num(5432)), Ok(5432));
    assert_eq!(resolve_service_port(&svc, &web_pod(), &num(6379)), Ok(6379));
}

#[test]
fn named_target_port_is_looked_up_in_the_chosen_pod() {
    let svc = service(json!({"ports": [{"port": 80, "targetPort": "http"}]}));
    assert_eq!(resolve_service_port(&svc, &web_pod(), &num(80)), Ok(8080));
    let other = pod_with_ports(
        json!([{"name": "app", "ports": [{"name": "http", "containerPort": 3000}]}]),
        json!([]),
    );
    assert_eq!(
        resolve_service_port(&svc, &other, &num(80)),
        Ok(3000),
        "may differ pod to pod"
    );
}

#[test]
fn named_target_port_falls_back_to_init_containers() {
    let svc = service(json!({"ports": [{"port": 15001, "targetPort": "proxy"}]}));
    assert_eq!(
        resolve_service_port(&svc, &web_pod(), &num(15001)),
        Ok(15001)
    );
}

#[test]
fn named_target_port_missing_in_the_pod_lists_the_names_that_exist() {
    let svc = service(json!({"ports": [{"port": 80, "targetPort": "web"}]}));
    let err = resolve_service_port(&svc, &web_pod(), &num(80)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pod \"web-1\" has no container port named \"web\"; names that exist: http, metrics, dns, proxy"
    );
}

#[test]
fn a_named_remote_picks_the_service_port_by_name() {
    let svc = service(json!({"ports": [
        {"name": "https", "port": 443, "targetPort": 8443},
        {"name": "admin", "port": 9000, "targetPort": "metrics"}
    ]}));
    assert_eq!(
        resolve_service_port(&svc, &web_pod(), &name("https")),
        Ok(8443)
    );
    assert_eq!(
        resolve_service_port(&svc, &web_pod(), &name("admin")),
        Ok(9090)
    );
    assert_eq!(service_port_number(&svc, &name("admin")), Ok(9000));
}

#[test]
fn unknown_service_port_name_lists_the_names_that_exist() {
    let svc =
        service(json!({"ports": [{"name": "https", "port": 443}, {"name": "grpc", "port": 9000}]}));
    let err = resolve_service_port(&svc, &web_pod(), &name("http")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "service \"web\" has no port named \"http\"; names that exist: https, grpc"
    );
}

#[test]
fn unknown_service_port_number_lists_the_ports() {
    let svc = service(json!({"ports": [{"name": "https", "port": 443}, {"port": 9000}]}));
    let err = service_port_number(&svc, &num(80)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "service \"web\" has no port 80; its ports are: 443 (https), 9000"
    );
}

#[test]
fn headless_services_pass_the_port_through() {
    let svc = service(json!({"clusterIP": "None", "ports": [{"port": 80, "targetPort": 8080}]}));
    assert_eq!(resolve_service_port(&svc, &web_pod(), &num(80)), Ok(80));
}

#[test]
fn udp_only_service_ports_are_refused() {
    let svc = service(json!({"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}));
    let err = resolve_service_port(&svc, &web_pod(), &num(53)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "service \"web\" port 53 is UDP only, and port-forwarding supports TCP only"
    );
    assert!(matches!(
        service_port_number(&svc, &name("dns")),
        Err(ResolveError::UdpOnly { .. })
    ));
}

#[test]
fn a_port_offered_over_tcp_and_udp_uses_the_tcp_entry() {
    let svc = service(json!({"ports": [
        {"name": "dns-udp", "port": 53, "protocol": "UDP", "targetPort": 5353},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 5354}
    ]}));
    assert_eq!(resolve_service_port(&svc, &web_pod(), &num(53)), Ok(5354));
}

#[test]
fn pod_ports_by_number_and_by_name() {
    let pod = web_pod();
    assert_eq!(resolve_pod_port(&pod, &num(8080)), Ok(8080));
    assert_eq!(
        resolve_pod_port(&pod, &num(1234)),
        Ok(1234),
        "undeclared numbers pass, as in kubectl"
    );
    assert_eq!(resolve_pod_port(&pod, &name("metrics")), Ok(9090));
    assert_eq!(resolve_pod_port(&pod, &name("proxy")), Ok(15001));
}

#[test]
fn pod_port_name_not_found_lists_the_names_that_exist() {
    let pod = pod_with_ports(
        json!([{"name": "app", "ports": [{"containerPort": 80}]}]),
        json!([]),
    );
    let err = resolve_pod_port(&pod, &name("http")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pod \"web-1\" has no container port named \"http\"; it declares no named ports"
    );
}

#[test]
fn udp_only_pod_ports_are_refused() {
    let err = resolve_pod_port(&web_pod(), &name("dns")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pod \"web-1\" port dns is UDP only, and port-forwarding supports TCP only"
    );
    assert!(resolve_pod_port(&web_pod(), &num(53)).is_err());
}

#[test]
fn local_port_follows_kubectl() {
    let spec = |s: &str| s.parse::<PortSpec>().expect("valid spec");
    assert_eq!(local_port(&spec("8888:80"), 80), Some(8888));
    assert_eq!(local_port(&spec(":80"), 80), None);
    assert_eq!(local_port(&spec("http"), 8080), Some(8080));
}

#[test]
fn all_ports_of_a_service_skip_udp_and_avoid_privileged_local_ports() {
    let svc = service(json!({"ports": [
        {"name": "http", "port": 80},
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "grpc", "port": 9000},
        {"name": "alt", "port": 9000, "protocol": "TCP"}
    ]}));
    let specs = all_service_ports(&svc);
    assert_eq!(
        specs,
        vec![
            PortSpec {
                local: LocalPort::Any,
                remote: num(80)
            },
            PortSpec {
                local: LocalPort::SameAsRemote,
                remote: num(9000)
            },
        ]
    );
}

#[test]
fn session_affinity_client_ip_is_detected() {
    assert!(wants_client_affinity(&service(
        json!({"sessionAffinity": "ClientIP"})
    )));
    assert!(!wants_client_affinity(&service(
        json!({"sessionAffinity": "None"})
    )));
    assert!(!wants_client_affinity(&service(json!({}))));
}

// ---- selectors ----

fn labels(pairs: &[(&str, &str)]) -> Pod {
    let map: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    from(json!({"metadata": {"name": "x", "labels": map}}))
}

fn query(text: &str) -> PodQuery {
    PodQuery::Labels(parse_selector(text).expect("valid selector"))
}

#[test]
fn selectors_parse_every_kubectl_operator() {
    let q = query("app=web, tier != cache,env in (prod, staging),!legacy,track,zone notin (b)");
    let good = labels(&[
        ("app", "web"),
        ("tier", "api"),
        ("env", "prod"),
        ("track", "x"),
        ("zone", "a"),
    ]);
    assert!(q.matches(&good));
    for bad in [
        labels(&[("app", "api"), ("env", "prod"), ("track", "x")]),
        labels(&[
            ("app", "web"),
            ("tier", "cache"),
            ("env", "prod"),
            ("track", "x"),
        ]),
        labels(&[("app", "web"), ("env", "dev"), ("track", "x")]),
        labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("track", "x"),
            ("legacy", "1"),
        ]),
        labels(&[("app", "web"), ("env", "prod")]),
        labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("track", "x"),
            ("zone", "b"),
        ]),
    ] {
        assert!(!q.matches(&bad), "{bad:?}");
    }
}

#[test]
fn double_equals_and_empty_values_are_accepted() {
    assert!(query("app==web").matches(&labels(&[("app", "web")])));
    assert!(query("tier=").matches(&labels(&[("tier", "")])));
    assert!(query("example.com/team=core").matches(&labels(&[("example.com/team", "core")])));
}

#[test]
fn bad_selectors_say_what_is_wrong() {
    let cases = [
        ("", "it is empty"),
        ("app=web,", "expected a label key after ','"),
        ("app in web", "expected '(' after 'in'/'notin'"),
        ("app in ()", "at least one value"),
        ("replicas>3", "numeric comparisons"),
        ("-app=web", "not a valid label key"),
        ("app=we b", "expected ','"),
        ("Example.com/x=y", "must be a DNS subdomain"),
        ("app=web!", "expected"),
    ];
    for (text, fragment) in cases {
        let err = parse_selector(text).expect_err(text).to_string();
        assert!(
            err.starts_with(&format!("invalid label selector \"{text}\": ")),
            "{err}"
        );
        assert!(err.contains(fragment), "{text}: {err}");
    }
}

#[test]
fn pod_targets_match_by_name_and_watch_by_field() {
    let q = target_selector(&Target::Pod("web-1".into()), None).expect("pod target");
    assert!(q.matches(&web_pod()));
    assert!(!q.matches(&labels(&[])));
    assert_eq!(
        q.watcher_config().field_selector.as_deref(),
        Some("metadata.name=web-1")
    );
}

#[test]
fn service_targets_use_the_service_selector() {
    let svc = service(json!({"selector": {"app": "web", "tier": "api"}}));
    let q = target_selector(
        &Target::Service("web".into()),
        Some(TargetObject::Service(&svc)),
    )
    .expect("selector");
    assert!(q.matches(&labels(&[("app", "web"), ("tier", "api"), ("extra", "1")])));
    assert!(!q.matches(&labels(&[("app", "web")])));
    assert_eq!(
        q.watcher_config().label_selector.as_deref(),
        Some("app=web,tier=api")
    );
}

#[test]
fn services_without_selector_are_refused_with_an_explanation() {
    let svc = service(json!({"ports": [{"port": 5432}]}));
    let err = target_selector(
        &Target::Service("web".into()),
        Some(TargetObject::Service(&svc)),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("service \"web\" has no selector"),
        "{text}"
    );
    assert!(
        text.contains("manually managed Endpoints") && text.contains("outside the cluster"),
        "{text}"
    );
}

#[test]
fn deployment_targets_use_match_labels_and_expressions() {
    let dep: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"},
                 "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]}]},
                 "template": {}}
    }))
    .expect("valid deployment");
    let q = target_selector(
        &Target::Deployment("web".into()),
        Some(TargetObject::Deployment(&dep)),
    )
    .expect("ok");
    assert!(q.matches(&labels(&[("app", "web")])));
    assert!(!q.matches(&labels(&[("app", "web"), ("track", "canary")])));
}

#[test]
fn service_and_deployment_targets_need_their_object() {
    let err = target_selector(&Target::Service("web".into()), None).unwrap_err();
    assert!(matches!(err, ResolveError::ObjectNeeded { .. }));
}

/// Label keys as kubectl writes them. `in` and `notin` are left out: the
/// apiserver's lexer reads them as operators wherever they stand, so no
/// selector can name them as keys (see `operator_words_are_not_keys`).
fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9]{0,8}",
        "[a-z]{1,5}\\.io/[a-z][a-z0-9_.-]{0,6}[a-z0-9]"
    ]
    .prop_filter("operator words are not keys", |k| k != "in" && k != "notin")
}

#[test]
fn operator_words_are_not_keys() {
    for text in ["!in", "in", "notin=a", "in in (a)"] {
        assert!(parse_selector(text).is_err(), "{text} parsed");
    }
}

fn arb_value() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9]", "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,10}[a-zA-Z0-9]"]
}

fn arb_expression() -> impl Strategy<Value = kube::core::Expression> {
    use kube::core::Expression as E;
    let set = || prop::collection::btree_set(arb_value(), 1..4);
    prop_oneof![
        (arb_key(), arb_value()).prop_map(|(k, v)| E::Equal(k, v)),
        (arb_key(), arb_value()).prop_map(|(k, v)| E::NotEqual(k, v)),
        (arb_key(), set()).prop_map(|(k, v)| E::In(k, v)),
        (arb_key(), set()).prop_map(|(k, v)| E::NotIn(k, v)),
        arb_key().prop_map(E::Exists),
        arb_key().prop_map(E::DoesNotExist),
    ]
}

proptest! {
    #[test]
    fn selectors_round_trip_through_their_wire_form(exprs in prop::collection::vec(arb_expression(), 1..5)) {
        let selector: kube::core::Selector = exprs.into_iter().collect();
        let text = selector.to_string();
        prop_assert_eq!(parse_selector(&text), Ok(selector), "{}", text);
    }

    #[test]
    fn selector_parsing_never_panics(text in "[a-z=!,() .-]{0,30}") {
        let _ = parse_selector(&text);
    }
}
