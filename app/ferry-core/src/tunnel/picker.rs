//! Which pod gets the next connection.
//!
//! The supervisor keeps a [`Routes`] value current from the watch (Ready pods, best first, with
//! each pod's container port for every forwarded port, since a named `targetPort` may differ
//! pod to pod). The [`Picker`] chooses from it per connection: the best pod (kubectl's choice),
//! or round-robin over all Ready pods, optionally sticky per local client address like a
//! service's `sessionAffinity: ClientIP`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::spec::Spread;

/// One Ready pod new connections may go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRoute {
    pub name: String,
    /// The container port for each of the tunnel's port specs, by index; `None` when this pod
    /// has no port of that name.
    pub ports: Vec<Option<u16>>,
}

/// Where new connections can go right now. Replaced as a whole on every watch change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// Ready pods, best first (kubectl's `ActivePods` order).
    pub pods: Vec<PodRoute>,
    /// The service asks for `sessionAffinity: ClientIP` (used by [`Spread::FollowService`]).
    pub service_affinity: bool,
}

impl Routes {
    /// Whether any pod can take a connection for port `index`.
    pub fn can_serve(&self, index: usize) -> bool {
        self.pods.iter().any(|p| p.port(index).is_some())
    }
}

impl PodRoute {
    fn port(&self, index: usize) -> Option<u16> {
        self.ports.get(index).copied().flatten()
    }
}

/// The pod and container port chosen for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub pod: String,
    pub port: u16,
}

/// Above this many remembered clients, the affinity table is cleared (a local machine has few
/// client addresses; this only bounds memory against odd setups).
const MAX_STICKY_CLIENTS: usize = 4096;

/// Chooses pods for connections. One per tunnel; shared by its accept loops.
#[derive(Debug)]
pub struct Picker {
    spread: Spread,
    next: AtomicUsize,
    sticky: Mutex<HashMap<IpAddr, String>>,
}

impl Picker {
    pub fn new(spread: Spread) -> Self {
        Self {
            spread,
            next: AtomicUsize::new(0),
            sticky: Mutex::new(HashMap::new()),
        }
    }

