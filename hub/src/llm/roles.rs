//! The jobs the one language model does, each under its role: the consciousness answers, the
//! preprocessor compresses a room's old history, the memory writer keeps the graph, Pixie
//! reflects, and the subconscious (memory queries) is reserved for model-written recall.
//!
//! Every [`GenerateRequest`] names its role. `[roles.<name>]` in the config overrides what a
//! role's job runs with (its system prompt, reply length, temperature); the handle applies the
//! override as it queues the job, so the code that builds a job never reads the config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ChatMessage, GenerateRequest, Role};

/// What a language-model job is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum JobRole {
    /// Answers the person.
    #[default]
    Consciousness,
    /// Reserved: model-written memory queries before the answer (no job uses it yet; the
    /// graph writer's search queries are the memory writer's).
    Subconscious,
    /// Compresses a room's older exchanges into a summary that stays in the prompt.
    Preprocessor,
    /// Writes the memory graph, and reads memory controls the code could not.
    MemoryWriter,
    /// Pixie's reflections and follow-ups.
    Pixie,
}

impl JobRole {
    /// Every role.
    pub const ALL: [JobRole; 5] = [
        JobRole::Consciousness,
        JobRole::Subconscious,
        JobRole::Preprocessor,
        JobRole::MemoryWriter,
        JobRole::Pixie,
    ];

    /// The role named `name` (as [`JobRole::name`] writes it).
    pub fn from_name(name: &str) -> Option<JobRole> {
        JobRole::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The role's place in [`JobRole::ALL`].
    pub fn index(self) -> usize {
        JobRole::ALL
            .iter()
            .position(|r| *r == self)
            .expect("every role is in ALL")
    }

    /// The role's name, as in `[roles.<name>]` and the logs.
    pub fn name(self) -> &'static str {
        match self {
            JobRole::Consciousness => "consciousness",
            JobRole::Subconscious => "subconscious",
            JobRole::Preprocessor => "preprocessor",
            JobRole::MemoryWriter => "memory_writer",
            JobRole::Pixie => "pixie",
        }
    }
}

impl std::fmt::Display for JobRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one role's jobs run with. Each unset value keeps what the job's code chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleConfig {
    /// Replaces the job's system prompt; empty keeps the built-in one (for the
    /// consciousness, `conversation.system_prompt`).
    pub system_prompt: String,
    /// The most tokens one job writes; 0 keeps the job's own limit.
    pub max_tokens: u32,
    /// Sampling temperature; below 0 keeps `llm.temperature`. Grammar-constrained jobs are
    /// always greedy.
    pub temperature: f32,
    /// A LoRA adapter (GGUF, trained for this base model) applied to this role's jobs; empty:
    /// the base weights. `~/` is expanded. Checked against the model at start.
    pub adapter: PathBuf,
    /// How strongly the adapter applies (llama.cpp's adapter scale; 1 as trained).
    pub adapter_scale: f32,
    /// The system prompt used instead of the full one while an adapter is set: what the
    /// adapter learned need not be said again (one sentence, say). Empty: the full prompt.
    pub minimal_prompt: String,
}

impl Default for RoleConfig {
    fn default() -> Self {
        RoleConfig {
            system_prompt: String::new(),
            max_tokens: 0,
            temperature: -1.0,
            adapter: PathBuf::new(),
            adapter_scale: 1.0,
            minimal_prompt: String::new(),
        }
    }
}

impl RoleConfig {
    /// Whether an adapter is set.
    pub fn has_adapter(&self) -> bool {
        !self.adapter.as_os_str().is_empty()
    }

    /// The system prompt that replaces the job's: the minimal one while an adapter is set
    /// (when there is one), else `system_prompt`; empty keeps the job's own.
    pub fn prompt(&self) -> &str {
        if self.has_adapter() && !self.minimal_prompt.is_empty() {
            &self.minimal_prompt
        } else {
            &self.system_prompt
        }
    }
}

