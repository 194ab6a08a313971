//! A fixed, lifelike [`Model`] for UI tests, snapshot images and the frame-time benchmark,
//! which need the real views without a cluster (the end-to-end UI test uses kubesim instead).

use std::sync::Arc;

use ferry_core::spec::{Spread, Target, TunnelSpec};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStatus,
    EndpointAddress, EndpointSubset, Endpoints, LoadBalancerIngress, LoadBalancerStatus, Node,
    NodeAddress, NodeStatus, ObjectReference, Pod, PodCondition, PodSpec, PodStatus,
    PodTemplateSpec, Service, ServicePort, ServiceSpec, ServiceStatus,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::model::{
    Connection, ContextInfo, DeploymentRow, Listener, Model, Namespaces, Objects, PodRow,
    ProfileInfo, Profiles, ServiceRow, SourceState, TunnelRow, TunnelStatus,
};

fn meta(name: &str, minutes_ago: i64) -> ObjectMeta {
    let created = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(minutes_ago);
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        creation_timestamp: Some(Time(created)),
        labels: Some(
            [(
                "app".to_string(),
                name.split('-').next().unwrap_or(name).to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    }
}

/// A running, ready pod with one container listening on `port` (named `http`).
pub fn pod(name: &str, node: &str, ip: &str, port: i32, minutes_ago: i64) -> Pod {
    Pod {
        metadata: meta(name, minutes_ago),
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "app".into(),
                image: Some("luksa/kubia:latest".into()),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: port,
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(ip.into()),
            conditions: Some(
                ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
                    .iter()
                    .map(|t| PodCondition {
                        type_: (*t).into(),
                        status: "True".into(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                ready: true,
                image: "luksa/kubia:latest".into(),
                image_id: String::new(),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn service(
    name: &str,
    kind: &str,
    ip: &str,
    port: i32,
    target: IntOrString,
    node_port: Option<i32>,
) -> Service {
    Service {
        metadata: meta(name, 300),
        spec: Some(ServiceSpec {
            type_: Some(kind.into()),
            cluster_ip: Some(ip.into()),
            selector: Some([("app".to_string(), "kubia".to_string())].into()),
            session_affinity: Some("None".into()),
            external_traffic_policy: (kind != "ClusterIP").then(|| "Cluster".into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port,
                target_port: Some(target),
                node_port,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: (kind == "LoadBalancer").then(|| ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some("203.0.113.10".into()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        }),
    }
}

fn endpoints(name: &str, pods: &[&Pod]) -> Endpoints {
    Endpoints {
        metadata: meta(name, 300),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(
                pods.iter()
                    .map(|p| EndpointAddress {
                        ip: p
                            .status
                            .as_ref()
                            .and_then(|s| s.pod_ip.clone())
                            .unwrap_or_default(),
                        node_name: p.spec.as_ref().and_then(|s| s.node_name.clone()),
                        target_ref: Some(ObjectReference {
                            kind: Some("Pod".into()),
                            name: p.metadata.name.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }]),
    }
}

fn node(name: &str, ip: &str) -> Node {
    Node {
        metadata: meta(name, 5000),
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.into(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.into(),
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn deployment(name: &str, replicas: i32, ready: i32) -> Deployment {
    Deployment {
        metadata: meta(name, 300),
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), name.to_string())].into()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        ports: Some(vec![ContainerPort {
                            name: Some("http".into()),
                            container_port: 8080,
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        },
        status: Some(DeploymentStatus {
            ready_replicas: Some(ready),
            updated_replicas: Some(replicas),
            available_replicas: Some(ready),
            ..Default::default()
        }),
    }
}

fn ingress() -> Ingress {
    Ingress {
        metadata: meta("kubia", 300),
        spec: Some(IngressSpec {
            rules: Some(vec![IngressRule {
                host: Some("kubia.example.com".into()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: "kubia".into(),
                                port: None,
                            }),
                            ..Default::default()
                        },
                    }],
                }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tunnel(
    id: u64,
    target: Target,
    local: u16,
    status: TunnelStatus,
    pod: Option<&str>,
) -> TunnelRow {
    let spec = TunnelSpec {
        context: "demo".into(),
        namespace: "default".into(),
        target,
        ports: vec![
            format!("{local}:80")
                .parse()
                .unwrap_or_else(|_| unreachable_port()),
        ],
        bind: Vec::new(),
        spread: Spread::Single,
        alias: None,
        note: None,
    };
    let listening = !matches!(status, TunnelStatus::Stopped | TunnelStatus::Failed(_));
    let waiting = matches!(status, TunnelStatus::Waiting(_));
    TunnelRow {
        id: format!("t{id}"),
        origin: ferry_core::engine::Origin::AdHoc,
        spec,
        status,
        pod: pod.map(str::to_string),
        listeners: if listening {
            vec![Listener {
                local: ([127, 0, 0, 1], local).into(),
                remote: "80".into(),
                pod_port: Some(8080),
                http: true,
            }]
        } else {
            Vec::new()
        },
        transport: listening.then_some(ferry_core::tunnel::Transport::Spdy),
        connections: id,
        total_connections: id * 3,
        bytes_in: id * 18_000,
        bytes_out: id * 2_100,
        errors: if waiting { 2 } else { 0 },
        last_error: waiting.then(|| {
            let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(40);
            (
                at,
                "no ready pod: postgres-0 is not Ready (readiness probe failing)".to_string(),
            )
        }),
    }
}

fn unreachable_port() -> ferry_core::spec::PortSpec {
    ferry_core::spec::PortSpec {
        local: ferry_core::spec::LocalPort::Any,
        remote: ferry_core::spec::RemotePort::Number(80),
    }
}

/// A demo-like model: the kubia pods and services, plus `extra_pods` more pods (for the
/// 5,000-pod benchmark), a few tunnels in different states and one profile.
pub fn model(extra_pods: usize) -> Model {
    let mut pods = vec![
        pod("kubia-7d4b9c6f5-2xkqp", "worker-1", "10.244.1.12", 8080, 42),
        pod("kubia-7d4b9c6f5-8mzrt", "worker-2", "10.244.2.7", 8080, 42),
        pod("kubia-7d4b9c6f5-qv5nw", "worker-1", "10.244.1.13", 8080, 41),
        pod("postgres-0", "worker-2", "10.244.2.9", 5432, 600),
        pod(
            "redis-6c9f8d7b4-l2x9c",
            "worker-1",
            "10.244.1.20",
            6379,
            180,
        ),
    ];
    for i in 0..extra_pods {
        pods.push(pod(
            &format!("load-{i:05}-x7k2p"),
            &format!("worker-{}", i % 8),
            &format!("10.245.{}.{}", i / 250, i % 250),
            8080,
            (i % 900) as i64,
        ));
    }
    let kubia: Vec<&Pod> = pods.iter().take(3).collect();
    let mut ep = vec![
        endpoints("kubia", &kubia),
        endpoints("kubia-nodeport", &kubia),
    ];
    let mut external = endpoints("external-db", &[]);
    if let Some(subsets) = external.subsets.as_mut() {
        subsets[0].addresses = Some(vec![EndpointAddress {
            ip: "192.0.2.50".into(),
            ..Default::default()
        }]);
    }
    ep.push(external);
    let endpoints: Vec<Arc<Endpoints>> = ep.into_iter().map(Arc::new).collect();
    let mut ext_svc = service(
        "external-db",
        "ClusterIP",
        "10.96.0.40",
        5432,
        IntOrString::Int(5432),
        None,
    );
    if let Some(spec) = ext_svc.spec.as_mut() {
        spec.selector = None;
    }
    let services = [
        service(
            "kubia",
            "ClusterIP",
            "10.96.0.12",
            80,
            IntOrString::String("http".into()),
            None,
        ),
        service(
            "kubia-nodeport",
            "NodePort",
            "10.96.0.13",
            80,
            IntOrString::Int(8080),
            Some(30123),
        ),
        service(
            "kubia-loadbalancer",
            "LoadBalancer",
            "10.96.0.14",
            80,
            IntOrString::Int(8080),
            Some(31234),
        ),
        ext_svc,
    ];
    let services = services
        .into_iter()
        .map(|s| {
            let e = endpoints
                .iter()
                .find(|e| e.metadata.name == s.metadata.name)
                .map(|e| e.as_ref());
            ServiceRow::new(Arc::new(s), e, &pods)
        })
        .collect();
    let objects = Objects {
        context: "demo".into(),
        namespace: "default".into(),
        loading: false,
        version: 1,
        pods: pods.into_iter().map(|p| PodRow::new(Arc::new(p))).collect(),
        services,
        deployments: vec![
            DeploymentRow::new(Arc::new(deployment("kubia", 3, 3))),
            DeploymentRow::new(Arc::new(deployment("redis", 1, 1))),
        ],
        endpoints,
        ingresses: vec![Arc::new(ingress())],
        nodes: vec![
            Arc::new(node("worker-1", "172.18.0.2")),
            Arc::new(node("worker-2", "172.18.0.3")),
        ],
        error: None,
    };
    let tunnels = vec![
        tunnel(
            1,
            Target::Service("kubia".into()),
            8080,
            TunnelStatus::Active,
            Some("kubia-7d4b9c6f5-2xkqp"),
        ),
        tunnel(
            2,
            Target::Pod("postgres-0".into()),
            5432,
            TunnelStatus::Waiting("no ready pod".into()),
            None,
        ),
        tunnel(
            3,
            Target::Deployment("redis".into()),
            6379,
            TunnelStatus::Stopped,
            None,
        ),
    ];
    let profile = ProfileInfo {
        name: "backend".into(),
        autostart: false,
        tunnels: tunnels.iter().map(|t| t.spec.clone()).collect(),
        running: 2,
    };
    Model {
        source: SourceState::Demo {
            kubeconfig: "/tmp/ferry-demo/kubeconfig".into(),
        },
        contexts: vec![
            ContextInfo {
                name: "demo".into(),
                cluster: "demo".into(),
                namespace: None,
                connection: Connection::Ok,
            },
            ContextInfo {
                name: "staging".into(),
                cluster: "staging".into(),
                namespace: Some("web".into()),
                connection: Connection::Error("connection refused (https://127.0.0.1:6444)".into()),
            },
        ],
        current_context: Some("demo".into()),
        namespaces: Namespaces {
            names: vec!["default".into(), "kube-system".into(), "monitoring".into()],
            loading: false,
            forbidden: None,
        },
        objects: Arc::new(objects),
        tunnels: Arc::new(tunnels),
        tunnels_version: 1,
        profiles: Arc::new(Profiles {
            items: vec![profile],
            corrupt: None,
            path: None,
            has_backup: false,
        }),
        settings: Default::default(),
        settings_problem: None,
        terminals: Vec::new(),
    }
}
