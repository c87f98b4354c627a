//! What the hub sends to terminals, as values: the turn pipeline and Pixie put messages in the
//! outbox, and the MQTT transport publishes them in order. Tests read the outbox instead of a
//! broker.

use hearth_shared::{ErrorReport, ReplyChunk, Speech};
use tokio::sync::{mpsc, oneshot};

/// A message for one terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A chunk of a reply.
    Reply(ReplyChunk),
    /// Speech the hub starts.
    Speech(Speech),
    /// An error about an utterance.
    Error(ErrorReport),
}

/// A message on its way, with who it is for.
#[derive(Debug)]
pub struct Outgoing {
    /// The terminal id.
    pub terminal: String,
    /// What to send.
    pub message: Message,
    /// Told once the message was handed to the MQTT client (reminders are marked said only
    /// then).
    pub handed_over: Option<oneshot::Sender<()>>,
}

/// The sending side; cloneable.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
}

impl Outbox {
    /// An outbox holding up to `capacity` messages, and what reads it.
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Outbox { tx }, rx)
    }

    /// Queues `message` for `terminal`, waiting for room. False once the transport is gone.
    pub async fn send(&self, terminal: &str, message: Message) -> bool {
        let out = Outgoing {
            terminal: terminal.to_string(),
            message,
            handed_over: None,
        };
        self.tx.send(out).await.is_ok()
    }

    /// Queues `message` and waits until the transport has handed it to the MQTT client.
    pub async fn send_confirmed(&self, terminal: &str, message: Message) -> bool {
        let (done, handed) = oneshot::channel();
        let out = Outgoing {
            terminal: terminal.to_string(),
            message,
            handed_over: Some(done),
        };
        self.tx.send(out).await.is_ok() && handed.await.is_ok()
    }
}
