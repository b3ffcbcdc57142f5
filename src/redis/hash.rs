//! twemproxy's key hashes (`hash:` in its pool config; its `src/hashkit/`), bit for bit, so
//! a pool moves from twemproxy to Throome with its keys where they are. The FNV family,
//! one_at_a_time and hsieh (for one byte) read the key as C `char`, which is signed on x86: a byte of 0x80 and above
//! is sign-extended before it is mixed in. Throome follows the x86 builds (Debian's amd64
//! nutcracker, which the tests compare against; on ARM, where `char` is unsigned, twemproxy
//! itself places such keys differently).

use md5::{Digest, Md5};

pub use crate::config::KeyHash;

/// A key byte as x86 C reads a `char`: sign-extended.
fn signed(b: u8) -> u32 {
    b as i8 as i32 as u32
}

/// The hash of `key` by `kind`.
pub fn hash(kind: KeyHash, key: &[u8]) -> u32 {
    {
        match kind {
            KeyHash::Fnv1a64 => fnv1a(
                0xcbf2_9ce4_8422_2325_u64 as u32,
                0x100_0000_01b3_u64 as u32,
                key,
            ),
            KeyHash::Fnv1a32 => fnv1a(2_166_136_261, 16_777_619, key),
            KeyHash::Fnv132 => key.iter().fold(2_166_136_261u32, |h, &b| {
                h.wrapping_mul(16_777_619) ^ signed(b)
            }),
            KeyHash::Fnv164 => key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                h.wrapping_mul(0x100_0000_01b3) ^ (b as i8 as i64 as u64)
            }) as u32,
            KeyHash::Md5 => {
                let d = Md5::digest(key);
                u32::from_le_bytes([d[0], d[1], d[2], d[3]])
            }
            KeyHash::Murmur => murmur(key),
            KeyHash::OneAtATime => one_at_a_time(key),
            KeyHash::Crc16 => crc16(key),
            KeyHash::Crc32 => (!crc32(key) >> 16) & 0x7fff,
            KeyHash::Crc32a => !crc32(key),
            KeyHash::Hsieh => hsieh(key),
            KeyHash::Jenkins => jenkins(key),
        }
    }
}

fn fnv1a(init: u32, prime: u32, key: &[u8]) -> u32 {
    key.iter()
        .fold(init, |h, &b| (h ^ signed(b)).wrapping_mul(prime))
}

/// MurmurHash2 as twemproxy seeds it (`0xdeadbeef * length`), bytes unsigned.
fn murmur(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let len = key.len() as u32;
    let mut h = 0xdead_beef_u32.wrapping_mul(len) ^ len;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, &b) in rest.iter().enumerate().rev() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

fn one_at_a_time(key: &[u8]) -> u32 {
    let mut v = key.iter().fold(0u32, |v, &b| {
        let v = v.wrapping_add(signed(b));
        let v = v.wrapping_add(v << 10);
        v ^ (v >> 6)
    });
    v = v.wrapping_add(v << 3);
    v ^= v >> 11;
    v.wrapping_add(v << 15)
}

/// Paul Hsieh's SuperFastHash; 16-bit reads little-endian, and the third byte of a
/// 3-byte tail read as `char` (sign-extended).
fn hsieh(key: &[u8]) -> u32 {
    if key.is_empty() {
        return 0;
    }
    let get16 = |d: &[u8]| u32::from(u16::from_le_bytes([d[0], d[1]]));
    let mut h: u32 = 0;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        h = h.wrapping_add(get16(c));
        let tmp = (get16(&c[2..]) << 11) ^ h;
        h = (h << 16) ^ tmp;
        h = h.wrapping_add(h >> 11);
    }
    match chunks.remainder() {
        [a, b, c] => {
            h = h.wrapping_add(get16(&[*a, *b]));
            h ^= h << 16;
            h ^= signed(*c) << 18;
            h = h.wrapping_add(h >> 11);
        }
        [a, b] => {
            h = h.wrapping_add(get16(&[*a, *b]));
            h ^= h << 11;
            h = h.wrapping_add(h >> 17);
        }
        [a] => {
            h = h.wrapping_add(u32::from(*a));
            h ^= h << 10;
            h = h.wrapping_add(h >> 1);
        }
        _ => {}
    }
    h ^= h << 3;
    h = h.wrapping_add(h >> 5);
    h ^= h << 4;
    h = h.wrapping_add(h >> 17);
    h ^= h << 25;
    h.wrapping_add(h >> 6)
}

