//! `throome-cli validate`: checks gateway and cluster files without starting anything.

use std::path::{Path, PathBuf};

use crate::config::{self, ConfigError, ConfigErrors};

/// What one path turned out to be.
pub enum Checked {
    Gateway(PathBuf),
    Cluster(PathBuf),
    ClustersDir(PathBuf, usize),
}

/// Validates each path: a directory is a clusters dir (with cross-file checks), a file is a
/// cluster file when it has a `cluster_id`, else a gateway file. With no paths, the gateway
/// file `default_gateway` and its clusters dir.
pub fn run(paths: &[PathBuf], default_gateway: &Path) -> Result<Vec<Checked>, ConfigErrors> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    if paths.is_empty() {
        match config::load_gateway(default_gateway) {
            Ok(g) => {
                ok.push(Checked::Gateway(default_gateway.to_path_buf()));
                let dir = config::resolve_clusters_dir(default_gateway, &g);
                check_dir(&dir, &mut ok, &mut errors);
            }
            Err(e) => errors.push(e),
        }
    }
    for path in paths {
        if path.is_dir() {
            check_dir(path, &mut ok, &mut errors);
        } else if is_cluster_file(path) {
            match config::load_cluster(path) {
                Ok(_) => ok.push(Checked::Cluster(path.clone())),
                Err(e) => errors.push(e),
            }
        } else {
            match config::load_gateway(path) {
                Ok(_) => ok.push(Checked::Gateway(path.clone())),
                Err(e) => errors.push(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn check_dir(dir: &Path, ok: &mut Vec<Checked>, errors: &mut Vec<ConfigError>) {
    match config::load_clusters(dir) {
        Ok(loaded) => ok.push(Checked::ClustersDir(dir.to_path_buf(), loaded.len())),
        Err(e) => errors.extend(e.0),
    }
}

/// A cluster file names its cluster at the top level; a gateway file never does.
fn is_cluster_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .any(|l| l.starts_with("cluster_id") || l.contains("\"cluster_id\""))
        })
        .unwrap_or(false)
}
