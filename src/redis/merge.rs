//! Combining the replies of a command split across shards, in the client's original order:
//! MGET's values go back to their key positions, DEL/UNLINK/EXISTS/TOUCH/DBSIZE counts add
//! up, MSET/FLUSHALL/FLUSHDB succeed only if every shard did, KEYS lists concatenate. An
//! error from any shard is the client's reply, as twemproxy does.

use bytes::{Bytes, BytesMut};
use throome_resp::{Reply, ReplyLimits, ReplyScanner};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeKind {
    /// Elements placed at the original positions of their keys (MGET).
    Positions,
    /// Integer replies added up.
    Sum,
    /// `+OK` from every part.
    AllOk,
    /// Arrays concatenated in shard order (KEYS).
    Concat,
    /// One shard's SCAN answer, its cursor turned into the client's (`super::scan`).
    Scan {
        shard: usize,
        shards: usize,
    },
    /// Every shard succeeded: the first shard's reply (SCRIPT LOAD's SHA is the same on all).
    AllSucceeded,
    /// The first reply that is not an error, else the first error (SCRIPT KILL).
    OneSucceeded,
    /// The smallest / largest integer reply.
    Min,
    Max,
    /// Arrays of 0/1 combined element by element (SCRIPT EXISTS).
    And,
    Or,
    /// The first reply that is not nil (RANDOMKEY).
    AnyValue,
    /// Arrays joined without repeats, in first-seen order (PUBSUB CHANNELS).
    Union,
    /// `[name, count, ...]` arrays added up per name (PUBSUB NUMSUB).
    PairSum,
}

/// One shard's reply and, for `Positions`, where its elements go.
pub struct Part {
    pub reply: Reply,
    pub positions: Vec<usize>,
}

pub fn merge(kind: MergeKind, total: usize, parts: Vec<Part>) -> Bytes {
    if kind == MergeKind::OneSucceeded
        && let Some(ok) = parts.iter().find(|p| !p.reply.is_error())
    {
        return ok.reply.frame().clone();
    }
    if let Some(err) = parts.iter().find(|p| p.reply.is_error()) {
        return err.reply.frame().clone();
    }
    match kind {
        MergeKind::AllSucceeded | MergeKind::OneSucceeded => parts
            .first()
            .map_or_else(unexpected, |p| p.reply.frame().clone()),
        MergeKind::AnyValue => parts
            .iter()
            .map(|p| p.reply.frame())
            .find(|f| !is_nil(f))
            .or(parts.first().map(|p| p.reply.frame()))
            .map_or_else(unexpected, Bytes::clone),
        MergeKind::Min | MergeKind::Max => {
            let ints: Option<Vec<i64>> = parts.iter().map(|p| integer(p.reply.frame())).collect();
            let pick = match kind {
                MergeKind::Min => ints.and_then(|v| v.into_iter().min()),
                _ => ints.and_then(|v| v.into_iter().max()),
            };
            pick.map_or_else(unexpected, |n| Bytes::from(format!(":{n}\r\n")))
        }
        MergeKind::And | MergeKind::Or => logical(kind == MergeKind::And, &parts),
        MergeKind::Union => union(&parts),
        MergeKind::PairSum => pair_sum(&parts),
        MergeKind::Sum => {
            let mut sum: i64 = 0;
            for p in &parts {
                match integer(p.reply.frame()) {
                    Some(n) => sum = sum.saturating_add(n),
                    None => return unexpected(),
                }
            }
            Bytes::from(format!(":{sum}\r\n"))
        }
        MergeKind::AllOk => {
            if parts.iter().all(|p| p.reply.frame().as_ref() == b"+OK\r\n") {
                Bytes::from_static(b"+OK\r\n")
            } else {
                unexpected()
            }
        }
        MergeKind::Positions => {
            let mut slots: Vec<Option<Bytes>> = vec![None; total];
            for p in &parts {
                let Some(items) = elements(p.reply.frame()) else {
                    return unexpected();
                };
                if items.len() != p.positions.len() {
                    return unexpected();
                }
                for (item, &pos) in items.into_iter().zip(&p.positions) {
                    if let Some(slot) = slots.get_mut(pos) {
                        *slot = Some(item);
                    }
                }
            }
            let mut out = BytesMut::from(format!("*{total}\r\n").as_bytes());
            for s in slots {
                match s {
                    Some(item) => out.extend_from_slice(&item),
                    None => return unexpected(),
                }
            }
            out.freeze()
        }
        MergeKind::Scan { shard, shards } => {
            let Some([cursor, keys]) = parts
                .first()
                .and_then(|p| <[Bytes; 2]>::try_from(elements(p.reply.frame())?).ok())
            else {
                return unexpected();
            };
            let next = bulk(&cursor)
                .and_then(|c| c.parse().ok())
                .and_then(|inner| super::scan::next(shard, shards, inner));
            match next {
                Some(next) => super::scan::reply(next, keys),
                None => unexpected(),
            }
        }
        MergeKind::Concat => {
            let mut all = Vec::new();
            for p in &parts {
                let Some(items) = elements(p.reply.frame()) else {
                    return unexpected();
                };
                all.extend(items);
            }
            array(&all)
        }
    }
}

