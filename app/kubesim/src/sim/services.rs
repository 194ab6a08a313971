//! Services: validation and defaulting at admission, ClusterIP allocation (10.96.0.0/12, as
//! kind and kubeadm clusters use), node-port allocation (30000–32767, or the port asked for,
//! refusing one already taken), and the load-balancer controller that gives `LoadBalancer`
//! services (and ingresses) an external address from 172.18.255.200–250, as MetalLB in a kind
//! cluster does.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use serde_json::{Value, json};

use super::objects::{array_at, str_at};
use super::state::RESERVATION;
use super::{AdmissionError, FieldError};
use crate::cluster::Cluster;
use crate::store::{Change, EventType};

/// The node-port range of a default apiserver (`--service-node-port-range`).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;
/// First and last host of the simulated load-balancer address pool (172.18.255.x).
const LB_POOL: std::ops::RangeInclusive<u8> = 200..=250;
const SERVICE_CIDR: &str = "10.96.0.0/12";

/// Validates and defaults a new Service, allocating its ClusterIP and node ports.
pub fn admit(cluster: &Cluster, service: &mut Value) -> Result<(), AdmissionError> {
    let name = str_at(service, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let invalid = |errors| AdmissionError::invalid("Service", "", &name, errors);
    let errors = validate(service);
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    default_spec(&mut service["spec"]);
    let mut sim = cluster.sim.lock();
    let (used_ips, used_ports) =
        used_addresses(cluster, &sim.reserved_cluster_ips, &sim.reserved_node_ports);
    let kind = str_at(service, "/spec/type")
        .unwrap_or("ClusterIP")
        .to_string();
    let mut errors = Vec::new();
    let ip = if kind == "ExternalName" {
        None
    } else {
        allocate_cluster_ip(service, &used_ips, &mut errors)
    };
    let ports = allocate_node_ports(service, &kind, &used_ports, &mut errors);
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    if let Some(ip) = ip {
        if ip != "None" {
            sim.reserved_cluster_ips.insert(ip.clone(), Instant::now());
        }
        service["spec"]["clusterIP"] = json!(ip);
        service["spec"]["clusterIPs"] = json!([ip]);
    }
    sim.reserved_node_ports
        .extend(ports.into_iter().map(|p| (p, Instant::now())));
    service["status"] = json!({"loadBalancer": {}});
    Ok(())
}

/// Checks a changed Service: the ClusterIP cannot change; a type change to NodePort or
/// LoadBalancer allocates node ports, a change to ClusterIP drops them.
pub fn admit_update(cluster: &Cluster, old: &Value, new: &mut Value) -> Result<(), AdmissionError> {
    let name = str_at(old, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let errors = validate(new);
    if !errors.is_empty() {
        return Err(AdmissionError::invalid("Service", "", &name, errors));
    }
    let old_ip = old.pointer("/spec/clusterIP").cloned();
    match (new.pointer("/spec/clusterIP"), &old_ip) {
        (Some(n), Some(o)) if n != o && !n.as_str().unwrap_or_default().is_empty() => {
            let err = FieldError::invalid("spec.clusterIPs[0]", n, "may not change once set");
            return Err(AdmissionError::invalid("Service", "", &name, vec![err]));
        }
        _ => {}
    }
    default_spec(&mut new["spec"]);
    if let Some(ip) = old_ip {
        new["spec"]["clusterIP"] = ip;
        new["spec"]["clusterIPs"] = old
            .pointer("/spec/clusterIPs")
            .cloned()
            .unwrap_or(Value::Null);
    }
    let kind = str_at(new, "/spec/type").unwrap_or("ClusterIP").to_string();
    let mut sim = cluster.sim.lock();
    let (_, mut used_ports) =
        used_addresses(cluster, &sim.reserved_cluster_ips, &sim.reserved_node_ports);
    // The service's own ports are not a conflict with itself.
    for p in array_at(old, "/spec/ports") {
        if let Some(n) = p.get("nodePort").and_then(Value::as_i64) {
            used_ports.retain(|u| *u != n);
        }
    }
    let mut errors = Vec::new();
    let ports = allocate_node_ports(new, &kind, &used_ports, &mut errors);
    if !errors.is_empty() {
        return Err(AdmissionError::invalid("Service", "", &name, errors));
    }
    // Only ports this update newly takes need reserving; the old ones are in the store.
    let had: Vec<i64> = array_at(old, "/spec/ports")
        .iter()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .collect();
    sim.reserved_node_ports.extend(
        ports
            .into_iter()
            .filter(|p| !had.contains(p))
            .map(|p| (p, Instant::now())),
    );
    Ok(())
}

fn validate(service: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let kind = str_at(service, "/spec/type").unwrap_or("ClusterIP");
    let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !types.contains(&kind) {
        errors.push(FieldError::not_supported("spec.type", &json!(kind), &types));
    }
    let headless = str_at(service, "/spec/clusterIP") == Some("None");
    let ports = array_at(service, "/spec/ports");
    if kind == "ExternalName" {
        if str_at(service, "/spec/externalName").is_none_or(str::is_empty) {
            errors.push(FieldError::required("spec.externalName"));
        }
    } else if ports.is_empty() && !headless {
        errors.push(FieldError::required("spec.ports"));
    }
    let mut names = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        validate_port(p, i, ports.len(), kind, &mut names, &mut errors);
    }
    if let Some(affinity) = str_at(service, "/spec/sessionAffinity")
        && !["ClientIP", "None"].contains(&affinity)
    {
        errors.push(FieldError::not_supported(
            "spec.sessionAffinity",
            &json!(affinity),
            &["ClientIP", "None"],
        ));
    }
    errors
}

fn validate_port(
    p: &Value,
    i: usize,
    count: usize,
    kind: &str,
    names: &mut Vec<String>,
    errors: &mut Vec<FieldError>,
) {
    let at = format!("spec.ports[{i}]");
    match str_at(p, "/name").filter(|n| !n.is_empty()) {
        None if count > 1 => errors.push(FieldError::required(format!("{at}.name"))),
        Some(n) if names.iter().any(|x| x == n) => {
            errors.push(FieldError::duplicate(format!("{at}.name"), &json!(n)))
        }
        Some(n) => names.push(n.to_string()),
        None => {}
    }
    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
    if !(1..=65535).contains(&port) {
        errors.push(FieldError::invalid(
            format!("{at}.port"),
            &json!(port),
            "must be between 1 and 65535, inclusive",
        ));
    }
    if let Some(proto) = str_at(p, "/protocol")
        && !["TCP", "UDP", "SCTP"].contains(&proto)
    {
        errors.push(FieldError::not_supported(
            format!("{at}.protocol"),
            &json!(proto),
            &["SCTP", "TCP", "UDP"],
        ));
    }
    if let Some(target) = p.get("targetPort").and_then(Value::as_i64)
        && !(1..=65535).contains(&target)
    {
        errors.push(FieldError::invalid(
            format!("{at}.targetPort"),
            &json!(target),
            "must be between 1 and 65535, inclusive",
        ));
    }
    if p.get("nodePort")
        .and_then(Value::as_i64)
        .is_some_and(|n| n != 0)
        && (kind == "ClusterIP" || kind == "ExternalName")
    {
        errors.push(FieldError {
            field: format!("{at}.nodePort"),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: may not be used when `type` is '{kind}'"),
        });
    }
}

fn default_spec(spec: &mut Value) {
    let Some(map) = spec.as_object_mut() else {
        return;
    };
    let kind = map
        .entry("type")
        .or_insert(json!("ClusterIP"))
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    let affinity = map
        .entry("sessionAffinity")
        .or_insert(json!("None"))
        .clone();
    if affinity == "ClientIP" {
        map.entry("sessionAffinityConfig")
            .or_insert(json!({"clientIP": {"timeoutSeconds": 10800}}));
    }
    if kind != "ExternalName" {
        map.entry("internalTrafficPolicy")
            .or_insert(json!("Cluster"));
        map.entry("ipFamilies").or_insert(json!(["IPv4"]));
        map.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
    }
    if kind == "NodePort" || kind == "LoadBalancer" {
        map.entry("externalTrafficPolicy")
            .or_insert(json!("Cluster"));
    } else {
        map.remove("externalTrafficPolicy");
    }
    if kind == "LoadBalancer" {
        map.entry("allocateLoadBalancerNodePorts")
            .or_insert(json!(true));
    }
    if let Some(ports) = map.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert(json!("TCP"));
            let port = p.get("port").cloned().unwrap_or(Value::Null);
            let target = p.entry("targetPort").or_insert(port.clone());
            if target == &json!(0) || target == &json!("") {
                *target = port;
            }
        }
    }
}

