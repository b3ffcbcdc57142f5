//! Server connections: connect, authenticate with the service's backend credentials or the
//! client's own (whatever the server asks: SCRAM-SHA-256, md5, cleartext or trust), and
//! remember what the session reported (ParameterStatus, BackendKeyData).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::net::{TcpStream, UnixStream};

use throome_pgwire::{build, msg};

use super::io::{Stream, Wire, WireError};
use super::prepared::Prepared;
use super::scram_client::KeyLogin;
use super::secret;
use super::startup::Credential;
use crate::backend::BackendState;
use crate::config::ServerTlsMode;
use crate::snapshot::ServiceRuntime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    /// The server refused (bad credentials, unknown database, too many connections): its
    /// own ErrorResponse, to pass on.
    #[error("server refused the connection")]
    Refused(Bytes),
    #[error("server asked for an authentication method Throome does not speak ({0})")]
    AuthMethod(i32),
    #[error("authentication with the server failed: {0}")]
    Auth(String),
    #[error("server connection failed: {0}")]
    Wire(#[from] WireError),
}

/// One authenticated server connection.
pub struct Server {
    pub wire: Wire,
    pub backend: Arc<BackendState>,
    pub pid: i32,
    pub key: Bytes,
    /// What the server reported with ParameterStatus, in order.
    pub params: Vec<(Bytes, Bytes)>,
    /// What the proxy set here for clients' parameters the server does not report
    /// (`search_path`, `extra_float_digits`, ...); forgotten at DISCARD ALL.
    pub applied: Vec<(Bytes, Bytes)>,
    /// The client parameters these settings were last found to match (`set_sql` had
    /// nothing to do), so the next client with the same ones skips the comparison; cleared
    /// whenever `params` or `applied` change.
    pub synced: Option<Vec<(Bytes, Bytes)>>,
    /// Statements prepared on this connection by the proxy (server-side names).
    pub prepared: Prepared,
    /// The last unnamed Parse message this server got (None: it holds no unnamed
    /// statement, as far as the proxy knows), whichever client sent it.
    pub unnamed: Option<Bytes>,
    /// Transaction status from the last ReadyForQuery.
    pub status: u8,
    pub created: Instant,
    pub idle_since: Instant,
    /// This connection's place under `max_server_connections`, freed when it closes.
    pub cap: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Its permit under `max_user_connections`, held while it is open.
    pub user_cap: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Its pool's epoch when it joined (see `Pool::reconnect`).
    pub epoch: u64,
    /// The worker whose event loop this connection's socket is registered with: a client
    /// on that worker uses it without waking another thread (`pool::take_idle`).
    pub worker: usize,
}

impl Server {
    pub fn set_param(&mut self, name: &[u8], value: &[u8]) {
        self.synced = None;
        match self.params.iter_mut().find(|(n, _)| n == name) {
            Some(p) => p.1 = Bytes::copy_from_slice(value),
            None => self
                .params
                .push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value))),
        }
    }

    /// After the proxy made this server's settings match `wanted`: the tracked ones, which
    /// every client names, came back as ParameterStatus; the others are what `applied` now
    /// holds (the rest were RESET), reported ones too (`default_transaction_read_only`,
    /// `session_authorization`): a client that does not name them has them RESET.
    pub fn record_applied(&mut self, wanted: &[(Bytes, Bytes)]) {
        let applied = wanted
            .iter()
            .filter(|(name, _)| !super::params::is_tracked(name))
            .cloned()
            .collect();
        self.applied = applied;
        self.synced = None;
    }

    /// Forgets what the proxy set here (DISCARD ALL or RESET ALL ran).
    pub fn forget_applied(&mut self) {
        self.applied.clear();
        self.synced = None;
    }

    pub fn param(&self, name: &[u8]) -> Option<&Bytes> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// What logs in to servers for a client: the service's backend password, or else, when the
/// service names no `username` of its own (servers see the client's user), the client's own
/// credential.
pub fn login_credential(
    service: &ServiceRuntime,
    client: Option<&Credential>,
) -> Option<Credential> {
    match (&service.spec.password, &service.spec.username) {
        (Some(p), _) => Some(Credential::from_secret(p.expose())),
        (None, Some(_)) => None,
        (None, None) => client.cloned(),
    }
}

