//! SCAN on a sharded service: the shards are walked one after another, so
//! `redis-cli --scan` and every client's scan loop work through the proxy (twemproxy and
//! Envoy refuse SCAN). The cursor the client sees carries the shard in its low bits and the
//! shard's own cursor above them; when a shard's cursor comes back 0 the next call starts
//! the next shard, and 0 is returned after the last one. Redis's guarantee holds per shard:
//! a key present for the whole scan is returned at least once.
//! <https://redis.io/docs/latest/commands/scan/>

use bytes::{Bytes, BytesMut};

use super::merge::MergeKind;
use super::sharded::{Plan, Split};

/// Bits of the client's cursor that name the shard: up to 1024 shards, and a cursor that
/// stays valid whatever the shard count (a shard's own cursor fits the rest: Redis cursors
/// are bounded by its hash table size).
const SHARD_BITS: u32 = 10;
const MAX_SHARDS: u64 = 1 << SHARD_BITS;

/// `SCAN cursor [MATCH p] [COUNT n] [TYPE t]` for the shard the cursor names, with the
/// shard's own cursor in place of the client's.
pub fn plan(args: &[&[u8]], shards: usize) -> Plan {
    let Some(cursor) = args
        .get(1)
        .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok())
    else {
        return Plan::Refuse(Bytes::from_static(b"-ERR invalid cursor\r\n"));
    };
    let (shard, inner) = split(cursor);
    if shard >= shards.min(MAX_SHARDS as usize) {
        // Past the last shard (a cursor from before shards were removed): the scan is over.
        return Plan::Refuse(reply(0, Bytes::from_static(b"*0\r\n")));
    }
    let inner = inner.to_string();
    let mut cmd: Vec<&[u8]> = args.to_vec();
    cmd[1] = inner.as_bytes();
    let mut bytes = Vec::new();
    super::encode::command(&mut bytes, &cmd);
    Plan::Split(Split {
        parts: vec![(shard, Bytes::from(bytes), Vec::new())],
        kind: MergeKind::Scan { shard, shards },
        total: 0,
        every_shard: true,
    })
}

/// (shard, the shard's cursor) of a client's cursor.
fn split(cursor: u64) -> (usize, u64) {
    ((cursor % MAX_SHARDS) as usize, cursor >> SHARD_BITS)
}

/// The client's cursor after `shard` answered `inner`: the same shard while it has more, the
/// next shard's start when it is done, 0 after the last. `None` if the shard's cursor is too
/// large to carry (not a cursor Redis makes).
pub fn next(shard: usize, shards: usize, inner: u64) -> Option<u64> {
    if inner != 0 {
        return inner.checked_mul(MAX_SHARDS).map(|c| c | shard as u64);
    }
    let following = shard + 1;
    Some(if following < shards.min(MAX_SHARDS as usize) {
        following as u64
    } else {
        0
    })
}

/// `[cursor, keys]` as SCAN answers.
pub fn reply(cursor: u64, keys: Bytes) -> Bytes {
    let cursor = cursor.to_string();
    let mut out = BytesMut::with_capacity(keys.len() + 32);
    out.extend_from_slice(format!("*2\r\n${}\r\n{cursor}\r\n", cursor.len()).as_bytes());
    out.extend_from_slice(&keys);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_walk_every_shard_then_end() {
        // Shard 0 from the start, more to come on it, then done with it: on to shard 1.
        assert_eq!(split(0), (0, 0));
        let c = next(0, 3, 17).unwrap();
        assert_eq!(split(c), (0, 17));
        assert_eq!(next(0, 3, 0), Some(1));
        assert_eq!(split(1), (1, 0));
        let c = next(2, 3, 5).unwrap();
        assert_eq!(split(c), (2, 5));
        assert_eq!(
            next(2, 3, 0),
            Some(0),
            "the last shard done: the scan is over"
        );
        assert_eq!(next(0, 1, u64::MAX), None);
    }

    #[test]
    fn the_shard_gets_its_own_cursor_and_the_options() {
        let cursor = next(1, 3, 42).unwrap().to_string();
        let args: [&[u8]; 4] = [b"SCAN", cursor.as_bytes(), b"MATCH", b"user:*"];
        let Plan::Split(Split { parts, kind, .. }) = plan(&args, 3) else {
            panic!("not split");
        };
        assert_eq!(
            kind,
            MergeKind::Scan {
                shard: 1,
                shards: 3
            }
        );
        assert_eq!(parts[0].0, 1);
        assert_eq!(
            parts[0].1.as_ref(),
            b"*4\r\n$4\r\nSCAN\r\n$2\r\n42\r\n$5\r\nMATCH\r\n$6\r\nuser:*\r\n"
        );
        let bad: [&[u8]; 2] = [b"SCAN", b"x"];
        assert!(
            matches!(plan(&bad, 3), Plan::Refuse(e) if e.as_ref() == b"-ERR invalid cursor\r\n")
        );
        let past: [&[u8]; 2] = [b"SCAN", b"7"];
        assert!(
            matches!(plan(&past, 3), Plan::Refuse(r) if r.as_ref() == b"*2\r\n$1\r\n0\r\n*0\r\n")
        );
    }
}
