use super::*;

fn keys(line: &str) -> Vec<String> {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    let spec = resolve(&args).expect("known command");
    let mut out = Vec::new();
    spec.keys(&args, &mut out);
    out.into_iter()
        .map(|i| String::from_utf8_lossy(args[i]).into_owned())
        .collect()
}

#[test]
fn table_is_sorted_and_complete() {
    assert!(COMMANDS.windows(2).all(|w| w[0].name < w[1].name));
    assert_eq!(COMMANDS.len(), 240);
    for c in COMMANDS.iter() {
        assert!(
            c.subcommands.windows(2).all(|w| w[0].name < w[1].name),
            "{}",
            c.name
        );
    }
}

#[test]
fn lookup_is_case_insensitive() {
    assert_eq!(lookup(b"GeT").map(|c| c.name), Some("get"));
    assert!(lookup(b"nosuchcommand").is_none());
    assert!(lookup(&[b'x'; 40]).is_none());
    assert_eq!(
        resolve(&[&b"config"[..], b"GET", b"port"]).map(|c| c.name),
        Some("get")
    );
    assert_eq!(resolve(&[&b"CONFIG"[..]]).map(|c| c.name), Some("config"));
}

#[test]
fn simple_and_multi_key_commands() {
    assert_eq!(keys("GET k"), ["k"]);
    assert_eq!(keys("SET k v EX 10"), ["k"]);
    assert_eq!(keys("MGET a b c"), ["a", "b", "c"]);
    assert_eq!(keys("MSET a 1 b 2"), ["a", "b"]);
    assert_eq!(keys("DEL a b"), ["a", "b"]);
    assert!(keys("PING").is_empty());
    assert_eq!(keys("OBJECT ENCODING k"), ["k"]);
}

#[test]
fn movable_keys_follow_the_specs() {
    assert_eq!(keys("EVAL return 2 a b x y"), ["a", "b"]);
    assert!(keys("EVAL return 0").is_empty());
    assert_eq!(keys("FCALL f 1 a x"), ["a"]);
    assert_eq!(keys("XREAD COUNT 2 STREAMS s1 s2 0 0"), ["s1", "s2"]);
    assert_eq!(keys("XREADGROUP GROUP g c BLOCK 0 STREAMS s1 >"), ["s1"]);
    assert_eq!(keys("ZUNIONSTORE dst 2 a b WEIGHTS 1 2"), ["dst", "a", "b"]);
    assert_eq!(keys("ZUNION 2 a b"), ["a", "b"]);
    assert_eq!(keys("LMPOP 2 a b LEFT"), ["a", "b"]);
    assert_eq!(keys("BLMOVE src dst LEFT RIGHT 0"), ["src", "dst"]);
    assert_eq!(keys("SORT k BY x STORE out"), ["k", "out"]);
    assert_eq!(keys("SORT k LIMIT 0 STORE GET x"), ["k"]);
    assert_eq!(keys("MIGRATE h 1 k 0 5"), ["k"]);
}

#[test]
fn hostile_numbers_find_no_keys_and_do_not_allocate_wildly() {
    assert!(keys("EVAL s 99999999999 a").is_empty());
    // numkeys at i64::MAX: the last key's index must not overflow (found by the fuzzer).
    assert!(keys("EVAL s 9223372036854775807 a").is_empty());
    assert!(keys("ZUNIONSTORE dst 9223372036854775807 a").contains(&"dst".to_string()));
    assert!(keys("EVAL s -1 a").is_empty());
    assert!(keys("EVAL s x a").is_empty());
    assert!(keys("ZUNIONSTORE dst 5 a").contains(&"dst".to_string()));
}

#[test]
fn flags_and_policies() {
    let get = lookup(b"get").unwrap();
    assert!(get.has(flag::READONLY) && !get.is_write());
    assert!(lookup(b"set").unwrap().is_write());
    assert!(lookup(b"blpop").unwrap().has(flag::BLOCKING));
    assert!(lookup(b"subscribe").unwrap().has(flag::PUBSUB));
    assert_eq!(
        lookup(b"dbsize").unwrap().request_policy,
        Some(RequestPolicy::AllShards)
    );
    assert_eq!(
        lookup(b"dbsize").unwrap().response_policy,
        Some(ResponsePolicy::AggSum)
    );
    assert!(lookup(b"get").unwrap().arity_ok(2) && !lookup(b"get").unwrap().arity_ok(3));
    assert!(lookup(b"mget").unwrap().arity_ok(5) && !lookup(b"mget").unwrap().arity_ok(1));
}