/// Opens and authenticates a connection to `backend` for `database` as `user` with
/// `credential` (see `login_credential`).
pub async fn connect(
    service: &ServiceRuntime,
    backend: Arc<BackendState>,
    user: &str,
    database: &str,
    credential: Option<&Credential>,
) -> Result<Server, ServerError> {
    let addr = backend.address();
    let stream = match tokio::time::timeout(service.spec.connect_timeout, dial(&backend)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ServerError::Connect(addr, e.to_string())),
        Err(_) => return Err(ServerError::Connect(addr, "timed out".into())),
    };
    let secure = tokio::time::timeout(
        service.spec.connect_timeout,
        secure(service, &backend.host, stream),
    );
    let stream = match secure.await {
        Ok(r) => r.map_err(|e| ServerError::Connect(addr.clone(), e))?,
        Err(_) => return Err(ServerError::Connect(addr, "TLS handshake timed out".into())),
    };
    let mut wire = Wire::over(
        stream,
        bytes::BytesMut::with_capacity(8 * 1024),
        throome_pgwire::DEFAULT_MAX_MESSAGE,
    );
    let login = tokio::time::timeout(
        service.spec.connect_timeout,
        handshake(&mut wire, user, database, credential),
    );
    let (pid, key, params) = match login.await {
        Ok(r) => r?,
        Err(_) => return Err(ServerError::Connect(addr, "login timed out".into())),
    };
    let now = Instant::now();
    Ok(Server {
        wire,
        backend,
        pid,
        key,
        params,
        applied: Vec::new(),
        synced: None,
        worker: crate::workers::index(),
        prepared: Prepared::new(service.spec.pg.max_prepared_statements),
        unnamed: None,
        status: b'I',
        created: now,
        idle_since: now,
        cap: None,
        user_cap: None,
        epoch: 0,
    })
}

type Session = (i32, Bytes, Vec<(Bytes, Bytes)>);

/// libpq's rule for `host`: one that starts with `/` names the directory holding the
/// server's Unix-domain socket `.s.PGSQL.<port>`
/// (<https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-HOST>).
pub fn socket_path(host: &str, port: u16) -> Option<std::path::PathBuf> {
    host.starts_with('/')
        .then(|| std::path::Path::new(host).join(format!(".s.PGSQL.{port}")))
}

/// The transport to `backend`, before any TLS: its Unix-domain socket or TCP.
pub async fn dial(backend: &BackendState) -> std::io::Result<Stream> {
    if let Some(path) = socket_path(&backend.host, backend.port) {
        return Ok(Stream::Unix(UnixStream::connect(path).await?));
    }
    let tcp = TcpStream::connect((backend.host.as_str(), backend.port)).await?;
    let _ = tcp.set_nodelay(true);
    Ok(Stream::Plain(tcp))
}

