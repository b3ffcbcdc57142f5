//! Who may do what: the cluster's `api_tokens` (bearer tokens, compared by their SHA-256),
//! each with scopes and optionally a list of services; and which service of the cluster a
//! request is for (`?service=`, else the first of its kind by name).

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::DataError;
use crate::config::{ApiScope, ApiToken, ServiceKind};
use crate::gateway::Gateway;
use crate::snapshot::ServiceRuntime;

/// The service a request may use, after its token was checked.
pub fn authorize(
    gw: &Gateway,
    cluster: &str,
    headers: &HeaderMap,
    kind: ServiceKind,
    service: Option<&str>,
    need: ApiScope,
) -> Result<(Arc<ServiceRuntime>, ApiToken), DataError> {
    let snapshot = gw.snapshot();
    let Some(c) = snapshot.clusters.get(cluster) else {
        return Err(DataError::new(
            StatusCode::NOT_FOUND,
            "cluster_not_found",
            format!("no cluster `{cluster}`"),
        ));
    };
    let token = token_of(c, headers)?;
    let found = match service {
        Some(name) => c.services.get(name).filter(|s| s.spec.kind == kind),
        None => c.services.values().find(|s| s.spec.kind == kind),
    };
    let Some(found) = found else {
        let what = service.map_or(String::new(), |s| format!(" `{s}`"));
        return Err(DataError::new(
            StatusCode::NOT_FOUND,
            "service_not_found",
            format!("cluster `{cluster}` has no {} service{what}", kind.as_str()),
        ));
    };
    if !token.services.is_empty() && !token.services.iter().any(|s| *s == found.name) {
        return Err(DataError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("token `{}` is not for service `{}`", token.name, found.name),
        ));
    }
    if !token.scopes.contains(&need) {
        let scope = match need {
            ApiScope::Read => "read",
            ApiScope::Write => "write",
        };
        return Err(DataError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("token `{}` has no `{scope}` scope", token.name),
        ));
    }
    Ok((found.clone(), token.clone()))
}

/// The cluster's token the request carries.
pub fn token_of<'a>(
    c: &'a crate::snapshot::ClusterRuntime,
    headers: &HeaderMap,
) -> Result<&'a ApiToken, DataError> {
    bearer(headers)
        .and_then(|given| find(&c.config.api_tokens, given))
        .ok_or_else(|| {
            DataError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("missing or wrong API token for cluster `{}`", c.id),
            )
        })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The token whose hash is the given token's. Every configured token is compared, in
/// constant time each, so the time taken does not tell which one nearly matched.
fn find<'a>(tokens: &'a [Spanned<ApiToken>], given: &str) -> Option<&'a ApiToken> {
    let digest = Sha256::digest(given.as_bytes());
    let mut found = None;
    for Spanned { value: t, .. } in tokens {
        let stored = stored_digest(t.token.expose());
        if crate::admin::constant_time_eq(&stored, &digest) && found.is_none() {
            found = Some(t);
        }
    }
    found
}

/// A configured token's SHA-256: `sha256:<hex>` as written, anything else hashed.
fn stored_digest(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("sha256:").and_then(from_hex) {
        Some(d) => d,
        None => Sha256::digest(secret.as_bytes()).to_vec(),
    }
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What `throome-cli hash-token` prints for a token: the form to store in `api_tokens`.
pub fn hash_token(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A new token: 32 random bytes, hex (what `throome-cli hash-token` makes when given none).
pub fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The response, counted in `throome_http_requests_total` under the service it was for.
pub fn respond(
    gw: &Gateway,
    service: &ServiceRuntime,
    route: &'static str,
    r: Result<Response, DataError>,
) -> Response {
    let response = r.unwrap_or_else(IntoResponse::into_response);
    let labels = crate::metrics::HttpLabels {
        cluster: service.cluster.clone(),
        service: service.name.clone(),
        client: "http",
        route,
        status: response.status().as_u16(),
    };
    gw.metrics().http.get_or_create(&labels).inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_token_matches_its_plain_form() {
        let hashed = hash_token("a-long-enough-token");
        assert_eq!(
            stored_digest(&hashed),
            Sha256::digest(b"a-long-enough-token").to_vec()
        );
        assert_eq!(stored_digest("a-long-enough-token"), stored_digest(&hashed));
        assert_ne!(stored_digest("another-long-token"), stored_digest(&hashed));
    }
}
