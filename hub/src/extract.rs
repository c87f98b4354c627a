//! The three-phase memory-graph write, run after a reply as background LLM work:
//!
//! 1. the model turns the new facts into a few search queries (JSON, grammar-constrained);
//! 2. code searches the graph with them, and the model sees the facts beside the nodes found
//!    and proposes create/update operations with temporary ids (JSON, grammar-constrained);
//! 3. code checks the operations and resolves the ids ([`crate::memory::graph::plan`]), and
//!    writes them all in one batch, or rejects them all with a log line.
//!
//! The grammar guarantees the shape of the JSON, not its sense: phase 3 is where a weak
//! model's nonsense (a parent that does not exist, a confidence of 7) is caught.

use std::sync::Arc;

use serde::Deserialize;

use crate::llm::{
    json_schema_grammar, ChatMessage, GenerateRequest, Grammar, JobRole, LlmError, LlmHandle, Role,
};
use crate::memory::graph::{proposal_schema, GraphError, Node, Plan, Proposal};
use crate::memory::rolelog::Signal;
use crate::memory::{Memories, MemoryId};

pub use crate::memory::graph::GraphConfig;

/// What one extraction did, phase by phase.
#[derive(Debug, Clone)]
pub struct Extraction {
    /// Phase 1's queries (the facts themselves when the model's were unusable).
    pub queries: Vec<String>,
    /// The nodes shown to the model in phase 2.
    pub shown: Vec<Node>,
    /// The model's raw phase 2 output.
    pub raw: String,
    /// Whether phase 2 stopped at the token limit.
    pub truncated: bool,
    /// The plan written, or why the proposal was rejected (nothing written).
    pub outcome: Result<Plan, String>,
}

const QUERY_SYSTEM: &str = "You help maintain a knowledge graph about a household. \
    Given facts the user told, write short search queries (names, places, things) that find \
    what the graph may already know about them. Reply with JSON only.";

const PROPOSE_SYSTEM: &str = "You maintain a knowledge graph about a household. Given new \
    facts and the existing nodes, reply with JSON operations. Use {\"op\":\"create\"} with \
    ref t1, t2, ... for something new, and {\"op\":\"update\"} with the ref n<number> of an \
    existing node to add or change attributes. parent is the ref of the node it belongs \
    under, or \"\". domain is one of person, place, pet, health, work, hobby, home, food, \
    event, preference, other. confidence is between 0 and 1. Example for \"My sister Anna \
    lives in Porto\": {\"ops\":[{\"op\":\"create\",\"ref\":\"t1\",\"title\":\"Anna\",\
    \"domain\":\"person\",\"parent\":\"\",\"attributes\":[{\"key\":\"relation\",\"value\":\"sister\"},\
    {\"key\":\"lives_in\",\"value\":\"Porto\"}],\"confidence\":0.9}]}";

#[derive(Deserialize)]
struct Queries {
    queries: Vec<String>,
}

fn queries_schema(max: usize) -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "queries": {
                "type": "array",
                "minItems": 1,
                "maxItems": max.max(1),
                "items": {"type": "string", "minLength": 1, "maxLength": 40}
            }
        },
        "required": ["queries"],
        "additionalProperties": false
    })
}

/// Writes facts into the memory graph through the language model.
#[derive(Clone)]
pub struct GraphWriter {
    llm: LlmHandle,
    memories: Arc<Memories>,
    config: GraphConfig,
    query_grammar: Grammar,
}

