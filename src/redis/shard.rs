//! Key-based sharding compatible with twemproxy (`distribution: ketama` or `modula`, its
//! `hash` functions, `hash_tag`), so a deployment can move from twemproxy to Throome without
//! moving keys: the same continuum of 160 points per server (MD5 of `"host:port-N"`, four
//! points per digest, proportional to weight), or for modula each server as many times as
//! its weight, and the same key hash (`super::hash`).
//! Reference: twemproxy `src/hashkit/nc_ketama.c` and `nc_modula.c`.

use md5::{Digest, Md5};

const POINTS_PER_SERVER: u32 = 160;
const POINTERS_PER_HASH: u32 = 4;

/// The ring: sorted (point, server index); or for `modula`, each server index as many
/// times as its weight, in config order.
#[derive(Debug, Clone)]
pub struct Continuum {
    points: Vec<(u32, usize)>,
    modula: bool,
}

impl Continuum {
    /// `servers` are (name, weight); the name is `host:port` unless the port is 11211, as
    /// twemproxy names servers without an explicit name.
    pub fn new(servers: &[(String, u32)]) -> Continuum {
        let indexed: Vec<(&str, u32, usize)> = servers
            .iter()
            .enumerate()
            .map(|(i, (name, weight))| (name.as_str(), *weight, i))
            .collect();
        Continuum::over(&indexed)
    }

    /// A ring over some of the servers: (name, weight, index the ring answers with), as
    /// twemproxy's `ketama_update` builds it over its live servers.
    pub fn over(servers: &[(&str, u32, usize)]) -> Continuum {
        let total: u32 = servers.iter().map(|s| s.1).sum();
        let n = servers.len() as f32;
        let mut points = Vec::new();
        for &(name, weight, index) in servers {
            let pct = weight as f32 / total.max(1) as f32;
            // The same float arithmetic as twemproxy, so rounding matches.
            let per_server =
                ((pct * POINTS_PER_SERVER as f32 / 4.0 * n + 0.000_000_000_1).floor() * 4.0) as u32;
            for pointer in 1..=per_server / POINTERS_PER_HASH {
                let digest = Md5::digest(format!("{name}-{}", pointer - 1).as_bytes());
                for x in 0..POINTERS_PER_HASH as usize {
                    let b = &digest[x * 4..x * 4 + 4];
                    points.push((u32::from_le_bytes([b[0], b[1], b[2], b[3]]), index));
                }
            }
        }
        points.sort_by_key(|p| p.0);
        Continuum {
            points,
            modula: false,
        }
    }

    /// twemproxy's `modula_update`: the servers (name, weight, index), each `weight` times.
    pub fn modula(servers: &[(&str, u32, usize)]) -> Continuum {
        let points = servers
            .iter()
            .flat_map(|&(_, weight, index)| std::iter::repeat_n((0, index), weight as usize))
            .collect();
        Continuum {
            points,
            modula: true,
        }
    }

    /// The server for a key hash: the first point at or after it, wrapping around (modula:
    /// the hash modulo the number of points, as twemproxy's `modula_dispatch`).
    pub fn server(&self, hash: u32) -> Option<usize> {
        if self.modula {
            let n = u32::try_from(self.points.len()).ok().filter(|n| *n > 0)?;
            return self.points.get((hash % n) as usize).map(|p| p.1);
        }
        let i = self.points.partition_point(|p| p.0 < hash);
        self.points
            .get(i)
            .or_else(|| self.points.first())
            .map(|p| p.1)
    }
}

/// The part of the key that is hashed: between the first `open` and the next `close` when
/// both are present and the tag is not empty (twemproxy and Redis Cluster semantics).
pub fn hash_tag(key: &[u8], tag: Option<[u8; 2]>) -> &[u8] {
    let Some([open, close]) = tag else { return key };
    let Some(start) = key.iter().position(|&b| b == open) else {
        return key;
    };
    match key[start + 1..].iter().position(|&b| b == close) {
        Some(len) if len > 0 => &key[start + 1..start + 1 + len],
        _ => key,
    }
}

/// The twemproxy name of a backend. A Unix socket (`/path:weight` in twemproxy) is named
/// `/path:`: its `conf_add_server` takes the address and one byte more, the colon, as it
/// would take `:port`.
pub fn server_name(host: &str, port: u16) -> String {
    if host.starts_with('/') && port == 0 {
        format!("{host}:")
    } else if port == 11211 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags() {
        let t = Some(*b"{}");
        assert_eq!(hash_tag(b"user:{42}:name", t), b"42");
        assert_eq!(hash_tag(b"{}x", t), b"{}x");
        assert_eq!(hash_tag(b"no-tag", t), b"no-tag");
        assert_eq!(hash_tag(b"a{b", t), b"a{b");
        assert_eq!(hash_tag(b"x{y}", None), b"x{y}");
    }

    #[test]
    fn continuum_has_160_points_per_equal_server_and_spreads_keys() {
        let servers: Vec<(String, u32)> =
            (0..3).map(|i| (format!("127.0.0.1:700{i}"), 1)).collect();
        let c = Continuum::new(&servers);
        assert_eq!(c.points.len(), 480);
        let mut counts = [0; 3];
        for i in 0..3000 {
            let h = super::super::hash::hash(Default::default(), format!("key:{i}").as_bytes());
            counts[c.server(h).unwrap()] += 1;
        }
        assert!(counts.iter().all(|&n| n > 700), "{counts:?}");
    }
}
