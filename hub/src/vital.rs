//! The threads the hub cannot serve without: the inference thread, the embedding thread and
//! the embedded broker. If one of them ends while the hub is serving, the hub stops and exits
//! non-zero, so that the service manager restarts it, instead of staying up and answering
//! nothing.

use std::thread::JoinHandle;

use tokio::task::JoinSet;

/// Watches vital threads. [`Vital::died`] resolves when the first of them ends.
#[derive(Debug, Default)]
pub struct Vital {
    watching: JoinSet<String>,
}

impl Vital {
    /// Watches `thread`, named `name` in the error.
    pub fn watch<T: Send + 'static>(&mut self, name: &'static str, thread: JoinHandle<T>) {
        self.watching.spawn_blocking(move || match thread.join() {
            Ok(_) => format!("the {name} thread stopped"),
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_string());
                format!("the {name} thread panicked: {reason}")
            }
        });
    }

    /// Why the first watched thread ended; pending forever while they all run (or when none
    /// is watched).
    pub async fn died(&mut self) -> String {
        match self.watching.join_next().await {
            Some(Ok(reason)) => reason,
            Some(Err(e)) => format!("a thread watcher failed: {e}"),
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
        let reason = vital.died().await;
        assert_eq!(reason, "the llm thread panicked: ggml: out of memory");
        drop(tx);
        assert_eq!(vital.died().await, "the steady thread stopped");
    }
}
