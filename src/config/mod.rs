//! Configuration: the gateway file and the cluster files, parsed with serde-saphyr so that
//! every error carries `file:line:column`, then validated before anything is swapped in.

pub mod cluster;
pub mod gateway;
mod security;
pub mod types;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use cluster::{
    ApiScope, ApiToken, BackendConfig, CircuitBreakerConfig, ClusterConfig, HealthConfig, KeyHash,
    PoolMode, Role, RoutingConfig, ServiceConfig, ServiceKind, SessionState, Sharding, Strategy,
    UserSettings,
};
pub use gateway::GatewayConfig;
pub use security::{
    AuthMethod, AuthQuery, ClientAuth, SaslMechanism, ServerTlsConfig, ServerTlsMode, TlsConfig,
};
pub use types::{ListenAddr, Seconds, Secret};
pub use validate::{unix_socket_mode, validate_cluster, validate_set};

/// Largest config file we read: a guard against pointing the gateway at the wrong file.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A problem at a position in a YAML text (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl Located {
    pub fn new(line: u64, column: u64, message: impl Into<String>) -> Self {
        Located {
            line: line.max(1),
            column: column.max(1),
            message: message.into(),
        }
    }

    pub fn at(loc: serde_saphyr::Location, message: impl Into<String>) -> Self {
        Located::new(loc.line(), loc.column(), message)
    }

    pub fn in_file(self, path: &Path) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line: self.line,
            column: self.column,
            message: self.message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}:1:1: cannot read file: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
}

/// Several errors found in one pass, printed one per line.
#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// Parses a YAML (or JSON, which is YAML) document into `T`.
fn parse<T: DeserializeOwned>(text: &str) -> Result<T, Located> {
    serde_saphyr::from_str::<T>(text).map_err(|e| {
        let plain = e.without_snippet();
        let (line, column) = plain
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        Located::new(line, column, first_line(&plain.to_string()))
    })
}

/// serde-saphyr's messages can carry a rendered snippet and end in " at line N, column M";
/// we print the position ourselves, so keep just the message.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("invalid configuration").trim();
    match line.rfind(" at line ") {
        Some(pos) if line[pos..].contains(", column ") => line[..pos].to_string(),
        _ => line.to_string(),
    }
}

/// Parses and validates one cluster file's text. Used by the loader, the admin API and fuzzing.
pub fn parse_cluster(text: &str) -> Result<ClusterConfig, Located> {
    let cluster: ClusterConfig = parse(text)?;
    validate_cluster(&cluster)?;
    Ok(cluster)
}

/// Parses the gateway file's text.
pub fn parse_gateway(text: &str) -> Result<GatewayConfig, Located> {
    parse(text)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(
            Located::new(1, 1, format!("file is larger than {MAX_FILE_BYTES} bytes")).in_file(path),
        );
    }
    std::fs::read_to_string(path).map_err(io)
}

pub fn load_gateway(path: &Path) -> Result<GatewayConfig, ConfigError> {
    let text = read(path)?;
    parse_gateway(&text).map_err(|e| e.in_file(path))
}

pub fn load_cluster(path: &Path) -> Result<ClusterConfig, ConfigError> {
    let text = read(path)?;
    parse_cluster(&text).map_err(|e| e.in_file(path))
}

/// A cluster file and what it parsed to.
#[derive(Debug, Clone)]
pub struct LoadedCluster {
    pub path: PathBuf,
    pub config: ClusterConfig,
}

/// The cluster files of a `clusters_dir`: every `<dir>/<id>/config.yaml`, in name order.
pub fn cluster_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io = |source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        // Hidden entries are a ConfigMap volume's own (`..data`, `..2026_12_07_...`); the
        // cluster directories it shows are symlinks through `..data`, followed here.
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file = entry.path().join("config.yaml");
        if entry.path().is_dir() && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads and validates every cluster of `dir`, including checks across files (unique ids and
/// listen addresses). All errors are returned, not just the first.
pub fn load_clusters(dir: &Path) -> Result<Vec<LoadedCluster>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut loaded = Vec::new();
    for path in cluster_files(dir)? {
        match load_cluster(&path) {
            Ok(config) => loaded.push(LoadedCluster { path, config }),
            Err(e) => errors.push(e),
        }
    }
    errors.extend(validate_set(&loaded));
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Resolves `clusters_dir` against the directory holding the gateway file.
pub fn resolve_clusters_dir(gateway_file: &Path, config: &GatewayConfig) -> PathBuf {
    let dir = &config.gateway.clusters_dir;
    if dir.is_absolute() {
        return dir.clone();
    }
    match gateway_file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(dir),
        _ => dir.clone(),
    }
}

#[cfg(test)]
mod tests;
