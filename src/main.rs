//! `throome`: the gateway binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

use throome::{admin, config, gateway::Gateway, triggers};

/// One gateway in front of Redis, PostgreSQL, Kafka and plain TCP backends.
///
/// Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when the configuration is
/// invalid or a port cannot be bound.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The gateway configuration file.
    #[arg(long, default_value = "config/throome.yaml")]
    config: PathBuf,
    /// Admin API port (overrides server.port).
    #[arg(long)]
    port: Option<u16>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let cfg = match config::load_gateway(&args.config) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("throome: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime =
        match throome::workers::start(throome::workers::resolve(cfg.gateway.worker_threads)) {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("throome: cannot start the runtime: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
    match runtime.block_on(run(args, cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("throome: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, mut cfg: config::GatewayConfig) -> anyhow::Result<()> {
    if let Some(port) = args.port {
        cfg.server.port = port;
    }
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.logging.level))
        .context("logging.level")?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let admin_addr = admin_address(&cfg)?;
    admin::check_exposure(admin_addr, cfg.server.admin_token.is_some())
        .map_err(anyhow::Error::msg)?;
    let admin_listener = tokio::net::TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("cannot bind the admin API on {admin_addr}"))?;

    let gw = Gateway::start(&args.config, cfg).await?;
    let _watch = if gw.config.gateway.watch {
        Some(triggers::watch(gw.clone()).context("cannot watch clusters_dir")?)
    } else {
        None
    };
    triggers::on_sighup(gw.clone())?;

    let stop = tokio_util::sync::CancellationToken::new();
    let server = axum::serve(admin_listener, admin::router(gw.clone()))
        .with_graceful_shutdown(stop.clone().cancelled_owned());
    tracing::info!(%admin_addr, clusters_dir = %gw.clusters_dir.display(), "throome started");
    let server = tokio::spawn(async move { server.await });

    wait_for_termination().await?;
    tracing::info!("shutting down: draining connections");
    gw.shutdown().await;
    stop.cancel();
    let _ = server.await;
    Ok(())
}

fn admin_address(cfg: &config::GatewayConfig) -> anyhow::Result<SocketAddr> {
    let host = cfg
        .server
        .host
        .trim_start_matches('[')
        .trim_end_matches(']');
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, cfg.server.port)),
        Err(_) => bail!("server.host `{}` must be an IP address", cfg.server.host),
    }
}

async fn wait_for_termination() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
