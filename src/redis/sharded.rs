//! Requests on a sharded service (`sharding: ketama`): each key's shard comes from the ring;
//! a command whose keys all live on one shard goes there as it is; MGET, MSET, DEL, UNLINK,
//! EXISTS and TOUCH are split per shard and merged; DBSIZE, KEYS, FLUSHALL and FLUSHDB go to
//! every shard; SCAN walks the shards one after another (`scan`); any other command whose
//! keys span shards gets Redis Cluster's `-CROSSSLOT`.

use std::collections::BTreeMap;

use bytes::Bytes;
use throome_resp::{CommandSpec, Request};

use super::hash::{KeyHash, hash};
use super::merge::MergeKind;
use super::shard::{Continuum, hash_tag};

/// What to do with one request.
pub enum Plan {
    /// Send the original bytes to this shard.
    One(usize),
    /// Send these commands to these groups and merge the replies.
    Split(Split),
    /// Answer with this error.
    Refuse(Bytes),
    /// SUBSCRIBE and friends: hand the client over to a connection of its own to the node
    /// of this group.
    Subscribe(usize),
}

/// A command split over groups. The group is a shard (ketama) or a slot (cluster); with
/// `every_shard` it is an index into all shards.
#[derive(Debug)]
pub struct Split {
    /// (group, the command for it, positions of its keys in the client's order).
    pub parts: Vec<(usize, Bytes, Vec<usize>)>,
    pub kind: MergeKind,
    /// Keys in the client's command (for positional merges).
    pub total: usize,
    pub every_shard: bool,
}

/// Pub/sub on a sharded service (`None`: not a pub/sub command to treat apart). PUBLISH
/// goes to its channel's shard or slot. SUBSCRIBE, PSUBSCRIBE and SSUBSCRIBE get a
/// connection of their own to where their channels are: on a Redis Cluster, classic
/// messages reach every node, so any node serves SUBSCRIBE and PSUBSCRIBE; sharded channels
/// (SSUBSCRIBE) must share a slot. On ketama shards, which share nothing, a subscriber's
/// channels must live on one shard and patterns cannot be followed.
pub fn pubsub(
    group_of: &impl Fn(&[u8]) -> usize,
    cluster: bool,
    spec: &CommandSpec,
    req: &Request,
) -> Option<Plan> {
    // Checked first: this runs for every request of a sharded service.
    if !spec.has(throome_resp::commands::flag::PUBSUB) {
        return None;
    }
    let args: Vec<&[u8]> = req.args().collect();
    let channels = args.get(1..).unwrap_or_default();
    let groups: Vec<usize> = channels.iter().map(|c| group_of(c)).collect();
    let together = groups.windows(2).all(|w| w[0] == w[1]);
    let first = groups.first().copied().unwrap_or(0);
    Some(match spec.name {
        "publish" => Plan::One(first),
        "subscribe" | "psubscribe" if cluster => Plan::Subscribe(first),
        "ssubscribe" if together => Plan::Subscribe(first),
        "subscribe" if together => Plan::Subscribe(first),
        "ssubscribe" => Plan::Refuse(Bytes::from_static(
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
        )),
        "subscribe" => Plan::Refuse(super::encode::error(
            "ERR Throome: SUBSCRIBE to channels on different shards; use one connection per shard",
        )),
        "unsubscribe" | "punsubscribe" | "sunsubscribe" | "psubscribe" => {
            Plan::Refuse(unsupported(&args))
        }
        _ => return None,
    })
}

/// Commands that carry connection state or have no key to route by.
fn unsupported(args: &[&[u8]]) -> Bytes {
    let name = match args {
        [top, sub, ..] if throome_resp::lookup(top).is_some_and(|c| !c.subcommands.is_empty()) => {
            format!(
                "{} {}",
                String::from_utf8_lossy(top),
                String::from_utf8_lossy(sub)
            )
        }
        [top, ..] => String::from_utf8_lossy(top).into_owned(),
        [] => String::new(),
    };
    super::encode::error(&format!(
        "ERR Throome: {} is not supported on a sharded service",
        name.to_uppercase()
    ))
}