/// ClusterIPs and node ports in use in the whole cluster, reservations included.
fn used_addresses(
    cluster: &Cluster,
    reserved_ips: &HashMap<String, Instant>,
    reserved_ports: &HashMap<i64, Instant>,
) -> (Vec<String>, Vec<i64>) {
    let (services, _) = cluster.store.list("services", None);
    let fresh = |at: &Instant| at.elapsed() < RESERVATION;
    let mut ips: Vec<String> = reserved_ips
        .iter()
        .filter(|(_, at)| fresh(at))
        .map(|(ip, _)| ip.clone())
        .collect();
    let mut ports: Vec<i64> = reserved_ports
        .iter()
        .filter(|(_, at)| fresh(at))
        .map(|(p, _)| *p)
        .collect();
    for s in &services {
        ips.extend(
            array_at(s, "/spec/clusterIPs")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
        ports.extend(
            array_at(s, "/spec/ports")
                .iter()
                .filter_map(|p| p.get("nodePort")?.as_i64()),
        );
    }
    (ips, ports)
}

fn allocate_cluster_ip(
    service: &Value,
    used: &[String],
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let requested = str_at(service, "/spec/clusterIP").filter(|s| !s.is_empty());
    match requested {
        Some("None") => Some("None".into()),
        Some(ip) => {
            let value = json!(ip);
            let field = "spec.clusterIPs[0]";
            match ip.parse::<Ipv4Addr>() {
                Err(_) => errors.push(FieldError::invalid(field, &value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")),
                Ok(addr) if !in_service_cidr(addr) => errors.push(FieldError::invalid(field, &value, &format!(
                    "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {SERVICE_CIDR}"
                ))),
                Ok(_) if used.iter().any(|u| u == ip) => errors.push(FieldError::invalid(field, &value, &format!(
                    "failed to allocate IP {ip}: provided IP is already allocated"
                ))),
                Ok(_) => return Some(ip.to_string()),
            }
            None
        }
        None => {
            let mut rng = rand::rng();
            let pick = (0..1000)
                .map(|_| {
                    format!(
                        "10.96.{}.{}",
                        rng.random_range(0..=255u8),
                        rng.random_range(2..=254u8)
                    )
                })
                .find(|ip| ip != "10.96.0.10" && !used.contains(ip));
            if pick.is_none() {
                errors.push(FieldError::invalid(
                    "spec.clusterIPs",
                    &json!([]),
                    "failed to allocate a serviceIP: range is full",
                ));
            }
            pick
        }
    }
}

fn in_service_cidr(addr: Ipv4Addr) -> bool {
    let [a, b, _, _] = addr.octets();
    a == 10
        && (96..=111).contains(&b)
        && addr != Ipv4Addr::new(10, 96, 0, 0)
        && addr != Ipv4Addr::new(10, 111, 255, 255)
}

/// Fills `nodePort` of every port of a NodePort/LoadBalancer service (or removes them for
/// other types); returns the ports newly taken.
fn allocate_node_ports(
    service: &mut Value,
    kind: &str,
    used: &[i64],
    errors: &mut Vec<FieldError>,
) -> Vec<i64> {
    let wants_ports = kind == "NodePort"
        || (kind == "LoadBalancer"
            && service.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&json!(false)));
    let mut taken = Vec::new();
    let Some(ports) = service
        .pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut)
    else {
        return taken;
    };
    for (i, p) in ports.iter_mut().enumerate() {
        let Some(map) = p.as_object_mut() else {
            continue;
        };
        if !wants_ports {
            map.remove("nodePort");
            continue;
        }
        let field = format!("spec.ports[{i}].nodePort");
        match map
            .get("nodePort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            Some(n) if !NODE_PORT_RANGE.contains(&n) => errors.push(FieldError::invalid(
                field,
                &json!(n),
                "provided port is not in the valid range. The range of valid ports is 30000-32767",
            )),
            Some(n) if used.contains(&n) || taken.contains(&n) => {
                errors.push(FieldError::invalid(
                    field,
                    &json!(n),
                    "provided port is already allocated",
                ));
            }
            Some(n) => taken.push(n),
            None => {
                let mut rng = rand::rng();
                let free = (0..1000)
                    .map(|_| rng.random_range(NODE_PORT_RANGE))
                    .chain(NODE_PORT_RANGE)
                    .find(|n| !used.contains(n) && !taken.contains(n));
                match free {
                    Some(n) => {
                        map.insert("nodePort".into(), json!(n));
                        taken.push(n);
                    }
                    None => errors.push(FieldError::invalid(field, &json!(0), "range is full")),
                }
            }
        }
    }
    taken
}

