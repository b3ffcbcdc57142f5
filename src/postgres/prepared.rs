//! The statements the proxy prepared on one server connection (server-side names), bounded:
//! at the limit the least recently used one is closed on the server to make room, as
//! PgBouncer (>= 1.21) does with `max_prepared_statements`. A server connection thus keeps
//! serving clients with ever new statements instead of being replaced.

use std::collections::HashMap;

use bytes::Bytes;

pub struct Prepared {
    /// Name -> when it was last used (a counter, not a clock).
    names: HashMap<Bytes, u64>,
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

    /// True when the server has `name`, which now counts as just used.
    pub fn touch(&mut self, name: &[u8]) -> bool {
        self.tick += 1;
        match self.names.get_mut(name) {
            Some(used) => {
                *used = self.tick;
                true
            }
            None => false,
        }
    }

    /// Records `name` as prepared. When that makes one too many, the least recently used
    /// other statement is forgotten and returned: it must be closed on the server before
    /// `name` is prepared.
    pub fn insert(&mut self, name: Bytes) -> Option<Bytes> {
        self.tick += 1;
        let evicted = if self.names.len() >= self.limit && !self.names.contains_key(&name) {
            let oldest = self
                .names
                .iter()
                .min_by_key(|(_, used)| **used)
                .map(|(n, _)| n.clone());
            oldest.inspect(|n| {
                self.names.remove(n);
            })
        } else {
            None
        };
        self.names.insert(name, self.tick);
        evicted
    }

    /// A statement the server turned out not to have (its Parse failed).
    pub fn remove(&mut self, name: &[u8]) {
        self.names.remove(name);
    }

    /// A statement the server still has after all (the Close that evicted it was skipped
    /// after an error): kept, over the limit if need be, until the next eviction.
    pub fn restore(&mut self, name: Bytes) {
        self.names.entry(name).or_insert(0);
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
        assert!(p.touch(b"a"));
        assert_eq!(p.insert(b("c")), Some(b("b")));
        assert!(!p.touch(b"b"));
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
        p.clear();
        assert!(p.is_empty());
    }
}
