//! Logins checked by the backend. On a service without `auth:`, a client's `AUTH [user]
//! pass` (or `HELLO ... AUTH user pass`) is tried on a new connection to a backend, and the
//! backend's own answer is the client's; once accepted, the client's requests go out on
//! connections logged in as it (shared by the clients of that login), so Redis ACLs apply
//! behind the proxy as in front of Redis
//! ([AUTH](https://redis.io/docs/latest/commands/auth/)). Sharded services check logins
//! at the proxy, as before.

use std::sync::Arc;

use bytes::Bytes;

use super::Client;
use crate::redis::encode;
use crate::redis::local;
use crate::redis::pool;
use crate::redis::upstream::{Login, UpstreamError};

impl Client {
    /// Whether logins go to the backend on this service.
    pub(super) fn backend_checks_logins(&self) -> bool {
        self.service.spec.auth.is_none() && self.service.spec.sharding.is_none()
    }

    /// `AUTH [user] pass`: the reply the client gets.
    pub(super) async fn auth(&mut self, user: Option<&[u8]>, pass: &[u8]) -> Bytes {
        let checked = match self.backend_checks_logins() {
            true => self.log_in(user, pass).await,
            false => local::check_auth(self.service.spec.auth.as_ref(), user, pass),
        };
        match checked {
            Ok(()) => {
                self.state.authenticated = true;
                crate::redis::clients::update(&self.state, Some(user.unwrap_or(b"default")));
                encode::simple("OK")
            }
            Err(e) => e,
        }
    }

    /// `HELLO`'s `AUTH user pass`, when the backend checks logins: `Err` is the reply.
    pub(super) async fn hello_login(&mut self, args: &[&[u8]]) -> Result<bool, Bytes> {
        // Redis checks the protocol version before the login.
        let known = matches!(args.get(1), Some(&b"2" | &b"3"));
        if !self.backend_checks_logins() || !known {
            return Ok(false);
        }
        let at = args
            .iter()
            .skip(2)
            .position(|a| a.eq_ignore_ascii_case(b"auth"))
            .map(|i| i + 2);
        match at.and_then(|i| Some((*args.get(i + 1)?, *args.get(i + 2)?))) {
            Some((user, pass)) => self.log_in(Some(user), pass).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Tries the login on a new connection; on success the client's connections from now
    /// on are logged in as it. A refused login leaves the client as it was, as in Redis.
    async fn log_in(&mut self, user: Option<&[u8]>, pass: &[u8]) -> Result<(), Bytes> {
        let login = Login {
            user: user.map(<[u8]>::to_vec),
            pass: pass.to_vec(),
        };
        // Requests sent before are answered as the client was.
        self.drain().await;
        match pool::open_dedicated(&self.pools, &self.service, false, Some(&login)).await {
            Ok((_, _tried)) => {
                self.state.login = Some(Arc::new(login));
                self.sticky = [None, None];
                Ok(())
            }
            Err(UpstreamError::Handshake(answer)) => {
                self.metrics.error(&self.service, "client_auth");
                let mut reply = answer.into_bytes();
                reply.extend_from_slice(b"\r\n");
                Err(reply.into())
            }
            Err(e) => {
                self.metrics.error(&self.service, e.kind());
                Err(encode::error(&format!("ERR Throome: {e}")))
            }
        }
    }
}
