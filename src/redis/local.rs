//! Connection-level commands the proxy answers itself: they describe or change the client's
//! connection to Throome, not data on a backend. <https://redis.io/docs/latest/commands/hello/>

use bytes::Bytes;

use super::encode;
use crate::config::ClientAuth;

/// What the proxy knows of one client connection.
pub struct ClientState {
    pub id: u64,
    pub resp3: bool,
    pub authenticated: bool,
    pub name: Option<Vec<u8>>,
    /// On a service without `auth:`, the login the backend accepted for this client.
    pub login: Option<std::sync::Arc<super::upstream::Login>>,
}

impl ClientState {
    pub fn new(id: u64, auth: Option<&ClientAuth>) -> Self {
        ClientState {
            id,
            resp3: false,
            authenticated: auth.is_none(),
            name: None,
            login: None,
        }
    }
}

/// Whether `user` is a user clients of the service can be: `default`, and with `auth:` its
/// `users`.
pub fn user_exists(auth: Option<&ClientAuth>, user: &[u8]) -> bool {
    user == b"default"
        || auth.is_some_and(|a| std::str::from_utf8(user).is_ok_and(|u| a.users.contains_key(u)))
}

/// Checks `AUTH [user] pass` against the service's `auth:` block.
pub fn check_auth(
    auth: Option<&ClientAuth>,
    user: Option<&[u8]>,
    pass: &[u8],
) -> Result<(), Bytes> {
    let Some(auth) = auth else {
        // As a server whose only user is `default` with `nopass`: any password is its.
        return match user {
            None => Err(encode::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            )),
            Some(b"default") => Ok(()),
            Some(_) => Err(encode::error(
                "WRONGPASS invalid username-password pair or user is disabled.",
            )),
        };
    };
    let ok = match user {
        None | Some(b"default") => auth
            .password
            .as_ref()
            .is_some_and(|p| p.expose().as_bytes() == pass),
        Some(u) => std::str::from_utf8(u)
            .ok()
            .and_then(|u| auth.users.get(u))
            .is_some_and(|p| p.expose().as_bytes() == pass),
    };
    if ok {
        Ok(())
    } else {
        Err(encode::error(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

/// Redis's answer to a command it does not know (`processCommand` in server.c): the name
/// and the first arguments, each cut to what fits in 128 bytes.
pub fn unknown_command(req: &throome_resp::Request) -> Bytes {
    let mut args = String::new();
    for a in req.args().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        let text = String::from_utf8_lossy(a);
        let cut: String = text.chars().take(room).collect();
        args.push_str(&format!("'{cut}' "));
    }
    let name = String::from_utf8_lossy(req.name());
    let name: String = name.chars().take(128).collect();
    encode::error(&format!(
        "ERR unknown command '{name}', with args beginning with: {args}"
    ))
}

/// UNSUBSCRIBE, PUNSUBSCRIBE or SUNSUBSCRIBE from a client with no subscription: a frame
/// per channel, or one with a null channel for none (`addReplyPubsubUnsubscribed` in
/// pubsub.c), each counting 0 subscriptions left; pushes in RESP3.
pub fn unsubscribed(kind: &str, channels: &[&[u8]], resp3: bool) -> Bytes {
    let header: &[u8] = if resp3 { b">3\r\n" } else { b"*3\r\n" };
    let frame = |channel: Option<&[u8]>| {
        let mut f = header.to_vec();
        f.extend_from_slice(&encode::bulk(kind.as_bytes()));
        match channel {
            Some(c) => f.extend_from_slice(&encode::bulk(c)),
            None => f.extend_from_slice(&encode::null(resp3)),
        }
        f.extend_from_slice(b":0\r\n");
        f
    };
    let out: Vec<u8> = match channels {
        [] => frame(None),
        _ => channels.iter().flat_map(|c| frame(Some(c))).collect(),
    };
    out.into()
}

pub fn wrong_args(cmd: &str) -> Bytes {
    encode::error(&format!(
        "ERR wrong number of arguments for '{cmd}' command"
    ))
}

/// What HELLO without AUTH gets before a login (redis-server 7.0's words).
pub const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`. `checked`: the backend already
/// accepted the AUTH part.
pub fn hello(
    state: &mut ClientState,
    auth: Option<&ClientAuth>,
    args: &[&[u8]],
    checked: bool,
) -> Bytes {
    let mut resp3 = state.resp3;
    if let Some(v) = args.get(1) {
        match *v {
            b"2" => resp3 = false,
            b"3" => resp3 = true,
            _ => return encode::error("NOPROTO unsupported protocol version"),
        }
    }
    let mut i = 2;
    let mut name = None;
    while i < args.len() {
        let opt = args[i];
        if opt.eq_ignore_ascii_case(b"auth") && i + 2 < args.len() {
            if !checked && let Err(e) = check_auth(auth, Some(args[i + 1]), args[i + 2]) {
                return e;
            }
            state.authenticated = true;
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"setname") && i + 1 < args.len() {
            name = Some(args[i + 1].to_vec());
            i += 2;
        } else {
            return encode::error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            ));
        }
    }
    if !state.authenticated {
        return encode::error(HELLO_NOAUTH);
    }
    if name.is_some() {
        state.name = name;
    }
    state.resp3 = resp3;
    encode::map(
        resp3,
        &[
            ("server", encode::bulk(b"redis")),
            ("version", encode::bulk(b"7.0.0")),
            ("proto", encode::integer(if resp3 { 3 } else { 2 })),
            (
                "id",
                encode::integer(i64::try_from(state.id).unwrap_or(i64::MAX)),
            ),
            ("mode", encode::bulk(b"standalone")),
            ("role", encode::bulk(b"master")),
            ("modules", encode::empty_array()),
        ],
    )
}

/// `CLIENT SETNAME|GETNAME|ID|SETINFO`; `None` for subcommands that go to a backend.
pub fn client(state: &mut ClientState, args: &[&[u8]]) -> Option<Bytes> {
    let sub = args.get(1)?;
    let reply = if sub.eq_ignore_ascii_case(b"setname") {
        match args.get(2) {
            Some(n) if args.len() == 3 => {
                if n.iter().any(|&c| c <= b' ' || c > b'~') {
                    encode::error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    )
                } else {
                    state.name = (!n.is_empty()).then(|| n.to_vec());
                    encode::simple("OK")
                }
            }
            _ => wrong_args("client|setname"),
        }
    } else if sub.eq_ignore_ascii_case(b"getname") {
        match &state.name {
            Some(n) => encode::bulk(n),
            None => encode::null(state.resp3),
        }
    } else if sub.eq_ignore_ascii_case(b"id") {
        encode::integer(i64::try_from(state.id).unwrap_or(i64::MAX))
    } else if sub.eq_ignore_ascii_case(b"setinfo") {
        if args.len() == 4 {
            encode::simple("OK")
        } else {
            wrong_args("client|setinfo")
        }
    } else {
        return None;
    };
    Some(reply)
}

/// INFO's `connected_clients` counts the clients of the proxy, as a client expects; the
/// backend's own figure (the proxy's pooled connections and others) follows it as
/// `backend_connected_clients`.
fn own_clients(text: &[u8], clients: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 64);
    for line in text.split_inclusive(|&b| b == b'\n') {
        match line.strip_prefix(b"connected_clients:") {
            Some(backend) => {
                out.extend_from_slice(format!("connected_clients:{clients}\r\n").as_bytes());
                out.extend_from_slice(b"backend_connected_clients:");
                out.extend_from_slice(backend);
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// Prepends a `# Throome` section to an INFO reply: a bulk string (RESP2) or a verbatim
/// string (RESP3, `=len\r\ntxt:...`). Anything else (an error) is left as it is.
pub fn with_proxy_info(reply: Bytes, service: &crate::snapshot::ServiceRuntime) -> Bytes {
    let Some(&kind) = reply.first() else {
        return reply;
    };
    if kind != b'$' && kind != b'=' {
        return reply;
    }
    let Some(eol) = reply.windows(2).position(|w| w == b"\r\n") else {
        return reply;
    };
    let Some(body) = reply.get(eol + 2..reply.len().saturating_sub(2)) else {
        return reply;
    };
    let (prefix, text) = if kind == b'=' && body.len() >= 4 {
        body.split_at(4)
    } else {
        (&b""[..], body)
    };
    let up = service.backends.iter().filter(|b| b.is_up()).count();
    let sharding = match service.spec.sharding {
        None => "none",
        Some(crate::config::Sharding::Ketama) => "ketama",
        Some(crate::config::Sharding::Modula) => "modula",
        Some(crate::config::Sharding::Cluster) => "cluster",
    };
    // The proxy's own clients: the backend's `connected_clients` counts pooled connections.
    let clients = super::pool::Pools::of(service).client_count();
    let section = format!(
        "# Throome\r\nthroome_version:{}\r\ncluster:{}\r\nservice:{}\r\nbackends:{}\r\nbackends_up:{}\r\nsharding:{sharding}\r\nproxy_connected_clients:{clients}\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        service.cluster,
        service.name,
        service.backends.len(),
        up,
    );
    let mut content = Vec::with_capacity(prefix.len() + section.len() + text.len() + 64);
    content.extend_from_slice(prefix);
    content.extend_from_slice(section.as_bytes());
    content.extend_from_slice(&own_clients(text, clients));
    let mut out = format!("{}{}\r\n", char::from(kind), content.len()).into_bytes();
    out.extend_from_slice(&content);
    out.extend_from_slice(b"\r\n");
    out.into()
}