/// Handles a batch of changes one by one (each is cheap).
pub fn on_changes(cluster: &Arc<Cluster>, changes: &[Change]) {
    for change in changes {
        on_change(cluster, change);
    }
}

/// The load-balancer controller: reacts to Service changes (drops stored allocations from the
/// reservations, gives LoadBalancer services their external IP after a moment).
fn on_change(cluster: &Arc<Cluster>, change: &Change) {
    if change.key.resource != "services" {
        return;
    }
    let service = &change.object;
    // Once stored (or gone), the service's addresses need no reservation any more.
    release(cluster, service);
    if change.event == EventType::Deleted {
        return;
    }
    reconcile_load_balancer(cluster, &change.key.namespace, service);
}

/// Drops the reservations of a stored or deleted service's ClusterIPs and node ports.
pub fn release(cluster: &Cluster, service: &Value) {
    let mut sim = cluster.sim.lock();
    for ip in array_at(service, "/spec/clusterIPs")
        .iter()
        .filter_map(Value::as_str)
    {
        sim.reserved_cluster_ips.remove(ip);
    }
    for p in array_at(service, "/spec/ports") {
        if let Some(n) = p.get("nodePort").and_then(Value::as_i64) {
            sim.reserved_node_ports.remove(&n);
        }
    }
}