/// SCRIPT EXISTS on every shard: a script exists if it does on all (And) / any (Or).
fn logical(and: bool, parts: &[Part]) -> Bytes {
    let mut combined: Option<Vec<i64>> = None;
    for p in parts {
        let Some(items) = elements(p.reply.frame()) else {
            return unexpected();
        };
        let Some(values) = items
            .iter()
            .map(|i| integer(i))
            .collect::<Option<Vec<i64>>>()
        else {
            return unexpected();
        };
        combined = Some(match combined {
            None => values,
            Some(c) if c.len() == values.len() => c
                .iter()
                .zip(&values)
                .map(|(a, b)| match and {
                    true => i64::from(*a != 0 && *b != 0),
                    false => i64::from(*a != 0 || *b != 0),
                })
                .collect(),
            Some(_) => return unexpected(),
        });
    }
    let values = combined.unwrap_or_default();
    let mut out = BytesMut::from(format!("*{}\r\n", values.len()).as_bytes());
    values
        .iter()
        .for_each(|v| out.extend_from_slice(format!(":{v}\r\n").as_bytes()));
    out.freeze()
}

fn union(parts: &[Part]) -> Bytes {
    let mut all: Vec<Bytes> = Vec::new();
    for p in parts {
        let Some(items) = elements(p.reply.frame()) else {
            return unexpected();
        };
        for item in items {
            if !all.contains(&item) {
                all.push(item);
            }
        }
    }
    array(&all)
}

fn pair_sum(parts: &[Part]) -> Bytes {
    let mut sums: Vec<(Bytes, i64)> = Vec::new();
    for p in parts {
        let Some(items) = elements(p.reply.frame()) else {
            return unexpected();
        };
        for pair in items.chunks(2) {
            let [name, count] = pair else {
                return unexpected();
            };
            let Some(n) = integer(count) else {
                return unexpected();
            };
            match sums.iter_mut().find(|(s, _)| s == name) {
                Some(entry) => entry.1 = entry.1.saturating_add(n),
                None => sums.push((name.clone(), n)),
            }
        }
    }
    let mut flat = Vec::with_capacity(sums.len() * 2);
    for (name, n) in sums {
        flat.push(name);
        flat.push(Bytes::from(format!(":{n}\r\n")));
    }
    array(&flat)
}

/// An array of already-framed elements.
fn array(items: &[Bytes]) -> Bytes {
    let mut out = BytesMut::from(format!("*{}\r\n", items.len()).as_bytes());
    items.iter().for_each(|i| out.extend_from_slice(i));
    out.freeze()
}

/// RESP2's nil bulk and array, RESP3's null.
fn is_nil(frame: &[u8]) -> bool {
    matches!(frame, b"$-1\r\n" | b"*-1\r\n" | b"_\r\n")
}

fn unexpected() -> Bytes {
    Bytes::from_static(b"-ERR Throome: unexpected reply from a shard\r\n")
}

fn integer(frame: &[u8]) -> Option<i64> {
    std::str::from_utf8(frame.strip_prefix(b":")?.strip_suffix(b"\r\n")?)
        .ok()?
        .parse()
        .ok()
}

/// The text of a bulk string reply.
fn bulk(frame: &[u8]) -> Option<&str> {
    let rest = frame.strip_prefix(b"$")?;
    let eol = rest.windows(2).position(|w| w == b"\r\n")?;
    std::str::from_utf8(rest.get(eol + 2..)?.strip_suffix(b"\r\n")?).ok()
}

