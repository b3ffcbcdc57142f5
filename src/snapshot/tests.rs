use super::*;
use crate::config::parse_cluster;

fn loaded(text: &str) -> Vec<LoadedCluster> {
    vec![LoadedCluster {
        path: "c.yaml".into(),
        config: parse_cluster(text).unwrap(),
    }]
}

const BASE: &str = "cluster_id: c\nname: n\nservices:\n  a:\n    type: tcp\n    backends:\n      - {host: 127.0.0.1, port: 1}\n      - {host: 127.0.0.1, port: 2, role: replica}\n  b:\n    type: tcp\n    host: 127.0.0.1\n    port: 3\n";

#[test]
fn unchanged_services_and_backends_are_reused() {
    let s1 = Snapshot::build(&loaded(BASE), false, &Snapshot::default());
    let changed = BASE.replace("port: 3", "port: 4");
    let s2 = Snapshot::build(&loaded(&changed), false, &s1);
    let (a1, a2) = (s1.service("c", "a").unwrap(), s2.service("c", "a").unwrap());
    assert!(Arc::ptr_eq(a1, a2), "unchanged service keeps its runtime");
    let (b1, b2) = (s1.service("c", "b").unwrap(), s2.service("c", "b").unwrap());
    assert!(!Arc::ptr_eq(b1, b2));
    assert_eq!(b2.backends[0].port, 4);
}

#[test]
fn changed_service_keeps_state_of_backends_that_stayed() {
    let s1 = Snapshot::build(&loaded(BASE), false, &Snapshot::default());
    let more = BASE.replace(
        "      - {host: 127.0.0.1, port: 2, role: replica}\n",
        "      - {host: 127.0.0.1, port: 2, role: replica}\n      - {host: 127.0.0.1, port: 9}\n",
    );
    let s2 = Snapshot::build(&loaded(&more), false, &s1);
    let (a1, a2) = (s1.service("c", "a").unwrap(), s2.service("c", "a").unwrap());
    assert!(Arc::ptr_eq(&a1.backends[0], &a2.backends[0]));
    assert!(Arc::ptr_eq(&a1.backends[1], &a2.backends[1]));
    assert_eq!(a2.backends.len(), 3);
}

#[test]
fn failover_to_replica_only_when_primaries_are_down() {
    let s = Snapshot::build(&loaded(BASE), false, &Snapshot::default());
    let a = s.service("c", "a").unwrap();
    assert_eq!(a.choose(&[]).unwrap().port, 1);
    // Primary fails its probes: traffic goes to the replica.
    let now = Instant::now();
    for _ in 0..2 {
        a.backends[0].record_probe(false, now, a.probe_thresholds());
    }
    assert_eq!(a.choose(&[]).unwrap().port, 2);
    // Nothing left once the replica is excluded too.
    assert!(a.choose(&[1]).is_none());
}

#[test]
fn no_failover_means_no_replica() {
    let text = BASE.replace(
        "services:",
        "routing:\n  failover_enabled: false\nservices:",
    );
    let s = Snapshot::build(&loaded(&text), false, &Snapshot::default());
    let a = s.service("c", "a").unwrap();
    a.backends[0].record_failure(Instant::now(), 1);
    assert!(a.choose(&[]).is_none());
}

#[test]
fn enable_ai_makes_adaptive_the_default() {
    let s = Snapshot::build(&loaded(BASE), true, &Snapshot::default());
    assert_eq!(
        s.service("c", "a").unwrap().spec.strategy,
        Strategy::Adaptive
    );
    let s = Snapshot::build(&loaded(BASE), false, &Snapshot::default());
    assert_eq!(
        s.service("c", "a").unwrap().spec.strategy,
        Strategy::RoundRobin
    );
}
