//! A scripted language model and embedder for in-process tests of the turn pipeline. They run
//! behind the same handles, queue and threads as the real ones; only the text is made up.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::embed::Encoder;
use super::model::Model;
use super::sentence::SentenceSplitter;
use super::{GenerateRequest, GenerationStats, LlmError, LlmEvent, LlmHandle, ModelInfo};

/// What the scripted model writes for a request.
pub type Script = Box<dyn Fn(&GenerateRequest) -> Result<String, LlmError> + Send>;

/// Permits to write sentences: a test holds the model mid-reply and lets it go on step by
/// step. Open by default.
#[derive(Clone, Default)]
pub struct Gate {
    inner: Arc<(Mutex<Option<usize>>, Condvar)>,
}

impl Gate {
    /// A closed gate: every sentence needs a permit.
    pub fn closed() -> Gate {
        let gate = Gate::default();
        *gate.inner.0.lock().unwrap() = Some(0);
        gate
    }

    /// Lets `n` more sentences through.
    pub fn release(&self, n: usize) {
        let (permits, wake) = &*self.inner;
        if let Some(p) = permits.lock().unwrap().as_mut() {
            *p += n;
        }
        wake.notify_all();
    }

    /// Closes the gate: from now on every sentence needs a permit.
    pub fn close(&self) {
        *self.inner.0.lock().unwrap() = Some(0);
    }

    /// Opens the gate for good.
    pub fn open(&self) {
        *self.inner.0.lock().unwrap() = None;
        self.inner.1.notify_all();
    }

    /// Waits for a permit; false if `cancel` fired first.
    fn pass(&self, cancel: &CancellationToken) -> bool {
        let (permits, wake) = &*self.inner;
        let mut p = permits.lock().unwrap();
        loop {
            if cancel.is_cancelled() {
                return false;
            }
            match p.as_mut() {
                None => return true,
                Some(0) => {
                    // The token has no condvar of its own: look again shortly.
                    p = wake.wait_timeout(p, Duration::from_millis(5)).unwrap().0;
                }
                Some(n) => {
                    *n -= 1;
                    return true;
                }
            }
        }
    }
}

/// Every request the scripted model saw, in order.
pub type Seen = Arc<Mutex<Vec<GenerateRequest>>>;

/// A model that answers from a script, sentence by sentence through a [`Gate`].
pub struct Scripted {
    script: Script,
    gate: Gate,
    seen: Seen,
}

impl Scripted {
    /// Starts an inference thread over `script`, sentences through `gate`, with room for 16
    /// waiting requests. Returns the handle and the log of requests.
    pub fn start(
        script: impl Fn(&GenerateRequest) -> Result<String, LlmError> + Send + 'static,
        gate: Gate,
    ) -> (LlmHandle, Seen) {
        Scripted::start_with(script, gate, 16)
    }

    /// [`Scripted::start`] with room for `capacity` waiting requests.
    pub fn start_with(
        script: impl Fn(&GenerateRequest) -> Result<String, LlmError> + Send + 'static,
        gate: Gate,
        capacity: usize,
    ) -> (LlmHandle, Seen) {
        let seen = Seen::default();
        let model = Scripted {
            script: Box::new(script),
            gate,
            seen: Arc::clone(&seen),
        };
        let info = ModelInfo {
            path: "scripted".into(),
            name: Some("scripted".into()),
            architecture: None,
            template: super::TemplateSource::Override("none".into()),
            context_tokens: 4096,
            backend: "scripted".into(),
            layers: 0,
            gpu_layers: 0,
        };
        (LlmHandle::with_model(model, info, capacity), seen)
    }
}

impl Model for Scripted {
    fn generate(
        &mut self,
        request: &GenerateRequest,
        events: &mpsc::Sender<LlmEvent>,
        cancel: &CancellationToken,
        _preempt: &mut dyn FnMut() -> bool,
    ) -> Result<GenerationStats, LlmError> {
        self.seen.lock().unwrap().push(request.clone());
        let text = (self.script)(request)?;
        let mut splitter = SentenceSplitter::default();
        let mut sentences = splitter.push(&text);
        sentences.extend(splitter.finish());
        let mut written = String::new();
        let mut cancelled = false;
        for sentence in sentences {
            if !self.gate.pass(cancel) || events.is_closed() {
                cancelled = true;
                break;
            }
            written.push_str(&sentence);
            written.push(' ');
            if !request.background && events.blocking_send(LlmEvent::Sentence(sentence)).is_err() {
                cancelled = true;
                break;
            }
        }
        Ok(GenerationStats {
            text: written.trim().to_string(),
            generated_tokens: written.split_whitespace().count(),
            cancelled,
            ..GenerationStats::default()
        })
    }
}

/// A bag-of-words embedder: each lower-cased word (a trailing "s" dropped) hashed into one
/// of `dim` buckets, then normalised. Texts that share words are close, as with a real model.
pub struct HashedWords {
    dim: usize,
}

impl HashedWords {
    /// `dim` buckets.
    pub fn new(dim: usize) -> HashedWords {
        HashedWords { dim }
    }
}

impl Encoder for HashedWords {
    fn dim(&self) -> usize {
        self.dim
    }

    fn encode(&mut self, text: &str) -> Result<Vec<f32>, LlmError> {
        let mut v = vec![0.0f32; self.dim];
        for word in crate::words::words(text) {
            let word = word.strip_suffix('s').unwrap_or(&word);
            let h = word.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            v[(h % self.dim as u64) as usize] += 1.0;
        }
        Ok(v)
    }
}
