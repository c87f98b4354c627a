//! Cross-process tests: the real `hearth-hub` (embedded broker, SmolLM2 GGUF) and real
//! `hearth-terminal --text` processes on loopback, plus Debian's mosquitto clients as an
//! independent MQTT peer. One test binary, one module per topic.

mod bad_input;
mod chat;
mod dashboard;
mod emotion;
mod external_broker;
mod linkage;
mod memory;
mod model_errors;
mod mosquitto;
mod openai;
mod reconnect;
mod reminders;
mod roles;
mod rooms;
mod trust;
mod voice;

use std::time::Duration;

use hearth_shared::{decode, ReplyChunk};
use hearth_tests::Observer;

/// Generous: a loaded 2-core CI machine is slow, and these are not speed checks.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(90);

/// Reads reply chunks on `topic` until the final one; returns them with their arrival times.
pub async fn collect_reply(
    obs: &mut Observer,
    topic: &str,
) -> anyhow::Result<Vec<(ReplyChunk, std::time::Instant)>> {
    let mut chunks = Vec::new();
    loop {
        let (payload, at) = obs.next_on(topic, REPLY_TIMEOUT).await?;
        let chunk: ReplyChunk = decode(&payload, usize::MAX)?;
        let done = chunk.is_final;
        chunks.push((chunk, at));
        if done {
            return Ok(chunks);
        }
    }
}
