//! `throome-cli`: create, list and validate clusters; reload and inspect a running gateway.

mod create;
mod list;
mod remote;
mod table;
mod validate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;
use remote::{Remote, RemoteError};

/// Manage Throome clusters.
///
/// Exit codes: 0 success; 1 invalid configuration, refused operation or (for `status`) a
/// backend that is down; 2 usage error; 3 the gateway could not be reached or answered with
/// an error.
#[derive(Parser)]
#[command(name = "throome-cli", version)]
pub struct Cli {
    /// The gateway configuration file (for clusters_dir) [default: config/throome.yaml;
    /// when that is missing, create-cluster writes to ./clusters].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Bearer token for the admin API.
    #[arg(
        long,
        global = true,
        env = "THROOME_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write clusters/<id>/config.yaml from a commented template and print the id.
    CreateCluster {
        /// Human-readable cluster name.
        #[arg(long)]
        name: String,
        /// Cluster id (default: derived from the name).
        #[arg(long)]
        id: Option<String>,
        /// Where to write (default: clusters_dir of --config).
        #[arg(long)]
        clusters_dir: Option<PathBuf>,
    },
    /// List clusters and their services, from the files or a running gateway.
    ListClusters {
        /// Ask a running gateway (e.g. http://127.0.0.1:9000) and show live health.
        #[arg(long)]
        gateway: Option<String>,
        /// Read this clusters dir instead of the one in --config.
        #[arg(long)]
        clusters_dir: Option<PathBuf>,
    },
    /// Check gateway and cluster files; errors print as file:line:column: message.
    Validate {
        /// Files or clusters directories (default: --config and its clusters_dir).
        paths: Vec<PathBuf>,
    },
    /// Ask a running gateway to reload its clusters.
    Reload {
        #[arg(long)]
        gateway: String,
    },
    /// Show a running gateway's readiness and backend health.
    Status {
        #[arg(long)]
        gateway: String,
    },
    /// Restart a running gateway without dropping clients: a new process takes over its
    /// listening sockets, the old one drains and exits (as SIGUSR2).
    Upgrade {
        #[arg(long)]
        gateway: String,
    },
    /// Exit 0 when the gateway is ready (`/ready`), 1 when not: a container HEALTHCHECK.
    Ready {
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        gateway: String,
    },
    /// Print the form of an API token to store in a cluster's `api_tokens` (`sha256:...`);
    /// with no token, make a random one and print it too.
    HashToken { token: Option<String> },
}

const FAILED: u8 = 1;
const UNREACHABLE: u8 = 3;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(run(cli))
}

/// The gateway file given, else the default one.
const DEFAULT_CONFIG: &str = "config/throome.yaml";

fn run(cli: Cli) -> u8 {
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    match cli.command {
        Command::Upgrade { gateway } => {
            match Remote::new(&gateway, cli.token).post("/api/v1/upgrade") {
                Ok(_) => {
                    println!("upgrading: a new process takes over, this one drains");
                    0
                }
                Err(e) => remote_fail(e),
            }
        }
        Command::Ready { gateway } => match Remote::new(&gateway, None).get("/ready") {
            Ok(_) => 0,
            Err(RemoteError::Status { .. }) => FAILED,
            Err(e) => remote_fail(e),
        },
        Command::HashToken { token } => {
            let token = match token {
                Some(t) => t,
                None => match crate::data::access::random_token() {
                    Ok(t) => {
                        println!("token: {t}");
                        t
                    }
                    Err(e) => return fail(e),
                },
            };
            println!("{}", crate::data::access::hash_token(&token));
            0
        }
        Command::CreateCluster {
            name,
            id,
            clusters_dir,
        } => {
            // As the original quick start: without a gateway file of its own, `./clusters`
            // (a --config that is missing stays an error).
            let default_missing = cli.config.is_none() && !config_path.exists();
            let dir = match (clusters_dir, default_missing) {
                (Some(dir), _) => Some(dir),
                (None, true) => Some(PathBuf::from("clusters")),
                (None, false) => clusters_dir_of(&config_path),
            };
            let Some(dir) = dir else {
                return FAILED;
            };
            match create::create(&dir, &name, id.as_deref()) {
                Ok((id, file)) => {
                    println!("{id}");
                    eprintln!("created {}", file.display());
                    0
                }
                Err(e) => fail(e),
            }
        }
        Command::ListClusters {
            gateway: Some(url), ..
        } => match Remote::new(&url, cli.token).get("/api/v1/clusters") {
            Ok(v) => {
                print!("{}", list::from_api(&v).0);
                0
            }
            Err(e) => remote_fail(e),
        },
        Command::ListClusters {
            gateway: None,
            clusters_dir,
        } => {
            let Some(dir) = clusters_dir.or_else(|| clusters_dir_of(&config_path)) else {
                return FAILED;
            };
            match config::load_clusters(&dir) {
                Ok(loaded) => {
                    // The shared listeners, when the gateway file is there to tell.
                    let shared = config::load_gateway(&config_path)
                        .map(|g| g.listeners)
                        .unwrap_or_default();
                    print!("{}", list::from_files(&loaded, &shared));
                    0
                }
                Err(e) => fail(e),
            }
        }
        Command::Validate { paths } => match validate::run(&paths, &config_path) {
            Ok(checked) => {
                for c in checked {
                    match c {
                        validate::Checked::Gateway(p) => println!("ok  {} (gateway)", p.display()),
                        validate::Checked::Cluster(p) => println!("ok  {} (cluster)", p.display()),
                        validate::Checked::ClustersDir(p, n) => {
                            println!("ok  {} ({n} clusters)", p.display())
                        }
                    }
                }
                0
            }
            Err(e) => fail(e),
        },
        Command::Reload { gateway } => {
            match Remote::new(&gateway, cli.token).post("/api/v1/reload") {
                Ok(v) => {
                    let r = &v["reload"];
                    println!(
                        "reloaded: added {}, removed {}, changed {}, unchanged {}",
                        r["added"], r["removed"], r["changed"], r["unchanged"]
                    );
                    0
                }
                Err(e) => remote_fail(e),
            }
        }
        Command::Status { gateway } => status(&Remote::new(&gateway, cli.token)),
    }
}

fn status(remote: &Remote) -> u8 {
    let ready = match remote.get("/ready") {
        Ok(_) => true,
        Err(RemoteError::Status { .. }) => false,
        Err(e) => return remote_fail(e),
    };
    match remote.get("/api/v1/clusters") {
        Ok(v) => {
            let (table, all_up) = list::from_api(&v);
            println!("gateway: {}", if ready { "ready" } else { "not ready" });
            print!("{table}");
            if ready && all_up { 0 } else { FAILED }
        }
        Err(e) => remote_fail(e),
    }
}

fn clusters_dir_of(gateway_file: &Path) -> Option<PathBuf> {
    match config::load_gateway(gateway_file) {
        Ok(g) => Some(config::resolve_clusters_dir(gateway_file, &g)),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

fn fail(e: impl std::fmt::Display) -> u8 {
    eprintln!("{e}");
    FAILED
}

fn remote_fail(e: RemoteError) -> u8 {
    eprintln!("{e}");
    UNREACHABLE
}
