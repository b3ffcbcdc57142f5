//! The protocol adapters this gateway is built with: the one list the core reads
//! (`protocol.rs` says what an adapter provides).

use crate::config::ServiceKind;
use crate::protocol::Protocol;

static ALL: [&dyn Protocol; 4] = [
    &crate::tcp::Adapter,
    &crate::redis::Adapter,
    &crate::postgres::Adapter,
    &crate::kafka::Adapter,
];

pub fn all() -> &'static [&'static dyn Protocol] {
    &ALL
}

/// The adapter serving services of `kind` (every kind has one: `tests` checks).
pub fn of(kind: ServiceKind) -> &'static dyn Protocol {
    ALL.iter()
        .copied()
        .find(|a| a.kind() == kind)
        .unwrap_or(ALL[0])
}

#[cfg(test)]
mod tests {
    use crate::config::ServiceKind;

    #[test]
    fn every_service_kind_has_its_adapter() {
        for kind in [
            ServiceKind::Tcp,
            ServiceKind::Redis,
            ServiceKind::Postgres,
            ServiceKind::Kafka,
        ] {
            assert_eq!(super::of(kind).kind(), kind);
        }
    }
}

#[cfg(test)]
mod size_tests {
    fn future_size<A, B, F>(_: impl Fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every connection's task is allocated at this size for its whole life, idle or not
    /// (`benches/idle_connections.sh`): rare paths are boxed where they are taken, and
    /// `session::run` boxes the one protocol a connection speaks (the Redis loop is boxed per stream
    /// type and guarded in `redis::session`). Bounds for the debug build the tests run on
    /// (release futures are a little smaller).
    #[test]
    fn connection_tasks_stay_small() {
        let sizes = [
            ("run", future_size(crate::session::run), 512),
            ("tcp", future_size(crate::tcp::serve), 1_536),
            ("redis", future_size(crate::redis::serve), 2_048),
            ("postgres", future_size(crate::postgres::serve), 4_608),
            ("kafka", future_size(crate::kafka::serve), 3_072),
        ];
        for (name, size, bound) in sizes {
            assert!(
                size <= bound,
                "{name}'s connection future is {size} bytes (bound {bound})"
            );
        }
    }
}