/// `[roles.<name>]`: one table per role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolesConfig {
    /// Answers.
    pub consciousness: RoleConfig,
    /// Memory queries.
    pub subconscious: RoleConfig,
    /// History compression.
    pub preprocessor: RoleConfig,
    /// Graph writes and memory controls.
    pub memory_writer: RoleConfig,
    /// Reflections and follow-ups.
    pub pixie: RoleConfig,
    /// The role log keeps at most this many jobs (the oldest go first); 0 logs none.
    pub log_entries: usize,
}

impl Default for RolesConfig {
    fn default() -> Self {
        RolesConfig {
            consciousness: RoleConfig::default(),
            subconscious: RoleConfig::default(),
            preprocessor: RoleConfig::default(),
            memory_writer: RoleConfig::default(),
            pixie: RoleConfig::default(),
            log_entries: 5000,
        }
    }
}

impl RolesConfig {
    /// The settings of `role`.
    pub fn get(&self, role: JobRole) -> &RoleConfig {
        match role {
            JobRole::Consciousness => &self.consciousness,
            JobRole::Subconscious => &self.subconscious,
            JobRole::Preprocessor => &self.preprocessor,
            JobRole::MemoryWriter => &self.memory_writer,
            JobRole::Pixie => &self.pixie,
        }
    }

    /// Every role with its settings.
    pub fn all(&self) -> [(JobRole, &RoleConfig); 5] {
        JobRole::ALL.map(|r| (r, self.get(r)))
    }

    /// The system prompt of an answer: `roles.consciousness.minimal_prompt` while it has an
    /// adapter, else `roles.consciousness.system_prompt`, or `built_in`
    /// (`conversation.system_prompt`) when that is empty.
    pub fn answer_prompt<'a>(&'a self, built_in: &'a str) -> &'a str {
        match self.consciousness.prompt() {
            "" => built_in,
            set => set,
        }
    }

    /// The full system prompt of an answer, adapter or not: `roles.consciousness.system_prompt`,
    /// or `built_in` when that is empty (what training replaces with the minimal one).
    pub fn full_answer_prompt<'a>(&'a self, built_in: &'a str) -> &'a str {
        match self.consciousness.system_prompt.as_str() {
            "" => built_in,
            set => set,
        }
    }

    /// A value out of range, named by its key.
    pub fn check(&self) -> Result<(), String> {
        for (role, c) in self.all() {
            if c.temperature > 5.0 || c.temperature.is_nan() {
                return Err(format!(
                    "roles.{role}.temperature ({}) must be at most 5 (below 0: llm.temperature)",
                    c.temperature
                ));
            }
            if !(c.adapter_scale > 0.0 && c.adapter_scale <= 10.0) {
                return Err(format!(
                    "roles.{role}.adapter_scale ({}) must be above 0 and at most 10",
                    c.adapter_scale
                ));
            }
        }
        Ok(())
    }

    /// Every role's adapter path, to expand `~/` in.
    pub fn adapter_paths(&mut self) -> [&mut PathBuf; 5] {
        [
            &mut self.consciousness.adapter,
            &mut self.subconscious.adapter,
            &mut self.preprocessor.adapter,
            &mut self.memory_writer.adapter,
            &mut self.pixie.adapter,
        ]
    }

