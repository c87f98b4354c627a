//! The hearth room terminal: connects to the hub over MQTT and lets a person talk to it.
//!
//! Text mode is the first front end; the voice front end implements the same
//! [`frontend::Frontend`] trait. `main.rs` is a thin CLI over [`run`].

pub mod audio;
pub mod bench;
pub mod config;
pub mod endpoint;
pub mod frontend;
pub mod link;
pub mod pin;
pub mod session;
pub mod stt;
pub mod timeline;
pub mod tts;
pub mod wake;

use tokio_util::sync::CancellationToken;

use crate::config::TerminalConfig;
use crate::frontend::text::TextFrontend;
use crate::frontend::voice::{Source, VoiceError, VoiceFrontend};
use crate::link::HubLink;

/// How the person talks to this terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Lines on stdin, replies on stdout.
    Text,
    /// Voice: a microphone (or a WAV file standing in for one), replies spoken and printed.
    Voice(frontend::voice::Source),
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
    // Models load before the hub link starts, so that a bad model path is an error at once.
    let voice = match &mode {
        Mode::Voice(source) => match VoiceFrontend::start(&config, source.clone()) {
            Ok(voice) => Some(voice),
            // No sound card at all (a server, CI): text mode, said plainly. A device named in
            // the config that is missing stays an error.
            Err(VoiceError::Device(e)) if *source == Source::Device(None) => {
                tracing::warn!(error = %e, "no microphone; running in text mode (--input-wav runs voice mode on a WAV file)");
                None
            }
            Err(e) => return Err(e.into()),
        },
        Mode::Text => None,
    };
    let link_stop = shutdown.child_token();
    let (link, events, link_task) = HubLink::start(&config, link_stop.clone())?;
    match voice {
        Some(voice) => session::run(&config, link, events, voice, shutdown).await,
        None => session::run(&config, link, events, TextFrontend::stdin(), shutdown).await,
    }
    link_stop.cancel();
    let _ = link_task.await;
    Ok(())
}
