//! Redis Cluster backends (`sharding: cluster`): the slot of a key (CRC16 of its hash tag, as
//! in the Redis Cluster specification), and the slot map read from `CLUSTER SLOTS` of any
//! reachable node. <https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/>

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use throome_resp::{ReplyLimits, ReplyScanner};

use super::upstream::{self, UpstreamError};
use crate::snapshot::ServiceRuntime;

pub const SLOTS: usize = 16384;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster uses for key slots.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a key: of its `{tag}` when it has a non-empty one.
pub fn slot(key: &[u8]) -> usize {
    usize::from(crc16(super::shard::hash_tag(key, Some(*b"{}")))) % SLOTS
}

/// Which master serves each slot, and its replicas.
#[derive(Debug, Clone)]
pub struct SlotMap {
    /// Index into `nodes` per slot; `usize::MAX` where no node serves it.
    pub owner: Vec<usize>,
    /// Master addresses (host, port).
    pub nodes: Vec<(String, u16)>,
    /// The replicas of each master in `nodes` (same index), as `CLUSTER SLOTS` lists them.
    pub replicas: Vec<Vec<(String, u16)>>,
}

impl SlotMap {
    pub fn node_of(&self, slot: usize) -> Option<&(String, u16)> {
        self.owner.get(slot).and_then(|&i| self.nodes.get(i))
    }

    /// The replicas of the master serving `slot` (none where none are known).
    pub fn replicas_of(&self, slot: usize) -> &[(String, u16)] {
        self.owner
            .get(slot)
            .and_then(|&i| self.replicas.get(i))
            .map_or(&[], Vec::as_slice)
    }

    /// Records a `MOVED slot host:port` redirect.
    pub fn moved(&mut self, slot: usize, host: &str, port: u16) {
        let index = match self.nodes.iter().position(|n| n.0 == host && n.1 == port) {
            Some(i) => i,
            None => {
                self.nodes.push((host.to_string(), port));
                self.replicas.push(Vec::new());
                self.nodes.len() - 1
            }
        };
        if let Some(o) = self.owner.get_mut(slot) {
            *o = index;
        }
    }
}

/// `MOVED 3999 127.0.0.1:6381` or `ASK 3999 127.0.0.1:6381`: (ask, slot, host, port).
pub fn redirect(error_line: &[u8]) -> Option<(bool, usize, String, u16)> {
    let text = std::str::from_utf8(error_line).ok()?;
    let mut parts = text.split(' ');
    let ask = match parts.next()? {
        "MOVED" => false,
        "ASK" => true,
        _ => return None,
    };
    let slot = parts.next()?.parse().ok()?;
    let (host, port) = parts.next()?.rsplit_once(':')?;
    Some((
        ask,
        slot,
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port.parse().ok()?,
    ))
}

/// Reads the slot map from the first backend that answers `CLUSTER SLOTS`.
pub async fn fetch(
    service: &ServiceRuntime,
    seeds: &[(String, u16)],
) -> Result<SlotMap, UpstreamError> {
    let mut last = UpstreamError::NoBackend(service.key());
    for (host, port) in seeds {
        match fetch_from(service, host, *port).await {
            Ok(map) => return Ok(map),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn fetch_from(
    service: &ServiceRuntime,
    host: &str,
    port: u16,
) -> Result<SlotMap, UpstreamError> {
    let mut stream = upstream::open(service, (host, port), false).await?;
    let io = |e: std::io::Error| UpstreamError::Handshake(e.to_string());
    stream
        .write_all(b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n")
        .await
        .map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut scanner = ReplyScanner::new(ReplyLimits::default());
    let mut buf = BytesMut::new();
    let reply = loop {
        if let Some(r) = scanner.scan(&mut buf)? {
            break r;
        }
        let read =
            tokio::time::timeout(service.spec.connect_timeout, stream.read_buf(&mut buf)).await;
        if !matches!(read, Ok(Ok(n)) if n > 0) {
            return Err(UpstreamError::Lost);
        }
    };
    if reply.is_error() {
        return Err(UpstreamError::Handshake(
            String::from_utf8_lossy(reply.frame()).trim().to_string(),
        ));
    }
    parse_slots(reply.frame(), host)
        .ok_or_else(|| UpstreamError::Handshake("unreadable CLUSTER SLOTS reply".into()))
}

/// A RESP value, just enough for `CLUSTER SLOTS`.
#[derive(Debug)]
enum Value {
    Int(i64),
    Str(String),
    Array(Vec<Value>),
    Other,
}

fn parse(buf: &[u8]) -> Option<(Value, usize)> {
    let eol = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..eol]).ok()?;
    let after = eol + 2;
    match buf.first()? {
        b':' => Some((Value::Int(line.parse().ok()?), after)),
        b'+' => Some((Value::Str(line.to_string()), after)),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some((Value::Other, after));
            }
            let end = after + usize::try_from(len).ok()?;
            let s = std::str::from_utf8(buf.get(after..end)?).ok()?.to_string();
            Some((Value::Str(s), end + 2))
        }
        b'*' => {
            let n: i64 = line.parse().ok()?;
            let mut items = Vec::new();
            let mut pos = after;
            for _ in 0..n.max(0) {
                let (v, used) = parse(buf.get(pos..)?)?;
                items.push(v);
                pos += used;
            }
            Some((Value::Array(items), pos))
        }
        _ => None,
    }
}

