//! The Redis 7 command table as data, and the key-spec walk Redis itself uses to find a
//! command's keys (`getKeysUsingKeySpecs` in `db.c`), so EVAL's numkeys, XREAD's STREAMS,
//! ZUNIONSTORE's destination plus numkeys and every other special case come from the table,
//! not from code. <https://redis.io/docs/latest/develop/reference/key-specs/>

use crate::command_table::COMMANDS;

/// Command flags, as `COMMAND` reports them.
pub mod flag {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const MODULE: u32 = 1 << 3;
    pub const ADMIN: u32 = 1 << 4;
    pub const PUBSUB: u32 = 1 << 5;
    pub const NOSCRIPT: u32 = 1 << 6;
    pub const BLOCKING: u32 = 1 << 7;
    pub const LOADING: u32 = 1 << 8;
    pub const STALE: u32 = 1 << 9;
    pub const SKIP_MONITOR: u32 = 1 << 10;
    pub const SKIP_SLOWLOG: u32 = 1 << 11;
    pub const ASKING: u32 = 1 << 12;
    pub const FAST: u32 = 1 << 13;
    pub const NO_AUTH: u32 = 1 << 14;
    pub const MAY_REPLICATE: u32 = 1 << 15;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 16;
    pub const NO_ASYNC_LOADING: u32 = 1 << 17;
    pub const NO_MULTI: u32 = 1 << 18;
    pub const MOVABLEKEYS: u32 = 1 << 19;
    pub const ALLOW_BUSY: u32 = 1 << 20;
}

/// Where a command must go in a sharded deployment (`request_policy` tip).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestPolicy {
    AllNodes,
    AllShards,
    MultiShard,
    Special,
}

/// How replies from several shards combine (`response_policy` tip).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponsePolicy {
    OneSucceeded,
    AllSucceeded,
    AggLogicalAnd,
    AggLogicalOr,
    AggMin,
    AggMax,
    AggSum,
    Special,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Begin {
    /// The first key is at this argument index (the command name is index 0).
    Index(i32),
    /// Keys start after this keyword, searched from `startfrom` (negative: from the end).
    Keyword(&'static [u8], i32),
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Find {
    /// Keys run to `last` (relative to the first key; -1 = to the end, or with `limit` the
    /// first 1/limit of what remains), every `step` arguments.
    Range {
        last: i32,
        step: i32,
        limit: i32,
    },
    /// The number of keys is the argument at `keynum_idx` (relative to begin); keys start
    /// `first` after it.
    Keynum {
        keynum_idx: i32,
        first: i32,
        step: i32,
    },
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub begin: Begin,
    pub find: Find,
    /// The command may modify keys found by this spec.
    pub write: bool,
    /// The spec may not find every key (e.g. SORT ... STORE): route conservatively.
    pub incomplete: bool,
}

#[derive(Debug)]
pub struct CommandSpec {
    /// Lower case, as Redis reports it; a subcommand's name without its container.
    pub name: &'static str,
    /// Positive: exact argument count (name included); negative: at least that many.
    pub arity: i32,
    pub flags: u32,
    pub request_policy: Option<RequestPolicy>,
    pub response_policy: Option<ResponsePolicy>,
    pub key_specs: &'static [KeySpec],
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    pub fn is_write(&self) -> bool {
        self.has(flag::WRITE)
    }

    /// Whether `argc` arguments (command name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    pub fn subcommand(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        find(self.subcommands, name)
    }

    /// Appends the argument indexes of this command's keys to `out`, as Redis finds them.
    /// `args` are all arguments, the command name first. Malformed numbers or out-of-range
    /// positions end that key spec (Redis rejects such commands itself).
    pub fn keys<A: AsRef<[u8]>>(&self, args: &[A], out: &mut Vec<usize>) {
        for spec in self.key_specs {
            key_positions(spec, args, out);
        }
        if self.name == "sort" {
            sort_store_key(args, out);
        }
        out.sort_unstable();
        out.dedup();
    }
}

fn key_positions<A: AsRef<[u8]>>(spec: &KeySpec, args: &[A], out: &mut Vec<usize>) {
    let argc = args.len() as i64;
    let first = match spec.begin {
        Begin::Index(i) => i64::from(i),
        Begin::Keyword(kw, start) => {
            let found = if start >= 0 {
                (i64::from(start)..argc).find(|&i| eq_ignore_case(args[i as usize].as_ref(), kw))
            } else {
                let from = argc + i64::from(start);
                (1..=from)
                    .rev()
                    .find(|&i| i < argc && eq_ignore_case(args[i as usize].as_ref(), kw))
            };
            match found {
                Some(i) => i + 1,
                None => return,
            }
        }
        Begin::Unknown => return,
    };
    let (first, last, step) = match spec.find {
        Find::Range { last, step, limit } => {
            let last = if last >= 0 {
                first + i64::from(last)
            } else if limit == 0 {
                argc + i64::from(last)
            } else {
                first + ((argc - first) / i64::from(limit) + i64::from(last))
            };
            (first, last, i64::from(step))
        }
        Find::Keynum {
            keynum_idx,
            first: off,
            step,
        } => {
            let idx = first + i64::from(keynum_idx);
            let Some(n) = args.get(idx as usize).and_then(|a| parse_i64(a.as_ref())) else {
                return;
            };
            // More keys than arguments is Redis's own error to give; returning here also
            // keeps `start + n` from overflowing on a numkeys near i64::MAX.
            if !(0..argc).contains(&idx) || !(0..argc).contains(&n) {
                return;
            }
            let start = first + i64::from(off);
            (start, start + n - 1, i64::from(step))
        }
        Find::Unknown => return,
    };
    if first < 1 || first >= argc || last < first || last >= argc || step < 1 {
        return;
    }
    let mut i = first;
    while i <= last {
        out.push(i as usize);
        i += step;
    }
}

/// SORT's STORE destination can stand anywhere among its options, so its key spec is
/// "unknown"; Redis finds it with `sortGetKeys`, skipping LIMIT's two arguments and GET's
/// and BY's one. So do we.
fn sort_store_key<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<usize>) {
    let mut i = 2;
    while i < args.len() {
        let a = args[i].as_ref();
        if a.eq_ignore_ascii_case(b"limit") {
            i += 3;
        } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"store") {
            if i + 1 < args.len() {
                out.push(i + 1);
            }
            i += 2;
        } else {
            i += 1;
        }
    }
}

fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn parse_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Looks a command up by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    find(&COMMANDS, name)
}

fn find(table: &'static [CommandSpec], name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    let lower = buf.get_mut(..name.len())?;
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let lower: &[u8] = lower;
    table
        .binary_search_by(|c| c.name.as_bytes().cmp(lower))
        .ok()
        .map(|i| &table[i])
}

/// The spec that applies to a full command line: the subcommand's for container commands
/// such as `CONFIG GET` or `OBJECT ENCODING`, else the command's.
pub fn resolve<A: AsRef<[u8]>>(args: &[A]) -> Option<&'static CommandSpec> {
    let cmd = lookup(args.first()?.as_ref())?;
    if cmd.subcommands.is_empty() {
        return Some(cmd);
    }
    match args.get(1) {
        Some(sub) => cmd.subcommand(sub.as_ref()).or(Some(cmd)),
        None => Some(cmd),
    }
}

#[cfg(test)]
mod tests;
