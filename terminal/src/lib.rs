//! The hearth room terminal: connects to the hub over MQTT and lets a person talk to it.
//!
//! Text mode is the first front end; the voice front end implements the same
//! [`frontend::Frontend`] trait. `main.rs` is a thin CLI over [`run`].

pub mod config;
pub mod frontend;
pub mod link;
pub mod session;

use tokio_util::sync::CancellationToken;

use crate::config::TerminalConfig;
use crate::frontend::text::TextFrontend;
use crate::link::HubLink;

/// How the person talks to this terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lines on stdin, replies on stdout.
    Text,
}

/// Runs the terminal until `shutdown`, or until text input ends and the last reply is done.
pub async fn run(
    config: TerminalConfig,
    mode: Mode,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    tracing::info!(id = %config.terminal.id, room = %config.terminal.room,
        hub = %format!("{}:{}", config.hub.host, config.hub.port), "terminal starting");
    let link_stop = shutdown.child_token();
    let (link, events, link_task) = HubLink::start(&config, link_stop.clone())?;
    match mode {
        Mode::Text => {
            session::run(&config, link, events, TextFrontend::stdin(), shutdown).await;
        }
    }
    link_stop.cancel();
    let _ = link_task.await;
    Ok(())
}
