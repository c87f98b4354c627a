//! Text mode: lines from stdin go to the hub, replies stream to stdout as they arrive.

use std::io::Write;

use hearth_shared::{now_ms, SpeechReason};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::{Frontend, Input, Output};

/// Reads stdin on a task of its own (so that reading is cancel-safe) and prints to stdout.
#[derive(Debug)]
pub struct TextFrontend {
    lines: mpsc::Receiver<String>,
    printer: Printer,
}

/// Prints outputs to stdout, a reply's sentences on one line as they stream in.
#[derive(Debug, Default)]
pub struct Printer {
    /// Whether a reply line is open (printed without its newline yet).
    in_reply: bool,
}

impl TextFrontend {
    /// Starts reading stdin.
    pub fn stdin() -> TextFrontend {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        TextFrontend {
            lines: rx,
            printer: Printer::default(),
        }
    }
}

impl Printer {
    fn line(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.in_reply {
            let _ = writeln!(out);
            self.in_reply = false;
        }
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

impl Frontend for TextFrontend {
    async fn next_input(&mut self) -> Input {
        loop {
            match self.lines.recv().await {
                None => return Input::Closed,
                Some(line) if line.trim().is_empty() => continue,
                Some(line) => {
                    let now = now_ms();
                    return Input::Said {
                        text: line.trim().to_string(),
                        started_at_ms: now,
                        ended_at_ms: now,
                        audio: None,
                    };
                }
            }
        }
    }

    fn present(&mut self, output: Output) {
        self.printer.present(output);
    }
}

impl Printer {
    /// Prints one output.
    pub fn present(&mut self, output: Output) {
        match output {
            Output::HubReachable => self.line("hearth: connected to the hub"),
            Output::HubUnreachable { reason } => {
                self.line(&format!("hearth: hub unreachable ({reason}); retrying"))
            }
            Output::ReplyChunk { text, first, voice } => {
                let mut out = std::io::stdout().lock();
                let _ = if first {
                    match voice {
                        // The persona that answers names itself: "hub (Brick): ...".
                        Some(v) => write!(out, "hub ({}): {text}", v.persona),
                        None => write!(out, "hub: {text}"),
                    }
                } else {
                    write!(out, " {text}")
                };
                let _ = out.flush();
                self.in_reply = true;
            }
            Output::ReplyEnd => {
                if self.in_reply {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out);
                    let _ = out.flush();
                    self.in_reply = false;
                } else {
                    self.line("hub: (no answer)");
                }
            }
            Output::Speech { text, reason, .. } => {
                let why = match reason {
                    SpeechReason::Reminder => "reminder",
                    SpeechReason::Pixie => "pixie",
                    SpeechReason::System => "notice",
                };
                self.line(&format!("hub ({why}): {text}"))
            }
            Output::Problem(text) => self.line(&format!("hearth: {text}")),
        }
    }
}
