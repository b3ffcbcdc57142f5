//! Runs SQL for the data API as a PostgreSQL client of the service: a session of the
//! PostgreSQL adapter over an in-process socket pair (so the transaction pool, read/write
//! split, parameter sync, limits and metrics are those of native clients), spoken to with
//! the extended query protocol: Parse/Bind/Describe/Execute per statement, one Sync
//! (<https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY>).
//! Several statements, or a read-only token's, run inside BEGIN ... COMMIT; a failed one
//! is rolled back before the session ends.

use std::time::Duration;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{ErrorFields, Message};
use postgres_protocol::message::frontend;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::pg_json;

/// One statement of a request.
pub struct Statement {
    pub sql: String,
    pub params: Vec<Option<String>>,
}

/// What a request may take.
pub struct Limits {
    pub timeout: Duration,
    pub max_rows: usize,
    pub max_bytes: usize,
}

#[derive(Debug)]
pub enum Failure {
    /// The server's ErrorResponse: SQLSTATE, message, and detail/hint/position.
    Sql {
        code: String,
        message: String,
        extra: Map<String, Value>,
    },
    TooLarge(String),
    /// The request cannot be put in a message (a NUL in the SQL).
    Invalid(String),
    Timeout,
    /// The session or the server went away, or spoke out of turn.
    Broken(String),
}

/// A statement's result in Neon's shape.
#[derive(Default)]
struct Outcome {
    fields: Vec<(String, u32)>,
    rows: Vec<Value>,
    command: Option<String>,
}

pub struct Client {
    stream: UnixStream,
    buf: BytesMut,
    /// The session's BackendKeyData, for a cancel at the deadline.
    key: Option<(i32, i32)>,
}

impl Client {
    /// Logs in as `user` to `database`; the session checks no password (the token was).
    pub async fn start(stream: UnixStream, user: &str, database: &str) -> Result<Client, Failure> {
        let mut c = Client {
            stream,
            buf: BytesMut::new(),
            key: None,
        };
        let params = [
            ("user", user),
            ("database", database),
            ("application_name", "throome-http"),
        ];
        let mut out = BytesMut::new();
        frontend::startup_message(params, &mut out).map_err(broken)?;
        c.send(&out).await?;
        loop {
            match c.next().await? {
                Message::BackendKeyData(k) => c.key = Some((k.process_id(), k.secret_key())),
                Message::ErrorResponse(e) => return Err(sql_error(e.fields())),
                Message::ReadyForQuery(_) => return Ok(c),
                _ => {}
            }
        }
    }

    /// Runs the statements; one result per statement, or the first failure.
    pub async fn run(
        &mut self,
        statements: &[Statement],
        wrap: Option<&str>,
        limits: &Limits,
    ) -> Result<Vec<Value>, Failure> {
        let mut out = BytesMut::new();
        if let Some(begin) = wrap {
            simple_extended(begin, &mut out)?;
        }
        for s in statements {
            extended(s, &mut out)?;
        }
        if wrap.is_some() {
            simple_extended("COMMIT", &mut out)?;
        }
        frontend::sync(&mut out);
        self.send(&out).await?;
        let read = self.results(statements.len() + 2 * usize::from(wrap.is_some()), limits);
        let mut outcome = match tokio::time::timeout(limits.timeout, read).await {
            Ok(r) => r,
            Err(_) => self.cancelled().await,
        };
        // A statement of the transaction failed: the server skipped the rest, and the
        // block is left aborted; roll it back so the session ends clean.
        if let (Err(_), Some(_)) = (&outcome, wrap) {
            let mut q = BytesMut::new();
            frontend::query("ROLLBACK", &mut q).map_err(broken)?;
            self.send(&q).await?;
            self.drain().await?;
        }
        if let Ok(results) = &mut outcome
            && wrap.is_some()
        {
            // BEGIN's and COMMIT's own results are not the request's.
            results.remove(0);
            results.pop();
        }
        outcome
    }

    /// At the deadline: a cancel request through the gateway (as a client's), then what
    /// the server answers, which is 57014 `canceling statement due to user request`.
    async fn cancelled(&mut self) -> Result<Vec<Value>, Failure> {
        if let Some((pid, key)) = self.key {
            crate::postgres::forward_cancel(pid, &key.to_be_bytes()).await;
        }
        match tokio::time::timeout(Duration::from_secs(5), self.drain()).await {
            Ok(Ok(())) => Err(Failure::Timeout),
            _ => Err(Failure::Broken("no answer after the cancel".into())),
        }
    }

    /// Reads up to ReadyForQuery, keeping nothing.
    async fn drain(&mut self) -> Result<(), Failure> {
        loop {
            if let Message::ReadyForQuery(_) = self.next().await? {
                return Ok(());
            }
        }
    }

