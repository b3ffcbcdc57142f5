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
    // Sockets handed over by the process this one replaces (SIGUSR2), before any thread.
    if let Err(e) = throome::handover::inherit() {
        eprintln!("throome: cannot take the sockets handed over: {e}");
        return std::process::ExitCode::FAILURE;
    }
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
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.logging.format {
        config::gateway::LogFormat::Json => logs.json().init(),
        config::gateway::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }

    let admin_addr = admin_address(&cfg)?;
    admin::check_exposure(admin_addr, cfg.server.admin_token.is_some())
        .map_err(anyhow::Error::msg)?;
    let admin_socket = match throome::handover::take_tcp(admin_addr).and_then(|mut s| s.pop()) {
        Some(inherited) => inherited,
        None => std::net::TcpListener::bind(admin_addr)
            .with_context(|| format!("cannot bind the admin API on {admin_addr}"))?,
    };
    admin_socket.set_nonblocking(true)?;
    let _admin_handover = throome::handover::register_tcp(std::slice::from_ref(&admin_socket));
    let admin_listener = tokio::net::TcpListener::from_std(admin_socket)?;

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
    // What the previous process handed over and this configuration does not listen on.
    throome::handover::release_unclaimed();
    throome::handover::ready();

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

/// Until SIGTERM or SIGINT, or a new process took over the sockets (SIGUSR2 or the admin
/// API's upgrade); a failed upgrade is logged and this process goes on serving.
async fn wait_for_termination() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = usr2.recv() => {}
            () = throome::handover::requested() => {}
        }
        match throome::handover::upgrade().await {
            Ok(pid) => {
                tracing::info!(pid, "a new process took over the listening sockets");
                return Ok(());
            }
            Err(e) => tracing::error!("upgrade failed, this process goes on serving: {e}"),
        }
    }
}
