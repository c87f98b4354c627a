//! The threads the hub cannot serve without: the inference thread, the embedding thread and
//! the embedded broker. If one of them ends while the hub is serving, the hub stops and exits
//! non-zero, so that the service manager restarts it, instead of staying up and answering
//! nothing.
//!
//! Each watched thread is joined by a small thread of its own, not by a task on the async
//! runtime: a runtime waits for its blocking tasks when it shuts down, and the broker's
//! thread never ends.

use std::thread::JoinHandle;

use tokio::sync::mpsc;

/// Watches vital threads. [`Vital::ended`] says which ended, and why.
#[derive(Debug)]
pub struct Vital {
    tx: mpsc::UnboundedSender<(&'static str, String)>,
    rx: mpsc::UnboundedReceiver<(&'static str, String)>,
}

impl Default for Vital {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Vital { tx, rx }
    }
}

impl Vital {
    /// Watches `thread`, named `name` in the reason.
    pub fn watch<T: Send + 'static>(&mut self, name: &'static str, thread: JoinHandle<T>) {
        let tx = self.tx.clone();
        let watcher = std::thread::Builder::new()
            .name(format!("watch-{name}"))
            .spawn(move || {
                let reason = match thread.join() {
                    Ok(_) => format!("the {name} thread stopped"),
                    Err(panic) => {
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "no message".to_string());
                        format!("the {name} thread panicked: {message}")
                    }
                };
                let _ = tx.send((name, reason));
            });
        if let Err(e) = watcher {
            tracing::error!(error = %e, name, "cannot watch a thread");
        }
    }

    /// The name of the next watched thread to end, and why; pending while they all run.
    pub async fn ended(&mut self) -> (&'static str, String) {
        match self.rx.recv().await {
            Some(ended) => ended,
            // Unreachable while `self` holds a sender.
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_thread_is_reported_with_its_message() {
        let mut vital = Vital::default();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        vital.watch("steady", std::thread::spawn(move || rx.recv()));
        vital.watch("llm", std::thread::spawn(|| panic!("ggml: out of memory")));
        let (name, reason) = vital.ended().await;
        assert_eq!(name, "llm");
        assert_eq!(reason, "the llm thread panicked: ggml: out of memory");
        drop(tx);
        assert_eq!(vital.ended().await.1, "the steady thread stopped");
    }

    #[test]
    fn a_thread_that_never_ends_does_not_hold_the_runtime() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (_tx, rx) = std::sync::mpsc::channel::<()>();
        runtime.block_on(async {
            let mut vital = Vital::default();
            vital.watch("broker", std::thread::spawn(move || rx.recv()));
        });
        // Dropping the runtime returns: nothing on it waits for the broker's thread.
        drop(runtime);
    }
}
