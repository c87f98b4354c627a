//! `hearth-terminal`: parses the command line, loads the config, starts logging and runs the
//! terminal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hearth_terminal::config::{TerminalConfig, DEFAULT_TOML};
use hearth_terminal::Mode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "hearth-terminal", version, about = "A hearth room terminal")]
struct Cli {
    /// Config file (TOML). Without it the built-in defaults are used.
    #[arg(long, env = "HEARTH_TERMINAL_CONFIG")]
    config: Option<PathBuf>,
    /// Text mode: type to the hub on stdin, read its replies on stdout.
    #[arg(long)]
    text: bool,
    /// Override terminal.id.
    #[arg(long)]
    id: Option<String>,
    /// Override terminal.room.
    #[arg(long)]
    room: Option<String>,
    /// Override hub.host.
    #[arg(long)]
    host: Option<String>,
    /// Override hub.port.
    #[arg(long)]
    port: Option<u16>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the default config file.
    Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,hearth_terminal=info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hearth-terminal: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Config) = cli.command {
        print!("{DEFAULT_TOML}");
        return Ok(());
    }
    let mut config = match &cli.config {
        Some(path) => TerminalConfig::load(path)?,
        None => TerminalConfig::default(),
    };
    if let Some(id) = cli.id {
        config.terminal.id = id;
    }
    if let Some(room) = cli.room {
        config.terminal.room = room;
    }
    if let Some(host) = cli.host {
        config.hub.host = host;
    }
    if let Some(port) = cli.port {
        config.hub.port = port;
    }
    config.validate()?;
    if !cli.text {
        tracing::warn!("voice mode is not in this build yet; running in text mode");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal as unix_signal, SignalKind};
            if let Ok(mut term) = unix_signal(SignalKind::terminate()) {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                signal.cancel();
            }
        });
        hearth_terminal::run(config, Mode::Text, shutdown).await
    })
}