/// The elements of an array (or set) reply, each as its own frame.
fn elements(frame: &Bytes) -> Option<Vec<Bytes>> {
    let (&kind, rest) = frame.split_first()?;
    if kind != b'*' && kind != b'~' {
        return None;
    }
    let eol = rest.windows(2).position(|w| w == b"\r\n")?;
    let n: usize = std::str::from_utf8(&rest[..eol]).ok()?.parse().ok()?;
    let mut buf = BytesMut::from(&rest[eol + 2..]);
    let mut scanner = ReplyScanner::new(ReplyLimits::default());
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(scanner.scan(&mut buf).ok()??.into_frame());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(bytes: &'static [u8]) -> Reply {
        let mut s = ReplyScanner::new(ReplyLimits::default());
        s.scan(&mut BytesMut::from(bytes)).unwrap().unwrap()
    }

    #[test]
    fn mget_values_return_to_their_positions() {
        let parts = vec![
            Part {
                reply: reply(b"*2\r\n$1\r\na\r\n$-1\r\n"),
                positions: vec![0, 2],
            },
            Part {
                reply: reply(b"*1\r\n$1\r\nb\r\n"),
                positions: vec![1],
            },
        ];
        assert_eq!(
            merge(MergeKind::Positions, 3, parts).as_ref(),
            b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n"
        );
    }

    #[test]
    fn counts_add_and_oks_combine() {
        let sum = vec![
            Part {
                reply: reply(b":2\r\n"),
                positions: vec![],
            },
            Part {
                reply: reply(b":3\r\n"),
                positions: vec![],
            },
        ];
        assert_eq!(merge(MergeKind::Sum, 0, sum).as_ref(), b":5\r\n");
        let ok = vec![
            Part {
                reply: reply(b"+OK\r\n"),
                positions: vec![],
            },
            Part {
                reply: reply(b"+OK\r\n"),
                positions: vec![],
            },
        ];
        assert_eq!(merge(MergeKind::AllOk, 0, ok).as_ref(), b"+OK\r\n");
    }

    #[test]
    fn an_error_from_any_shard_wins() {
        let parts = vec![
            Part {
                reply: reply(b":1\r\n"),
                positions: vec![],
            },
            Part {
                reply: reply(b"-ERR boom\r\n"),
                positions: vec![],
            },
        ];
        assert_eq!(merge(MergeKind::Sum, 0, parts).as_ref(), b"-ERR boom\r\n");
    }

    #[test]
    fn a_scan_answer_gets_the_clients_cursor() {
        let parts = vec![Part {
            reply: reply(b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n"),
            positions: vec![],
        }];
        let kind = MergeKind::Scan {
            shard: 0,
            shards: 2,
        };
        // Shard 0 is done: the client's next call starts shard 1 (cursor 1).
        assert_eq!(
            merge(kind, 0, parts).as_ref(),
            b"*2\r\n$1\r\n1\r\n*1\r\n$1\r\na\r\n"
        );
    }

    #[test]
    fn fan_out_replies_combine_by_redis_policy() {
        let part = |bytes: &'static [u8]| Part {
            reply: reply(bytes),
            positions: vec![],
        };
        let exists = vec![part(b"*2\r\n:1\r\n:0\r\n"), part(b"*2\r\n:1\r\n:1\r\n")];
        assert_eq!(
            merge(MergeKind::And, 0, exists).as_ref(),
            b"*2\r\n:1\r\n:0\r\n"
        );
        let exists = vec![part(b"*2\r\n:1\r\n:0\r\n"), part(b"*2\r\n:0\r\n:0\r\n")];
        assert_eq!(
            merge(MergeKind::Or, 0, exists).as_ref(),
            b"*2\r\n:1\r\n:0\r\n"
        );
        let sha = || vec![part(b"$3\r\nabc\r\n"), part(b"$3\r\nabc\r\n")];
        assert_eq!(
            merge(MergeKind::AllSucceeded, 0, sha()).as_ref(),
            b"$3\r\nabc\r\n"
        );
        let random = vec![part(b"$-1\r\n"), part(b"$1\r\nk\r\n")];
        assert_eq!(
            merge(MergeKind::AnyValue, 0, random).as_ref(),
            b"$1\r\nk\r\n"
        );
        let kill = vec![part(b"-NOTBUSY No scripts\r\n"), part(b"+OK\r\n")];
        assert_eq!(merge(MergeKind::OneSucceeded, 0, kill).as_ref(), b"+OK\r\n");
        let channels = vec![
            part(b"*1\r\n$1\r\na\r\n"),
            part(b"*2\r\n$1\r\nb\r\n$1\r\na\r\n"),
        ];
        assert_eq!(
            merge(MergeKind::Union, 0, channels).as_ref(),
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        let numsub = vec![
            part(b"*2\r\n$1\r\na\r\n:1\r\n"),
            part(b"*2\r\n$1\r\na\r\n:2\r\n"),
        ];
        assert_eq!(
            merge(MergeKind::PairSum, 0, numsub).as_ref(),
            b"*2\r\n$1\r\na\r\n:3\r\n"
        );
        let acks = vec![part(b":2\r\n"), part(b":0\r\n")];
        assert_eq!(merge(MergeKind::Min, 0, acks).as_ref(), b":0\r\n");
    }

    #[test]
    fn keys_concatenate() {
        let parts = vec![
            Part {
                reply: reply(b"*1\r\n$1\r\na\r\n"),
                positions: vec![],
            },
            Part {
                reply: reply(b"*0\r\n"),
                positions: vec![],
            },
        ];
        assert_eq!(
            merge(MergeKind::Concat, 0, parts).as_ref(),
            b"*1\r\n$1\r\na\r\n"
        );
    }
}