/// Gives every LoadBalancer service that lacks one its external IP (after a restart of the
/// controller, say).
pub fn resync(cluster: &Arc<Cluster>) {
    let (services, _) = cluster.store.list("services", None);
    for s in &services {
        let ns = str_at(s, "/metadata/namespace")
            .unwrap_or_default()
            .to_string();
        reconcile_load_balancer(cluster, &ns, s);
    }
}

fn reconcile_load_balancer(cluster: &Arc<Cluster>, namespace: &str, service: &Value) {
    let is_lb = str_at(service, "/spec/type") == Some("LoadBalancer");
    let has_ingress = !array_at(service, "/status/loadBalancer/ingress").is_empty();
    let name = super::objects::name(service).to_string();
    if !is_lb && has_ingress {
        let _ = cluster.store.update("services", namespace, &name, |s| {
            s["status"]["loadBalancer"] = json!({});
        });
    }
    if is_lb && !has_ingress {
        let delay = cluster.timing.pod_start;
        super::runner::after(cluster, delay, {
            let namespace = namespace.to_string();
            move |cluster| assign_lb_ip(cluster, "services", &namespace, &name)
        });
    }
}

/// Gives `resource/namespace/name` the next free load-balancer address in
/// `status.loadBalancer.ingress`, unless it has one already.
pub fn assign_lb_ip(cluster: &Arc<Cluster>, resource: &str, namespace: &str, name: &str) {
    let _sim = cluster.sim.lock();
    let mut used = Vec::new();
    for r in ["services", "ingresses"] {
        let (items, _) = cluster.store.list(r, None);
        for item in &items {
            used.extend(
                array_at(item, "/status/loadBalancer/ingress")
                    .iter()
                    .filter_map(|i| str_at(i, "/ip"))
                    .map(str::to_string),
            );
        }
    }
    let Some(ip) = LB_POOL
        .map(|h| format!("172.18.255.{h}"))
        .find(|ip| !used.contains(ip))
    else {
        tracing::warn!(cluster = %cluster.name, "load-balancer address pool exhausted");
        return;
    };
    let lb_type = resource == "services";
    let mut assigned = false;
    let result = cluster.store.update(resource, namespace, name, |o| {
        let still_wanted = !lb_type || str_at(o, "/spec/type") == Some("LoadBalancer");
        if still_wanted && array_at(o, "/status/loadBalancer/ingress").is_empty() {
            let entry = if lb_type {
                json!({"ip": ip, "ipMode": "VIP"})
            } else {
                json!({"ip": ip})
            };
            o["status"]["loadBalancer"] = json!({"ingress": [entry]});
            assigned = true;
        }
    });
    if let (Ok(service), true, true) = (result, assigned, lb_type) {
        for (reason, message) in [
            ("EnsuringLoadBalancer", "Ensuring load balancer"),
            ("EnsuredLoadBalancer", "Ensured load balancer"),
        ] {
            let event = super::events::Event {
                object: &service,
                api_version: "v1",
                kind: "Service",
                field_path: None,
                warning: false,
                reason,
                message: message.into(),
            };
            super::events::record(cluster, super::events::Source::SERVICE, event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Timing;

    fn svc(name: &str, kind: &str, node_port: Option<i64>) -> Value {
        let mut port = json!({"port": 80, "targetPort": 8080});
        if let Some(n) = node_port {
            port["nodePort"] = json!(n);
        }
        json!({"metadata": {"name": name}, "spec": {"type": kind, "selector": {"app": "kubia"}, "ports": [port]}})
    }

    #[test]
    fn cluster_ip_service_gets_an_address_and_defaults() {
        let cluster = Cluster::new("t", Timing::fast());
        let mut s = svc("kubia", "ClusterIP", None);
        admit(&cluster, &mut s).unwrap();
        let ip: Ipv4Addr = s["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(in_service_cidr(ip));
        assert_eq!(s["spec"]["clusterIPs"][0], s["spec"]["clusterIP"]);
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        assert!(s["spec"]["ports"][0].get("nodePort").is_none());
    }

    #[test]
    fn requested_node_port_conflict_is_invalid_with_the_real_message() {
        let cluster = Cluster::new("t", Timing::fast());
        let mut first = svc("a", "NodePort", Some(30123));
        admit(&cluster, &mut first).unwrap();
        cluster.store.create("services", "default", first).unwrap();
        let mut second = svc("b", "NodePort", Some(30123));
        let err = admit(&cluster, &mut second).unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(
            err.message,
            "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30123: provided port is already allocated"
        );
        let mut third = svc("c", "NodePort", Some(40000));
        assert!(
            admit(&cluster, &mut third)
                .unwrap_err()
                .message
                .contains("not in the valid range")
        );
    }

    #[test]
    fn allocated_node_ports_are_distinct_even_before_storing() {
        let cluster = Cluster::new("t", Timing::fast());
        let mut seen = std::collections::HashSet::new();
        for i in 0..50 {
            let mut s = svc(&format!("s{i}"), "LoadBalancer", None);
            admit(&cluster, &mut s).unwrap();
            let n = s["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
            assert!(NODE_PORT_RANGE.contains(&n));
            assert!(seen.insert(n), "node port {n} handed out twice");
        }
    }

    #[test]
    fn headless_service_keeps_cluster_ip_none() {
        let cluster = Cluster::new("t", Timing::fast());
        let mut s = svc("h", "ClusterIP", None);
        s["spec"]["clusterIP"] = json!("None");
        admit(&cluster, &mut s).unwrap();
        assert_eq!(s["spec"]["clusterIPs"], json!(["None"]));
    }
}