    /// The results of `count` statements, up to ReadyForQuery.
    async fn results(&mut self, count: usize, limits: &Limits) -> Result<Vec<Value>, Failure> {
        let (mut done, mut current) = (Vec::with_capacity(count), Outcome::default());
        let (mut rows, mut bytes, mut failure) = (0usize, 0usize, None);
        loop {
            match self.next().await? {
                Message::RowDescription(d) => {
                    let mut fields = d.fields();
                    while let Some(f) = fields.next().map_err(broken)? {
                        current.fields.push((f.name().to_string(), f.type_oid()));
                    }
                }
                Message::DataRow(r) => {
                    rows += 1;
                    bytes += r.buffer().len();
                    if rows > limits.max_rows || bytes > limits.max_bytes {
                        failure.get_or_insert(Failure::TooLarge(format!(
                            "the result is over {} rows or {} bytes",
                            limits.max_rows, limits.max_bytes
                        )));
                        continue;
                    }
                    current.rows.push(row(&current.fields, &r)?);
                }
                Message::CommandComplete(c) => {
                    current.command = Some(c.tag().map_err(broken)?.to_string());
                    done.push(std::mem::take(&mut current).into_json());
                }
                Message::EmptyQueryResponse => done.push(std::mem::take(&mut current).into_json()),
                Message::ErrorResponse(e) => {
                    failure.get_or_insert(sql_error(e.fields()));
                }
                Message::ReadyForQuery(_) => {
                    return match failure {
                        Some(f) => Err(f),
                        None => Ok(done),
                    };
                }
                _ => {}
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.stream.write_all(bytes).await.map_err(broken)
    }

    async fn next(&mut self) -> Result<Message, Failure> {
        loop {
            if let Some(m) = Message::parse(&mut self.buf).map_err(broken)? {
                return Ok(m);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => return Err(Failure::Broken("the session closed".into())),
                Ok(_) => {}
                Err(e) => return Err(broken(e)),
            }
        }
    }
}

impl Outcome {
    fn into_json(self) -> Value {
        let command = self.command.unwrap_or_default();
        let count = command
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        let verb = command.split(' ').next().unwrap_or_default().to_string();
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|(name, oid)| json!({ "name": name, "dataTypeID": oid, "type": pg_json::type_name(*oid) }))
            .collect();
        json!({ "command": verb, "rowCount": count, "fields": fields, "rows": self.rows })
    }
}

fn row(
    fields: &[(String, u32)],
    r: &postgres_protocol::message::backend::DataRowBody,
) -> Result<Value, Failure> {
    let buffer = r.buffer();
    let mut ranges = r.ranges();
    let mut out = Vec::with_capacity(fields.len());
    let mut i = 0;
    while let Some(range) = ranges.next().map_err(broken)? {
        let oid = fields.get(i).map_or(25, |f| f.1);
        out.push(pg_json::value(oid, range.and_then(|r| buffer.get(r))));
        i += 1;
    }
    Ok(Value::Array(out))
}

fn extended(s: &Statement, out: &mut BytesMut) -> Result<(), Failure> {
    let invalid = |e: std::io::Error| Failure::Invalid(e.to_string());
    frontend::parse("", &s.sql, std::iter::empty(), out).map_err(invalid)?;
    let values = s.params.iter().map(|p| p.as_deref().map(str::as_bytes));
    frontend::bind(
        "",
        "",
        std::iter::empty::<i16>(),
        values,
        |v, buf| match v {
            Some(b) => {
                buf.extend_from_slice(b);
                Ok(postgres_protocol::IsNull::No)
            }
            None => Ok(postgres_protocol::IsNull::Yes),
        },
        std::iter::empty::<i16>(),
        out,
    )
    .map_err(|e| match e {
        frontend::BindError::Conversion(e) => broken(e),
        frontend::BindError::Serialization(e) => broken(e),
    })?;
    frontend::describe(b'P', "", out).map_err(broken)?;
    frontend::execute("", 0, out).map_err(broken)
}

fn simple_extended(sql: &str, out: &mut BytesMut) -> Result<(), Failure> {
    extended(
        &Statement {
            sql: sql.into(),
            params: Vec::new(),
        },
        out,
    )
}

fn sql_error(mut fields: ErrorFields<'_>) -> Failure {
    let (mut code, mut message, mut extra) = (String::new(), String::new(), Map::new());
    while let Ok(Some(f)) = fields.next() {
        let text = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'C' => code = text,
            b'M' => message = text,
            b'D' => drop(extra.insert("detail".into(), Value::String(text))),
            b'H' => drop(extra.insert("hint".into(), Value::String(text))),
            b'P' => drop(extra.insert("position".into(), Value::String(text))),
            b'S' => drop(extra.insert("severity".into(), Value::String(text))),
            _ => {}
        }
    }
    Failure::Sql {
        code,
        message,
        extra,
    }
}

fn broken(e: impl std::fmt::Display) -> Failure {
    Failure::Broken(e.to_string())
}
