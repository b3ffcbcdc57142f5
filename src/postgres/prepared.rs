//! The statements the proxy prepared on one server connection (server-side names), bounded:
//! at the limit the least recently used one is closed on the server to make room, as
//! PgBouncer (>= 1.21) does with `max_prepared_statements`. A server connection thus keeps
//! serving clients with ever new statements instead of being replaced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

/// Orders Parse messages across the whole gateway: a client's statement may be served by a
/// server's copy only if that copy was prepared after the client's Parse, so its
/// description reflects the schema the client saw (`cached plan must not change result
/// type` otherwise, or a stale type oid).
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A new generation, later than every one handed out before.
pub fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

struct Entry {
    /// When it was last used (a counter, not a clock).
    used: u64,
    /// The generation it was prepared in on this server; 0 when unknown (kept after a
    /// skipped Close), so any client's statement has it prepared again first.
    born: u64,
}

pub struct Prepared {
    names: HashMap<Bytes, Entry>,
    tick: u64,
    limit: usize,
}

impl Prepared {
    /// At most `limit` statements (at least one).
    pub fn new(limit: usize) -> Prepared {
        Prepared {
            names: HashMap::new(),
            tick: 0,
            limit: limit.max(1),
        }
    }

    /// The generation of the server's copy of `name` (which now counts as just used), if
    /// it has one.
    pub fn touch(&mut self, name: &[u8]) -> Option<u64> {
        self.tick += 1;
        let entry = self.names.get_mut(name)?;
        entry.used = self.tick;
        Some(entry.born)
    }

    /// Records `name` as prepared now (again, if it was there). When that makes one too
    /// many, the least recently used other statement is forgotten and returned: it must be
    /// closed on the server before `name` is prepared.
    pub fn insert(&mut self, name: Bytes) -> Option<Bytes> {
        self.tick += 1;
        let evicted = if self.names.len() >= self.limit && !self.names.contains_key(&name) {
            let oldest = self
                .names
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(n, _)| n.clone());
            oldest.inspect(|n| {
                self.names.remove(n);
            })
        } else {
            None
        };
        let entry = Entry {
            used: self.tick,
            born: next_generation(),
        };
        self.names.insert(name, entry);
        evicted
    }

    /// A statement the server turned out not to have (its Parse failed).
    pub fn remove(&mut self, name: &[u8]) {
        self.names.remove(name);
    }

    /// A statement the server still has after all (the Close before its Parse was skipped
    /// after an error): kept, over the limit if need be, of unknown generation.
    pub fn restore(&mut self, name: Bytes) {
        let entry = self.names.entry(name).or_insert(Entry { used: 0, born: 0 });
        entry.born = 0;
    }

    pub fn clear(&mut self) {
        self.names.clear();
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn the_least_recently_used_goes_first() {
        let mut p = Prepared::new(2);
        assert_eq!(p.insert(b("a")), None);
        assert_eq!(p.insert(b("b")), None);
        assert!(p.touch(b"a").is_some());
        assert_eq!(p.insert(b("c")), Some(b("b")));
        assert!(p.touch(b"b").is_none());
        assert_eq!(p.insert(b("d")), Some(b("a")));
        assert_eq!(p.len(), 2);
        // Inserting what is there evicts nothing.
        assert_eq!(p.insert(b("d")), None);
    }

    #[test]
    fn restored_statements_are_evicted_first() {
        let mut p = Prepared::new(1);
        p.insert(b("a"));
        p.restore(b("z"));
        assert_eq!(p.len(), 2);
        assert_eq!(p.insert(b("c")), Some(b("z")));
        p.remove(b"a");
        assert_eq!(p.touch(b"c").map(|born| born > 0), Some(true));
        p.insert(b("r"));
        p.restore(b("r"));
        assert_eq!(p.touch(b"r"), Some(0), "a restored copy is of unknown age");
        p.clear();
        assert!(p.is_empty());
    }
}