/// Bob Jenkins' lookup3 `hashlittle` with twemproxy's initial value (13).
fn jenkins(key: &[u8]) -> u32 {
    let init = 0xdead_beef_u32
        .wrapping_add(key.len() as u32)
        .wrapping_add(13);
    let (mut a, mut b, mut c) = (init, init, init);
    if key.is_empty() {
        return c;
    }
    let word = |k: &[u8]| {
        let mut w = [0u8; 4];
        w[..k.len()].copy_from_slice(k);
        u32::from_le_bytes(w)
    };
    let mut rest = key;
    while rest.len() > 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        (a, b, c) = mix(a, b, c);
        rest = &rest[12..];
    }
    let part = |from: usize| rest.get(from..(from + 4).min(rest.len())).map_or(0, word);
    a = a.wrapping_add(part(0));
    b = b.wrapping_add(part(4));
    c = c.wrapping_add(part(8));
    final_mix(a, b, c)
}

fn mix(mut a: u32, mut b: u32, mut c: u32) -> (u32, u32, u32) {
    a = a.wrapping_sub(c) ^ c.rotate_left(4);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a) ^ a.rotate_left(6);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b) ^ b.rotate_left(8);
    b = b.wrapping_add(a);
    a = a.wrapping_sub(c) ^ c.rotate_left(16);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a) ^ a.rotate_left(19);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b) ^ b.rotate_left(4);
    b = b.wrapping_add(a);
    (a, b, c)
}

fn final_mix(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c = (c ^ b).wrapping_sub(b.rotate_left(14));
    a = (a ^ c).wrapping_sub(c.rotate_left(11));
    b = (b ^ a).wrapping_sub(a.rotate_left(25));
    c = (c ^ b).wrapping_sub(b.rotate_left(16));
    a = (a ^ c).wrapping_sub(c.rotate_left(4));
    b = (b ^ a).wrapping_sub(a.rotate_left(14));
    (c ^ b).wrapping_sub(b.rotate_left(24))
}

/// twemproxy 0.5's `hash_crc16`: the CRC-16/XMODEM table (polynomial 0x1021), but the
/// register is 32 bits wide and never masked, so the bits shifted past 16 stay in the result.
fn crc16(key: &[u8]) -> u32 {
    key.iter().fold(0u32, |crc, &b| {
        let mut c = (((crc >> 8) ^ u32::from(b)) & 0xff) << 8;
        for _ in 0..8 {
            c = if c & 0x8000 != 0 {
                (c << 1) ^ 0x1021
            } else {
                c << 1
            };
        }
        (crc << 8) ^ (c & 0xffff)
    })
}

/// The running CRC-32 (IEEE, reflected 0xEDB88320) register after `key`, not inverted.
fn crc32(key: &[u8]) -> u32 {
    key.iter().fold(u32::MAX, |crc, &b| {
        let mut c = (crc ^ u32::from(b)) & 0xff;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
        (crc >> 8) ^ c
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Standard check values ("123456789") where twemproxy's hash is the standard one.
        assert_eq!(hash(KeyHash::Crc32a, b"123456789"), 0xCBF4_3926);
        // CRC-16/XMODEM's check value in the low 16 bits; the unmasked register keeps more.
        assert_eq!(hash(KeyHash::Crc16, b"123456789") & 0xffff, 0x31C3);
        assert_eq!(hash(KeyHash::Fnv1a32, b"a"), 0xE40C_292C);
        assert_eq!(hash(KeyHash::Fnv132, b"a"), 0x050C_5D7E);
        assert_eq!(hash(KeyHash::OneAtATime, b"a"), 0xCA2E_9442);
        assert_eq!(
            hash(KeyHash::Md5, b""),
            u32::from_le_bytes([0xd4, 0x1d, 0x8c, 0xd9])
        );
        // fnv1a_64 as twemproxy truncates it.
        assert_eq!(hash(KeyHash::Fnv1a64, b""), 0x8422_2325);
    }

    #[test]
    fn high_bytes_are_sign_extended_where_twemproxy_reads_char() {
        let manual = (0x8422_2325u32 ^ 0xFFFF_FFC3).wrapping_mul(0x1b3);
        assert_eq!(hash(KeyHash::Fnv1a64, &[0xC3]), manual);
        // MD5 and murmur read bytes unsigned: no difference to check, but no panic either.
        assert_ne!(
            hash(KeyHash::Murmur, &[0xC3]),
            hash(KeyHash::Murmur, &[0x43])
        );
    }
}