/// `[[start, end, [host, port, id, ...], replicas...], ...]`. An empty host means "the node
/// you asked", as Redis reports it when it does not know its own address.
fn parse_slots(frame: &[u8], asked: &str) -> Option<SlotMap> {
    let (Value::Array(ranges), _) = parse(frame)? else {
        return None;
    };
    let mut map = SlotMap {
        owner: vec![usize::MAX; SLOTS],
        nodes: Vec::new(),
        replicas: Vec::new(),
    };
    for range in ranges {
        let Value::Array(fields) = range else {
            return None;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(master)) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return None;
        };
        let master = address(master, asked)?;
        let index = match map.nodes.iter().position(|n| *n == master) {
            Some(i) => i,
            None => {
                map.nodes.push(master);
                map.replicas.push(Vec::new());
                map.nodes.len() - 1
            }
        };
        for replica in &fields[3..] {
            let replica = address(replica, asked)?;
            if !map.replicas[index].contains(&replica) {
                map.replicas[index].push(replica);
            }
        }
        let (start, end) = (usize::try_from(*start).ok()?, usize::try_from(*end).ok()?);
        for slot in start..=end.min(SLOTS - 1) {
            map.owner[slot] = index;
        }
    }
    Some(map)
}

/// A node of a `CLUSTER SLOTS` range: `[host, port, id, ...]`.
fn address(node: &Value, asked: &str) -> Option<(String, u16)> {
    let Value::Array(node) = node else {
        return None;
    };
    let (Some(Value::Str(host)), Some(Value::Int(port))) = (node.first(), node.get(1)) else {
        return None;
    };
    let host = if host.is_empty() { asked } else { host };
    Some((host.to_string(), u16::try_from(*port).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_spec() {
        // Examples from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{}foo"), usize::from(crc16(b"{}foo")) % SLOTS);
    }

    #[test]
    fn redirects_parse() {
        assert_eq!(
            redirect(b"MOVED 3999 127.0.0.1:6381"),
            Some((false, 3999, "127.0.0.1".into(), 6381))
        );
        assert_eq!(
            redirect(b"ASK 1 ::1:7000"),
            Some((true, 1, "::1".into(), 7000))
        );
        assert_eq!(redirect(b"ERR nope"), None);
    }

    #[test]
    fn cluster_slots_reply_parses() {
        // The second range has a replica on 7002.
        let reply = b"*2\r\n*3\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*4\r\n:5461\r\n:16383\r\n*3\r\n$0\r\n\r\n:7001\r\n$2\r\nid\r\n*3\r\n$9\r\n127.0.0.1\r\n:7002\r\n$2\r\nr1\r\n";
        let map = parse_slots(reply, "10.0.0.9").unwrap();
        assert_eq!(map.node_of(0), Some(&("127.0.0.1".to_string(), 7000)));
        assert_eq!(map.node_of(16383), Some(&("10.0.0.9".to_string(), 7001)));
        assert!(map.replicas_of(0).is_empty());
        assert_eq!(map.replicas_of(16383), [("127.0.0.1".to_string(), 7002)]);
    }
}