    /// Applies the settings of the request's role: its system prompt ([`RoleConfig::prompt`])
    /// replaces the leading system message (or leads, when there is none), and its reply
    /// length and temperature replace the job's; a persona's own settings then go over the
    /// role's. The consciousness's system prompt is not replaced here: the turn pipeline
    /// composes it ([`RolesConfig::answer_prompt`], the persona's codex) with the room's
    /// summary after it.
    pub fn apply(&self, request: &mut GenerateRequest) {
        let c = self.get(request.role);
        let prompt = c.prompt();
        if !prompt.is_empty() && request.role != JobRole::Consciousness {
            match request.messages.first_mut() {
                Some(m) if m.role == Role::System => m.content = prompt.to_string(),
                _ => request
                    .messages
                    .insert(0, ChatMessage::new(Role::System, prompt.to_string())),
            }
        }
        if c.max_tokens > 0 {
            request.max_tokens = Some(c.max_tokens);
        }
        if c.temperature >= 0.0 {
            request.temperature = Some(c.temperature);
        }
        if let Some(p) = &request.persona {
            request.max_tokens = p.max_tokens.or(request.max_tokens);
            request.temperature = p.temperature.or(request.temperature);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_overrides_only_what_it_sets() {
        let mut roles = RolesConfig::default();
        roles.preprocessor.system_prompt = "Summarise.".into();
        roles.preprocessor.max_tokens = 99;
        let messages = vec![
            ChatMessage::new(Role::System, "built in"),
            ChatMessage::new(Role::User, "hello"),
        ];
        let mut chat = GenerateRequest::chat(messages.clone());
        roles.consciousness.system_prompt = "Answer.".into();
        roles.apply(&mut chat);
        assert_eq!(
            chat.messages, messages,
            "the pipeline composes the answer's prompt"
        );
        assert_eq!(roles.answer_prompt("built in"), "Answer.");
        assert_eq!((chat.max_tokens, chat.temperature), (None, None));

        let mut job = GenerateRequest {
            role: JobRole::Preprocessor,
            ..GenerateRequest::chat(messages)
        };
        roles.apply(&mut job);
        assert_eq!(job.messages[0].content, "Summarise.");
        assert_eq!(job.messages[1].content, "hello");
        assert_eq!((job.max_tokens, job.temperature), (Some(99), None));

        roles.preprocessor.temperature = 0.7;
        let mut bare = GenerateRequest {
            role: JobRole::Preprocessor,
            ..GenerateRequest::chat(vec![ChatMessage::new(Role::User, "hi")])
        };
        roles.apply(&mut bare);
        assert_eq!(bare.messages[0].role, Role::System, "a system prompt leads");
        assert_eq!(bare.temperature, Some(0.7));

        // With an adapter, the minimal prompt is the one used (when there is one).
        roles.preprocessor.minimal_prompt = "Fold.".into();
        let mut job = GenerateRequest {
            role: JobRole::Preprocessor,
            ..GenerateRequest::chat(vec![ChatMessage::new(Role::User, "hi")])
        };
        roles.apply(&mut job);
        assert_eq!(job.messages[0].content, "Summarise.", "no adapter yet");
        roles.preprocessor.adapter = "fold.gguf".into();
        roles.apply(&mut job);
        assert_eq!(job.messages[0].content, "Fold.");
        roles.consciousness.adapter = "answer.gguf".into();
        assert_eq!(
            roles.answer_prompt("built in"),
            "Answer.",
            "no minimal prompt"
        );
        roles.consciousness.minimal_prompt = "Be Brick.".into();
        assert_eq!(roles.answer_prompt("built in"), "Be Brick.");
    }

    #[test]
    fn roles_parse_by_name_and_refuse_unknown_ones() {
        let roles: RolesConfig =
            toml::from_str("[preprocessor]\nmax_tokens = 120\n[pixie]\ntemperature = 0.3\n")
                .unwrap();
        assert_eq!(roles.preprocessor.max_tokens, 120);
        assert_eq!(roles.pixie.temperature, 0.3);
        assert!(toml::from_str::<RolesConfig>("[conscience]\nmax_tokens = 1\n").is_err());
        for role in JobRole::ALL {
            assert_eq!(JobRole::from_name(role.name()), Some(role));
        }
        assert_eq!(JobRole::from_name("conscience"), None);
        let mut hot = RolesConfig::default();
        hot.memory_writer.temperature = 9.0;
        assert!(hot
            .check()
            .unwrap_err()
            .contains("roles.memory_writer.temperature"));
    }
}