    /// Choose a pod for a connection from `client` on port `index`, avoiding pods in `exclude`
    /// (ones that just failed for this connection). `None` when no Ready pod can take it.
    pub fn pick(
        &self,
        routes: &Routes,
        index: usize,
        client: IpAddr,
        exclude: &[String],
    ) -> Option<Pick> {
        let candidates: Vec<(&PodRoute, u16)> = routes
            .pods
            .iter()
            .filter(|p| !exclude.contains(&p.name))
            .filter_map(|p| p.port(index).map(|port| (p, port)))
            .collect();
        let sticky = match self.spread {
            Spread::Single => {
                let (pod, port) = candidates.first()?;
                return Some(Pick {
                    pod: pod.name.clone(),
                    port: *port,
                });
            }
            Spread::RoundRobin => false,
            Spread::ClientAffinity => true,
            Spread::FollowService => routes.service_affinity,
        };
        if candidates.is_empty() {
            return None;
        }
        if sticky && let Some(found) = self.sticky_choice(&candidates, client) {
            return Some(found);
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % candidates.len();
        let (pod, port) = candidates[turn];
        if sticky {
            self.remember(client, &pod.name);
        }
        Some(Pick {
            pod: pod.name.clone(),
            port,
        })
    }

    fn sticky_choice(&self, candidates: &[(&PodRoute, u16)], client: IpAddr) -> Option<Pick> {
        let table = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
        let name = table.get(&client)?;
        candidates
            .iter()
            .find(|(p, _)| &p.name == name)
            .map(|(p, port)| Pick {
                pod: p.name.clone(),
                port: *port,
            })
    }

    fn remember(&self, client: IpAddr, pod: &str) {
        let mut table = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_STICKY_CLIENTS {
            table.clear();
        }
        table.insert(client, pod.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn routes(names: &[&str]) -> Routes {
        Routes {
            pods: names
                .iter()
                .map(|n| PodRoute {
                    name: n.to_string(),
                    ports: vec![Some(8080)],
                })
                .collect(),
            service_affinity: false,
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn single_mode_always_takes_the_best_pod() {
        let picker = Picker::new(Spread::Single);
        let r = routes(&["best", "second"]);
        for _ in 0..10 {
            assert_eq!(picker.pick(&r, 0, ip(1), &[]).unwrap().pod, "best");
        }
    }

    #[test]
    fn single_mode_moves_on_when_the_best_pod_failed() {
        let picker = Picker::new(Spread::Single);
        let r = routes(&["best", "second"]);
        let pick = picker.pick(&r, 0, ip(1), &["best".to_string()]).unwrap();
        assert_eq!(pick.pod, "second");
    }

    #[test]
    fn no_ready_pod_means_no_pick() {
        for spread in [Spread::Single, Spread::RoundRobin, Spread::ClientAffinity] {
            assert_eq!(Picker::new(spread).pick(&routes(&[]), 0, ip(1), &[]), None);
        }
    }

    #[test]
    fn round_robin_spreads_evenly_over_all_ready_pods() {
        let picker = Picker::new(Spread::RoundRobin);
        let r = routes(&["a", "b", "c"]);
        let mut counts = HashMap::new();
        for _ in 0..300 {
            *counts
                .entry(picker.pick(&r, 0, ip(1), &[]).unwrap().pod)
                .or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3);
        assert!(counts.values().all(|&c| c == 100), "{counts:?}");
    }

    #[test]
    fn client_affinity_keeps_a_client_on_one_pod_and_spreads_clients() {
        let picker = Picker::new(Spread::ClientAffinity);
        let r = routes(&["a", "b", "c"]);
        let first = picker.pick(&r, 0, ip(1), &[]).unwrap().pod;
        for _ in 0..50 {
            assert_eq!(picker.pick(&r, 0, ip(1), &[]).unwrap().pod, first);
        }
        let others: HashSet<_> = (2..8)
            .map(|i| picker.pick(&r, 0, ip(i), &[]).unwrap().pod)
            .collect();
        assert!(
            others.len() >= 2,
            "different clients should land on different pods: {others:?}"
        );
    }

    #[test]
    fn affinity_moves_a_client_when_its_pod_goes_away() {
        let picker = Picker::new(Spread::ClientAffinity);
        let first = picker
            .pick(&routes(&["a", "b"]), 0, ip(1), &[])
            .unwrap()
            .pod;
        let remaining: Vec<&str> = ["a", "b"].into_iter().filter(|n| *n != first).collect();
        let r = routes(&remaining);
        let moved = picker.pick(&r, 0, ip(1), &[]).unwrap().pod;
        assert_ne!(moved, first);
        assert_eq!(
            picker.pick(&r, 0, ip(1), &[]).unwrap().pod,
            moved,
            "sticks to the new pod"
        );
    }

    #[test]
    fn follow_service_uses_the_services_session_affinity() {
        let picker = Picker::new(Spread::FollowService);
        let mut r = routes(&["a", "b", "c"]);
        let spread: HashSet<_> = (0..6)
            .map(|_| picker.pick(&r, 0, ip(1), &[]).unwrap().pod)
            .collect();
        assert_eq!(spread.len(), 3, "no affinity: round-robin");
        r.service_affinity = true;
        let first = picker.pick(&r, 0, ip(9), &[]).unwrap().pod;
        assert!((0..6).all(|_| picker.pick(&r, 0, ip(9), &[]).unwrap().pod == first));
    }

    #[test]
    fn pods_without_the_named_port_are_skipped() {
        let picker = Picker::new(Spread::RoundRobin);
        let r = Routes {
            pods: vec![
                PodRoute {
                    name: "old".into(),
                    ports: vec![None],
                },
                PodRoute {
                    name: "new".into(),
                    ports: vec![Some(9090)],
                },
            ],
            service_affinity: false,
        };
        for _ in 0..4 {
            assert_eq!(
                picker.pick(&r, 0, ip(1), &[]),
                Some(Pick {
                    pod: "new".into(),
                    port: 9090
                })
            );
        }
        assert!(r.can_serve(0));
        assert!(!r.can_serve(1));
    }
}