impl std::fmt::Debug for GraphWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphWriter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GraphWriter {
    /// A writer over `memories`' graph; fails if llama.cpp cannot build the query grammar.
    pub fn new(
        llm: LlmHandle,
        memories: Arc<Memories>,
        config: GraphConfig,
    ) -> Result<GraphWriter, LlmError> {
        Ok(GraphWriter {
            query_grammar: json_schema_grammar(&queries_schema(config.max_queries))?,
            llm,
            memories,
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    /// The model's answer, whether it hit the token limit, and the messages it was given.
    async fn ask(
        &self,
        system: &str,
        user: String,
        grammar: &Grammar,
    ) -> Result<(String, bool, Vec<ChatMessage>), LlmError> {
        let request = GenerateRequest::structured(
            JobRole::MemoryWriter,
            vec![
                ChatMessage::new(Role::System, system),
                ChatMessage::new(Role::User, user),
            ],
            grammar.clone(),
            self.config.max_tokens,
        );
        let given = self.llm.given(&request);
        let (_, stats) = self.llm.complete(request).await?;
        Ok((stats.text, stats.truncated, given))
    }

    /// Runs the three phases for `facts`, learnt from memory `source`. An `Err` means the
    /// model could not run; a rejected proposal is an `Ok` with `outcome: Err`.
    pub async fn write(
        &self,
        facts: &[String],
        source: Option<MemoryId>,
        now_ms: u64,
    ) -> Result<Extraction, LlmError> {
        let listed: String = facts.iter().map(|f| format!("- {f}\n")).collect();
        let generation = self.memories.role_log().generation();

        // Phase 1: search queries.
        let (raw, _, _) = self
            .ask(
                QUERY_SYSTEM,
                format!(
                    "Facts:\n{listed}Write at most {} search queries.",
                    self.config.max_queries
                ),
                &self.query_grammar,
            )
            .await?;
        let mut queries: Vec<String> = serde_json::from_str::<Queries>(&raw)
            .map(|q| q.queries)
            .unwrap_or_default()
            .into_iter()
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty())
            .take(self.config.max_queries)
            .collect();
        if queries.is_empty() {
            tracing::debug!(%raw, "unusable search queries; searching with the facts");
            queries = facts.to_vec();
        }

        // Code searches the graph.
        let (memories, qs, k) = (
            Arc::clone(&self.memories),
            queries.clone(),
            self.config.nodes_shown,
        );
        let shown = tokio::task::spawn_blocking(move || {
            let mut shown: Vec<Node> = Vec::new();
            for q in &qs {
                for node in memories.graph().search(q, k)? {
                    if shown.len() < k && !shown.iter().any(|n| n.id == node.id) {
                        shown.push(node);
                    }
                }
            }
            Ok::<_, crate::memory::MemoryError>(shown)
        })
        .await
        .map_err(|e| LlmError::Inference(format!("graph search panicked: {e}")))?
        .map_err(|e| LlmError::Inference(format!("graph search failed: {e}")))?;

        // Phase 2: proposed operations, under a grammar that names only the nodes shown.
        let ids: Vec<_> = shown.iter().map(|n| n.id).collect();
        let grammar = json_schema_grammar(&proposal_schema(&ids))?;
        let nodes: String = if shown.is_empty() {
            "(none)\n".to_string()
        } else {
            shown.iter().map(|n| format!("{}\n", n.line())).collect()
        };
        let propose = format!("New facts:\n{listed}Existing nodes:\n{nodes}Operations:");
        let (raw, truncated, messages) = self.ask(PROPOSE_SYSTEM, propose, &grammar).await?;

        // Phase 3: code checks and writes, or rejects.
        let outcome = match serde_json::from_str::<Proposal>(&raw) {
            Err(e) if truncated => Err(format!("the output hit the token limit: {e}")),
            Err(e) => Err(format!("the output is not a proposal: {e}")),
            Ok(proposal) => {
                let memories = Arc::clone(&self.memories);
                tokio::task::spawn_blocking(move || {
                    memories.graph().write(&proposal, source, now_ms)
                })
                .await
                .map_err(|e| LlmError::Inference(format!("graph write panicked: {e}")))?
                .map_err(|e| match e {
                    GraphError::Rejected(why) => why,
                    GraphError::Store(e) => format!("the store failed: {e}"),
                })
            }
        };
        // The proposal, and whether the code took it, for the memory writer's role log.
        let signal = if outcome.is_ok() {
            Signal::Accepted
        } else {
            Signal::Rejected
        };
        let (memories, logged) = (Arc::clone(&self.memories), raw.clone());
        let now = now_ms;
        let log = tokio::task::spawn_blocking(move || {
            memories.role_log().record(
                JobRole::MemoryWriter,
                "",
                None,
                &messages,
                &logged,
                &[signal],
                now,
                generation,
            )
        })
        .await;
        if let Ok(Err(e)) = log {
            tracing::warn!(error = %e, "cannot write the role log");
        }
        match &outcome {
            Ok(plan) => tracing::info!(
                memory = ?source,
                created = plan.created,
                updated = plan.updated,
                "memory graph updated"
            ),
            Err(why) => {
                tracing::warn!(memory = ?source, %why, "memory graph proposal rejected; nothing written");
                tracing::debug!(memory = ?source, %raw, "the rejected proposal");
            }
        }
        Ok(Extraction {
            queries,
            shown,
            raw,
            truncated,
            outcome,
        })
    }
}