/// With `server_tls`, asks the server for TLS (SSLRequest) and runs the handshake, verifying
/// the certificate for `host` when the mode says so; a server that declines is used in clear
/// only under `prefer`.
async fn secure(service: &ServiceRuntime, host: &str, stream: Stream) -> Result<Stream, String> {
    let Some(config) = &service.spec.server_tls else {
        return Ok(stream);
    };
    // libpq never asks for TLS over a Unix-domain socket; neither do we.
    let Stream::Plain(mut tcp) = stream else {
        return Ok(stream);
    };
    let mut request = 8u32.to_be_bytes().to_vec();
    request.extend_from_slice(&throome_pgwire::SSL_REQUEST.to_be_bytes());
    tcp.write_all(&request).await.map_err(|e| e.to_string())?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    match (answer[0], config.mode) {
        (b'S', _) => {}
        (b'N', ServerTlsMode::Prefer) => return Ok(Stream::Plain(tcp)),
        (b'N', _) => return Err("the server does not offer TLS (server_tls requires it)".into()),
        (other, _) => return Err(format!("unexpected answer {other:#04x} to SSLRequest")),
    }
    let tls = crate::tls::connect(config, host, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    Ok(Stream::TlsToServer(Box::new(tls)))
}

/// SCRAM with a password, or with a client's key.
enum Scram {
    Password(ScramSha256),
    Key(KeyLogin),
}

/// Logs in to a server as `user` with the proxy's `credential` (whatever method the server
/// asks), up to ReadyForQuery: the server's process id, cancel key and parameters
/// ([start-up](https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP)).
async fn handshake(
    wire: &mut Wire,
    user: &str,
    database: &str,
    credential: Option<&Credential>,
) -> Result<Session, ServerError> {
    // No application_name of the proxy's: a client that gives none sees '' as it would
    // on the server itself.
    wire.send(&build::startup(&[("user", user), ("database", database)]))
        .await?;
    let mut scram: Option<Scram> = None;
    let mut key = (0, Bytes::new());
    let mut params = Vec::new();
    loop {
        let frame = wire.frame().await?;
        let body = frame.body();
        match frame.tag() {
            msg::back::AUTHENTICATION => {
                let Some((code, data)) = msg::auth_request(body) else {
                    return Err(ServerError::Auth("malformed authentication request".into()));
                };
                if let Some(reply) = auth_reply(code, data, user, credential, &mut scram)? {
                    wire.send(&reply).await?;
                }
            }
            msg::back::ERROR_RESPONSE => return Err(ServerError::Refused(frame.into_bytes())),
            msg::back::PARAMETER_STATUS => {
                if let Some((n, v)) = msg::parameter_status(body) {
                    params.push((Bytes::copy_from_slice(n), Bytes::copy_from_slice(v)));
                }
            }
            msg::back::BACKEND_KEY_DATA => {
                if let Some((pid, k)) = msg::backend_key(body) {
                    key = (pid, Bytes::copy_from_slice(k));
                }
            }
            msg::back::READY_FOR_QUERY => return Ok((key.0, key.1, params)),
            _ => {} // NoticeResponse, NegotiateProtocolVersion
        }
    }
}

/// The answer to one authentication request (`code`, as in AuthenticationOk = 0,
/// CleartextPassword = 3, MD5Password = 5, SASL = 10, SASLContinue = 11, SASLFinal = 12);
/// `None`: nothing to send.
fn auth_reply(
    code: i32,
    data: &[u8],
    user: &str,
    credential: Option<&Credential>,
    scram: &mut Option<Scram>,
) -> Result<Option<Bytes>, ServerError> {
    let reply = match code {
        0 => return Ok(None),
        3 => {
            let mut p = password(credential)?.into_bytes();
            p.push(0);
            build::password(&p)
        }
        5 => {
            let salt: [u8; 4] = data
                .try_into()
                .map_err(|_| ServerError::Auth("bad md5 salt".into()))?;
            let hash = match credential {
                Some(Credential::Md5Hash(h)) => secret::md5_answer(h, salt),
                _ => secret::md5_answer(&secret::md5_hash(user, &password(credential)?), salt),
            };
            let mut p = hash.into_bytes();
            p.push(0);
            build::password(&p)
        }
        10 => {
            let (s, first) = match credential {
                Some(Credential::ClientKey(key)) => {
                    let login = KeyLogin::new(key);
                    let first = login.first();
                    (Scram::Key(login), first)
                }
                _ => {
                    let s = ScramSha256::new(
                        password(credential)?.as_bytes(),
                        ChannelBinding::unsupported(),
                    );
                    let first = s.message().to_vec();
                    (Scram::Password(s), first)
                }
            };
            *scram = Some(s);
            build::sasl_initial("SCRAM-SHA-256", &first)
        }
        11 => {
            let next = match scram.as_mut().ok_or(ServerError::AuthMethod(code))? {
                Scram::Password(s) => s
                    .update(data)
                    .map(|()| s.message().to_vec())
                    .map_err(|e| ServerError::Auth(e.to_string()))?,
                Scram::Key(k) => k
                    .answer(data)
                    .map_err(|e| ServerError::Auth(e.to_string()))?,
            };
            build::password(&next)
        }
        12 => {
            match scram.take().ok_or(ServerError::AuthMethod(code))? {
                Scram::Password(mut s) => s.finish(data).map_err(|e| e.to_string()),
                Scram::Key(k) => k.check(data).map_err(|e| e.to_string()),
            }
            .map_err(ServerError::Auth)?;
            return Ok(None);
        }
        other => return Err(ServerError::AuthMethod(other)),
    };
    Ok(Some(reply))
}

/// The password a server asked for, which the proxy may not have.
fn password(credential: Option<&Credential>) -> Result<String, ServerError> {
    match credential {
        Some(Credential::Password(p)) => Ok(p.clone()),
        Some(Credential::ClientKey(_)) => Err(ServerError::Auth(
            "the server wants a password; Throome has this user's SCRAM key only".into(),
        )),
        Some(Credential::Md5Hash(_)) => Err(ServerError::Auth(
            "the server wants a password or SCRAM; Throome has this user's md5 hash only".into(),
        )),
        None => Err(ServerError::Auth("the server wants a password".into())),
    }
}