/// How a keyless command goes to every shard and its replies combine, by the
/// `request_policy` and `response_policy` tips Redis publishes for it (COMMAND DOCS; what
/// Redis Cluster clients follow): SCRIPT LOAD/EXISTS/FLUSH, FUNCTION LOAD/DELETE/FLUSH,
/// DBSIZE, FLUSHALL, KEYS, RANDOMKEY, SLOWLOG LEN/RESET, CONFIG SET, ... `None`: refused
/// (blocking commands, which would hold shared connections, and "special" replies).
fn fan_out(spec: &CommandSpec) -> Option<MergeKind> {
    use throome_resp::commands::{RequestPolicy as Req, ResponsePolicy as Resp};
    if spec.has(throome_resp::commands::flag::BLOCKING) {
        return None;
    }
    if let Some(kind) = pubsub_fan_out(spec) {
        return Some(kind);
    }
    match (spec.request_policy?, spec.response_policy) {
        (Req::AllShards | Req::AllNodes, Some(policy)) => Some(match policy {
            Resp::AllSucceeded => MergeKind::AllSucceeded,
            Resp::OneSucceeded => MergeKind::OneSucceeded,
            Resp::AggSum => MergeKind::Sum,
            Resp::AggMin => MergeKind::Min,
            Resp::AggMax => MergeKind::Max,
            Resp::AggLogicalAnd => MergeKind::And,
            Resp::AggLogicalOr => MergeKind::Or,
            Resp::Special => return None,
        }),
        (Req::AllShards, None) => match spec.name {
            "keys" => Some(MergeKind::Concat),
            "randomkey" => Some(MergeKind::AnyValue),
            _ => None,
        },
        _ => None,
    }
}

/// PUBSUB's introspection (its subcommands carry no tips): channels with subscribers on any
/// shard, subscriber counts added up per channel, pattern counts added up.
fn pubsub_fan_out(spec: &CommandSpec) -> Option<MergeKind> {
    if !spec.has(throome_resp::commands::flag::PUBSUB) {
        return None;
    }
    match spec.name {
        "channels" | "shardchannels" => Some(MergeKind::Union),
        "numsub" | "shardnumsub" => Some(MergeKind::PairSum),
        "numpat" => Some(MergeKind::Sum),
        _ => None,
    }
}

/// The group of a key on a ketama ring or modula table.
pub fn ketama_group(
    ring: &Continuum,
    kind: KeyHash,
    tag: Option<[u8; 2]>,
) -> impl Fn(&[u8]) -> usize + '_ {
    move |k| ring.server(hash(kind, hash_tag(k, tag))).unwrap_or(0)
}

/// `shard_of` gives a key's group; keys in one group may share one command. `shards` is how
/// many shards a keyless command fans out to.
pub fn plan(
    shard_of: impl Fn(&[u8]) -> usize,
    shards: usize,
    spec: &CommandSpec,
    req: &Request,
) -> Plan {
    let args: Vec<&[u8]> = req.args().collect();
    let mut keys = Vec::new();
    spec.keys(&args, &mut keys);
    if keys.is_empty() {
        if matches!(
            spec.name,
            "info" | "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
        ) {
            // INFO: the proxy's section plus what the first shard says of itself. A script
            // or function given no keys may run anywhere (as Redis Cluster clients send it
            // to any node): the first shard (on a cluster, the node of slot 0).
            return Plan::One(0);
        }
        if spec.name == "scan" {
            return super::scan::plan(&args, shards);
        }
        let Some(kind) = fan_out(spec) else {
            return Plan::Refuse(unsupported(&args));
        };
        let parts = (0..shards)
            .map(|s| (s, req.frame().clone(), Vec::new()))
            .collect();
        return Plan::Split(Split {
            parts,
            kind,
            total: 0,
            every_shard: true,
        });
    }
    let first = shard_of(args[keys[0]]);
    if keys.iter().all(|&k| shard_of(args[k]) == first) {
        return Plan::One(first);
    }
    let (kind, step) = match spec.name {
        "mget" => (MergeKind::Positions, 1),
        "del" | "unlink" | "exists" | "touch" => (MergeKind::Sum, 1),
        "mset" => (MergeKind::AllOk, 2),
        _ => {
            return Plan::Refuse(Bytes::from_static(
                b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
            ));
        }
    };
    // shard -> (arguments after the name, positions of its keys in the client's order)
    let mut groups: BTreeMap<usize, (Vec<&[u8]>, Vec<usize>)> = BTreeMap::new();
    for (position, &k) in keys.iter().enumerate() {
        let group = groups.entry(shard_of(args[k])).or_default();
        group.0.extend_from_slice(&args[k..k + step]);
        group.1.push(position);
    }
    let parts = groups
        .into_iter()
        .map(|(shard, (sub_args, positions))| {
            let mut cmd: Vec<&[u8]> = vec![args[0]];
            cmd.extend(sub_args);
            let mut bytes = Vec::new();
            super::encode::command(&mut bytes, &cmd);
            (shard, Bytes::from(bytes), positions)
        })
        .collect();
    Plan::Split(Split {
        parts,
        kind,
        total: keys.len(),
        every_shard: false,
    })
}
