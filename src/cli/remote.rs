//! A small blocking client for the admin API, for `--gateway` commands.

use std::time::Duration;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot reach the gateway at {url}: {source}")]
    Unreachable { url: String, source: ureq::Error },
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
}

pub struct Remote {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Remote {
    pub fn new(base: &str, token: Option<String>) -> Self {
        let base = base.trim_end_matches('/');
        let base = if base.contains("://") {
            base.to_string()
        } else {
            format!("http://{base}")
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Remote { base, token, agent }
    }

    pub fn get(&self, path: &str) -> Result<Value, RemoteError> {
        self.call("GET", path)
    }

    pub fn post(&self, path: &str) -> Result<Value, RemoteError> {
        self.call("POST", path)
    }

    fn call(&self, method: &str, path: &str) -> Result<Value, RemoteError> {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let result = match req.body(()) {
            Ok(req) => self.agent.run(req),
            Err(e) => Err(ureq::Error::from(e)),
        };
        finish(&url, result)
    }
}

fn finish(
    url: &str,
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Value, RemoteError> {
    let mut resp = r.map_err(|source| RemoteError::Unreachable {
        url: url.to_string(),
        source,
    })?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    if (200..300).contains(&status) {
        Ok(json)
    } else {
        let message = json
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| json.to_string());
        Err(RemoteError::Status {
            url: url.to_string(),
            status,
            message,
        })
    }
}
