//! The memory graph: what the hub knows about the household as nodes (Anna, Porto, the
//! boiler) with a domain, a parent, key-value attributes and a confidence.
//!
//! The language model proposes changes (see `crate::extract`), but it never writes: a
//! [`Proposal`] goes through [`plan`], which checks every operation and resolves the model's
//! temporary ids (`t1`) and shown ids (`n12`) to real node ids, and only a complete plan is
//! written, in one atomic sled batch. An invalid proposal is rejected whole.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::record::MemoryId;
use super::store::{MemoryError, MemoryStore};

/// A node's id; shown to the model as `n<id>`.
pub type NodeId = u64;

/// The most operations one proposal may carry.
pub const MAX_OPS: usize = 8;
/// The longest title, in characters.
pub const MAX_TITLE: usize = 80;
const MAX_KEY: usize = 40;
const MAX_VALUE: usize = 200;

/// What a node is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// A person.
    Person,
    /// A place: a city, a shop, a room.
    Place,
    /// An animal of the household.
    Pet,
    /// Health and body.
    Health,
    /// Work and study.
    Work,
    /// Pastimes.
    Hobby,
    /// The home and its things.
    Home,
    /// Food and drink.
    Food,
    /// Something that happens at a time.
    Event,
    /// A like or dislike.
    Preference,
    /// Anything else.
    Other,
}

impl Domain {
    /// Every domain, in the order the JSON schema lists them.
    pub const ALL: [Domain; 11] = [
        Domain::Person,
        Domain::Place,
        Domain::Pet,
        Domain::Health,
        Domain::Work,
        Domain::Hobby,
        Domain::Home,
        Domain::Food,
        Domain::Event,
        Domain::Preference,
        Domain::Other,
    ];

    /// The name used in JSON and prompts.
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Person => "person",
            Domain::Place => "place",
            Domain::Pet => "pet",
            Domain::Health => "health",
            Domain::Work => "work",
            Domain::Hobby => "hobby",
            Domain::Home => "home",
            Domain::Food => "food",
            Domain::Event => "event",
            Domain::Preference => "preference",
            Domain::Other => "other",
        }
    }

    fn parse(s: &str) -> Option<Domain> {
        Domain::ALL.into_iter().find(|d| d.as_str() == s.trim())
    }
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique id.
    pub id: NodeId,
    /// What it is called ("Anna", "Porto").
    pub title: String,
    /// What it is about.
    pub domain: Domain,
    /// The node it belongs under, if any.
    pub parent: Option<NodeId>,
    /// What is known about it ("relation" = "sister").
    pub attributes: BTreeMap<String, String>,
    /// How sure the hub is, in [0, 1].
    pub confidence: f32,
    /// The memories it was learnt from.
    pub sources: Vec<MemoryId>,
    /// When it was created, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
}

impl Node {
    /// One line for a prompt or a listing: `n12 | Anna | person | parent n3 | relation=sister`.
    pub fn line(&self) -> String {
        let mut line = format!("n{} | {} | {}", self.id, self.title, self.domain.as_str());
        if let Some(p) = self.parent {
            line.push_str(&format!(" | parent n{p}"));
        }
        if !self.attributes.is_empty() {
            let attrs: Vec<String> = self
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            line.push_str(" | ");
            line.push_str(&attrs.join("; "));
        }
        line
    }

    fn words(&self) -> HashSet<String> {
        let mut text = format!("{} {}", self.title, self.domain.as_str());
        for (k, v) in &self.attributes {
            text.push_str(&format!(" {k} {v}"));
        }
        words(&text)
    }
}

/// A key-value pair as the model writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Attribute {
    /// The key ("city").
    pub key: String,
    /// The value ("Porto").
    pub value: String,
}

/// One operation the model proposes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ProposedOp {
    /// A new node under a temporary id.
    Create {
        /// The temporary id, `t1`, `t2`...; other operations may name it as a parent.
        #[serde(rename = "ref")]
        temp: String,
        /// The title.
        title: String,
        /// One of [`Domain::ALL`].
        domain: String,
        /// `n<id>`, a temporary id, or empty for none.
        #[serde(default)]
        parent: String,
        /// What is known.
        #[serde(default)]
        attributes: Vec<Attribute>,
        /// How sure, in [0, 1].
        confidence: f32,
    },
    /// New or changed attributes of a node the model was shown.
    Update {
        /// `n<id>`.
        #[serde(rename = "ref")]
        id: String,
        /// Attributes to set.
        #[serde(default)]
        attributes: Vec<Attribute>,
        /// The new confidence.
        confidence: f32,
    },
}

/// What the model proposes for one batch of facts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Proposal {
    /// The operations, applied together or not at all.
    pub ops: Vec<ProposedOp>,
}

/// The JSON schema proposals must follow, for a model shown the nodes `shown`; the grammar
/// that constrains the model is made from it, so that the model can only write JSON of this
/// shape, and can only name nodes it was shown (no update at all when it was shown none).
pub fn proposal_schema(shown: &[NodeId]) -> serde_json::Value {
    let domains: Vec<&str> = Domain::ALL.iter().map(|d| d.as_str()).collect();
    let shown: Vec<String> = shown.iter().map(|id| format!("n{id}")).collect();
    let temps: Vec<String> = (1..=4).map(|t| format!("t{t}")).collect();
    let parents: Vec<String> = std::iter::once(String::new())
        .chain(shown.iter().cloned())
        .chain(temps.iter().cloned())
        .collect();
    let attributes = serde_json::json!({
        "type": "array",
        "maxItems": 4,
        "items": {
            "type": "object",
            "properties": {
                "key": {"type": "string", "minLength": 1, "maxLength": 24},
                "value": {"type": "string", "minLength": 1, "maxLength": 60}
            },
            "required": ["key", "value"],
            "additionalProperties": false
        }
    });
    let confidence = serde_json::json!({"type": "number", "minimum": 0, "maximum": 1});
    let create = serde_json::json!({
        "type": "object",
        "properties": {
            "op": {"const": "create"},
            "ref": {"enum": temps},
            "title": {"type": "string", "minLength": 1, "maxLength": 40},
            "domain": {"enum": domains},
            "parent": {"enum": parents},
            "attributes": attributes,
            "confidence": confidence
        },
        "required": ["op", "ref", "title", "domain", "parent", "attributes", "confidence"],
        "additionalProperties": false
    });
    let update = serde_json::json!({
        "type": "object",
        "properties": {
            "op": {"const": "update"},
            "ref": {"enum": shown},
            "attributes": attributes,
            "confidence": confidence
        },
        "required": ["op", "ref", "attributes", "confidence"],
        "additionalProperties": false
    });
    let item = if shown.is_empty() {
        create
    } else {
        serde_json::json!({"oneOf": [create, update]})
    };
    serde_json::json!({
        "type": "object",
        "properties": {
            "ops": {"type": "array", "maxItems": 4, "items": item}
        },
        "required": ["ops"],
        "additionalProperties": false
    })
}

/// Errors of the graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The proposal is invalid; nothing was written.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] MemoryError),
}

fn reject<T>(why: impl Into<String>) -> Result<T, GraphError> {
    Err(GraphError::Rejected(why.into()))
}

/// A checked proposal: the nodes to write, complete, with real ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Every node that is new or changed.
    pub writes: Vec<Node>,
    /// How many of them are new.
    pub created: usize,
    /// How many existed.
    pub updated: usize,
}

/// A reference the model wrote.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ref {
    None,
    Node(NodeId),
    Temp(u32),
}

fn parse_ref(s: &str) -> Option<Ref> {
    let s = s.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("null") {
        return Some(Ref::None);
    }
    let (kind, digits) = s.split_at(1);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match kind {
        "n" => digits.parse().ok().map(Ref::Node),
        "t" => digits.parse().ok().map(Ref::Temp),
        _ => None,
    }
}

fn clean_title(title: &str) -> Result<String, GraphError> {
    let t = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() {
        return reject("a node without a title");
    }
    if t.chars().count() > MAX_TITLE {
        return reject(format!("a title longer than {MAX_TITLE} characters"));
    }
    Ok(t)
}

fn clean_confidence(c: f32) -> Result<f32, GraphError> {
    if !(0.0..=1.0).contains(&c) {
        return reject(format!("confidence {c} is outside [0, 1]"));
    }
    Ok(c)
}

fn merge_attributes(
    into: &mut BTreeMap<String, String>,
    attrs: &[Attribute],
) -> Result<(), GraphError> {
    for a in attrs {
        let key: String = crate::words::words(&a.key).join("_");
        let value = a.value.split_whitespace().collect::<Vec<_>>().join(" ");
        if key.is_empty() || value.is_empty() {
            return reject(format!("an empty attribute {:?}={:?}", a.key, a.value));
        }
        if key.chars().count() > MAX_KEY || value.chars().count() > MAX_VALUE {
            return reject(format!("attribute {key} is too long"));
        }
        into.insert(key, value);
    }
    Ok(())
}

/// Checks a proposal against the nodes that exist and turns it into complete nodes.
///
/// Temporary ids must be unique; `n<id>` must name an existing node; a parent is an existing
/// node, a node created in the same proposal, or none, and parents never form a cycle. A
/// create that repeats an existing node (same title and domain, any case) becomes an update
/// of it. `alloc` gives real ids, and is called only once the whole proposal is valid.
pub fn plan(
    proposal: &Proposal,
    existing: &HashMap<NodeId, Node>,
    source: Option<MemoryId>,
    now_ms: u64,
    mut alloc: impl FnMut() -> Result<NodeId, MemoryError>,
) -> Result<Plan, GraphError> {
    if proposal.ops.len() > MAX_OPS {
        return reject(format!(
            "{} operations, more than {MAX_OPS}",
            proposal.ops.len()
        ));
    }
    let by_title: HashMap<(String, Domain), NodeId> = existing
        .values()
        .map(|n| ((n.title.to_lowercase(), n.domain), n.id))
        .collect();
    // Nodes to create, by temporary id, with their parent reference; and changed nodes.
    let mut creates: Vec<(u32, Node, Ref)> = Vec::new();
    let mut changed: BTreeMap<NodeId, Node> = BTreeMap::new();
    // A create that repeated an existing node: its temporary id stands for that node.
    let mut aliases: HashMap<u32, NodeId> = HashMap::new();
    // An existing node about to change: copied into `changed` once, stamped, credited.
    let touch = |changed: &mut BTreeMap<NodeId, Node>, id: NodeId| -> Result<(), GraphError> {
        let node = match changed.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => match existing.get(&id) {
                Some(node) => e.insert(node.clone()),
                None => return reject(format!("n{id} does not exist")),
            },
        };
        node.updated_at_ms = now_ms;
        if let Some(s) = source {
            if !node.sources.contains(&s) {
                node.sources.push(s);
            }
        }
        Ok(())
    };
    for op in &proposal.ops {
        match op {
            ProposedOp::Create {
                temp,
                title,
                domain,
                parent,
                attributes,
                confidence,
            } => {
                let Some(Ref::Temp(t)) = parse_ref(temp) else {
                    return reject(format!("{temp:?} is not a temporary id like t1"));
                };
                if creates.iter().any(|(other, ..)| *other == t) || aliases.contains_key(&t) {
                    return reject(format!("temporary id t{t} is used twice"));
                }
                let title = clean_title(title)?;
                let Some(domain) = Domain::parse(domain) else {
                    return reject(format!("unknown domain {domain:?}"));
                };
                let confidence = clean_confidence(*confidence)?;
                let Some(parent) = parse_ref(parent) else {
                    return reject(format!("parent {parent:?} is not n<id>, t<n> or empty"));
                };
                if parent == Ref::Temp(t) {
                    return reject(format!("t{t} is its own parent"));
                }
                if let Some(&id) = by_title.get(&(title.to_lowercase(), domain)) {
                    touch(&mut changed, id)?;
                    let node = changed.get_mut(&id).expect("touched");
                    merge_attributes(&mut node.attributes, attributes)?;
                    node.confidence = node.confidence.max(confidence);
                    aliases.insert(t, id);
                    continue;
                }
                if creates
                    .iter()
                    .any(|(_, n, _)| n.domain == domain && n.title.eq_ignore_ascii_case(&title))
                {
                    return reject(format!("{title:?} is created twice"));
                }
                let mut node = Node {
                    id: 0,
                    title,
                    domain,
                    parent: None,
                    attributes: BTreeMap::new(),
                    confidence,
                    sources: source.into_iter().collect(),
                    created_at_ms: now_ms,
                    updated_at_ms: now_ms,
                };
                merge_attributes(&mut node.attributes, attributes)?;
                creates.push((t, node, parent));
            }
            ProposedOp::Update {
                id,
                attributes,
                confidence,
            } => {
                let Some(Ref::Node(id)) = parse_ref(id) else {
                    return reject(format!("{id:?} is not a node id like n12"));
                };
                let confidence = clean_confidence(*confidence)?;
                touch(&mut changed, id)?;
                let node = changed.get_mut(&id).expect("touched");
                merge_attributes(&mut node.attributes, attributes)?;
                node.confidence = confidence;
            }
        }
    }
    // Parents: check every reference, then walk the temporary chains for cycles.
    let temp_parent: HashMap<u32, Ref> = creates.iter().map(|(t, _, p)| (*t, *p)).collect();
    for (t, _, parent) in &creates {
        match parent {
            Ref::None => {}
            Ref::Node(id) if existing.contains_key(id) => {}
            Ref::Node(id) => return reject(format!("parent n{id} does not exist")),
            Ref::Temp(p) if temp_parent.contains_key(p) || aliases.contains_key(p) => {}
            Ref::Temp(p) => return reject(format!("parent t{p} is never created")),
        }
        let mut at = *t;
        for _ in 0..=creates.len() {
            match temp_parent.get(&at) {
                Some(Ref::Temp(p)) if !aliases.contains_key(p) => at = *p,
                _ => break,
            }
            if at == *t {
                return reject(format!("t{t} is its own ancestor"));
            }
        }
    }
    // Valid: give the new nodes real ids and resolve their parents.
    let mut real: HashMap<u32, NodeId> = aliases;
    for (t, node, _) in &mut creates {
        node.id = alloc()?;
        real.insert(*t, node.id);
    }
    let mut plan = Plan {
        created: creates.len(),
        updated: changed.len(),
        ..Plan::default()
    };
    for (_, mut node, parent) in creates {
        node.parent = match parent {
            Ref::None => None,
            Ref::Node(id) => Some(id),
            Ref::Temp(p) => Some(real[&p]),
        };
        plan.writes.push(node);
    }
    plan.writes.extend(changed.into_values());
    Ok(plan)
}

/// The graph's nodes, in the memory store's database.
#[derive(Debug, Clone)]
pub struct Graph {
    store: MemoryStore,
    nodes: sled::Tree,
}

impl Graph {
    /// The graph in `store`.
    pub fn open(store: &MemoryStore) -> Result<Graph, MemoryError> {
        Ok(Graph {
            store: store.clone(),
            nodes: store.tree("graph")?,
        })
    }

    fn decode(&self, id: NodeId, bytes: &[u8]) -> Result<Node, MemoryError> {
        serde_json::from_slice(bytes).map_err(|e| MemoryError::Corrupt {
            path: "graph".into(),
            id,
            reason: e.to_string(),
        })
    }

    /// The node with this id.
    pub fn get(&self, id: NodeId) -> Result<Option<Node>, MemoryError> {
        match self
            .nodes
            .get(id.to_be_bytes())
            .map_err(|e| self.store.storage(e))?
        {
            Some(bytes) => Ok(Some(self.decode(id, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Every node, in id order.
    pub fn nodes(&self) -> Result<Vec<Node>, MemoryError> {
        self.nodes
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(|e| self.store.storage(e))?;
                let id = key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
                self.decode(id, &value)
            })
            .collect()
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The `k` nodes that share most words with `query`, best first.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Node>, MemoryError> {
        let q = words(query);
        let mut scored: Vec<(f32, Node)> = self
            .nodes()?
            .into_iter()
            .filter_map(|n| {
                let w = n.words();
                let shared = q.intersection(&w).count();
                (shared > 0).then(|| (shared as f32 / (w.len() as f32).sqrt(), n))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        Ok(scored.into_iter().take(k).map(|(_, n)| n).collect())
    }

    /// Checks `proposal` and writes it whole, in one atomic batch, or rejects it and writes
    /// nothing. Durable when this returns.
    pub fn write(
        &self,
        proposal: &Proposal,
        source: Option<MemoryId>,
        now_ms: u64,
    ) -> Result<Plan, GraphError> {
        let existing: HashMap<NodeId, Node> =
            self.nodes()?.into_iter().map(|n| (n.id, n)).collect();
        let plan = plan(proposal, &existing, source, now_ms, || self.store.next_id())?;
        let mut batch = sled::Batch::default();
        for node in &plan.writes {
            batch.insert(
                &node.id.to_be_bytes(),
                serde_json::to_vec(node).expect("nodes always serialize"),
            );
        }
        self.nodes
            .apply_batch(batch)
            .map_err(|e| self.store.storage(e))?;
        self.store.flush()?;
        Ok(plan)
    }

    /// Forgets memory `id` in the graph: nodes learnt only from it are deleted (their
    /// children move up to the deleted node's parent), other nodes just lose the source.
    /// Returns how many nodes were deleted. Durable when this returns.
    pub fn forget_source(&self, id: MemoryId) -> Result<usize, MemoryError> {
        let nodes = self.nodes()?;
        let doomed: HashMap<NodeId, Option<NodeId>> = nodes
            .iter()
            .filter(|n| n.sources == [id])
            .map(|n| (n.id, n.parent))
            .collect();
        let mut batch = sled::Batch::default();
        let mut dirty = false;
        for mut node in nodes {
            if doomed.contains_key(&node.id) {
                batch.remove(&node.id.to_be_bytes());
                dirty = true;
                continue;
            }
            let before = node.clone();
            node.sources.retain(|s| *s != id);
            // Skip over deleted ancestors (bounded: a chain cannot be longer than the graph).
            for _ in 0..doomed.len() {
                match node.parent.and_then(|p| doomed.get(&p)) {
                    Some(up) => node.parent = *up,
                    None => break,
                }
            }
            if node != before {
                batch.insert(
                    &node.id.to_be_bytes(),
                    serde_json::to_vec(&node).expect("nodes always serialize"),
                );
                dirty = true;
            }
        }
        if dirty {
            self.nodes
                .apply_batch(batch)
                .map_err(|e| self.store.storage(e))?;
            self.store.flush()?;
        }
        Ok(doomed.len())
    }

    /// Deletes every node ("forget everything"). Returns how many there were. Durable when
    /// this returns.
    pub fn clear(&self) -> Result<usize, MemoryError> {
        let n = self.nodes.len();
        self.nodes.clear().map_err(|e| self.store.storage(e))?;
        self.store.flush()?;
        Ok(n)
    }

    /// The graph as an indented tree, one node per line.
    pub fn render_tree(&self) -> Result<String, MemoryError> {
        let nodes = self.nodes()?;
        let ids: HashSet<NodeId> = nodes.iter().map(|n| n.id).collect();
        let mut children: BTreeMap<Option<NodeId>, Vec<&Node>> = BTreeMap::new();
        for n in &nodes {
            // A dangling parent shows the node at the top rather than hiding it.
            let parent = n.parent.filter(|p| ids.contains(p));
            children.entry(parent).or_default().push(n);
        }
        let mut out = String::new();
        let mut stack: Vec<(&Node, usize)> = children
            .get(&None)
            .map(|v| v.iter().rev().map(|n| (*n, 0)).collect())
            .unwrap_or_default();
        let mut seen = HashSet::new();
        while let Some((node, depth)) = stack.pop() {
            if !seen.insert(node.id) {
                continue;
            }
            out.push_str(&format!(
                "{}{} (confidence {:.2})\n",
                "  ".repeat(depth),
                node.line(),
                node.confidence
            ));
            if let Some(kids) = children.get(&Some(node.id)) {
                stack.extend(kids.iter().rev().map(|n| (*n, depth + 1)));
            }
        }
        Ok(out)
    }
}

/// Lower-case words of three letters or more, the way graph search compares texts.
fn words(text: &str) -> HashSet<String> {
    crate::words::words(text)
        .into_iter()
        .filter(|w| w.chars().count() >= 3)
        .collect()
}

/// Settings of graph extraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphConfig {
    /// Whether stored turns are extracted into the graph at all.
    pub enabled: bool,
    /// Turns below this salience are not extracted (they are still stored as memories).
    pub min_salience: f32,
    /// Search queries the model may write in phase 1.
    pub max_queries: usize,
    /// Graph nodes shown to the model in phase 2.
    pub nodes_shown: usize,
    /// The most tokens the model may write per phase.
    pub max_tokens: u32,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            enabled: true,
            min_salience: 0.3,
            max_queries: 3,
            nodes_shown: 8,
            max_tokens: 384,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal(json: &str) -> Proposal {
        serde_json::from_str(json).unwrap()
    }

    fn graph() -> Graph {
        Graph::open(&MemoryStore::temporary().unwrap()).unwrap()
    }

    #[test]
    fn a_valid_proposal_is_written_with_real_ids_and_parents() {
        let g = graph();
        let p = proposal(
            r#"{"ops":[
              {"op":"create","ref":"t1","title":"Family","domain":"person","parent":"","attributes":[],"confidence":0.9},
              {"op":"create","ref":"t2","title":"Anna","domain":"person","parent":"t1",
               "attributes":[{"key":"Relation","value":"sister"},{"key":"lives in","value":"Porto"}],"confidence":0.8}
            ]}"#,
        );
        let plan = g.write(&p, Some(7), 1000).unwrap();
        assert_eq!((plan.created, plan.updated), (2, 0));
        let nodes = g.nodes().unwrap();
        let family = nodes.iter().find(|n| n.title == "Family").unwrap();
        let anna = nodes.iter().find(|n| n.title == "Anna").unwrap();
        assert_eq!(anna.parent, Some(family.id));
        assert_eq!(anna.attributes["relation"], "sister");
        assert_eq!(anna.attributes["lives_in"], "Porto");
        assert_eq!(anna.sources, vec![7]);

        // An update of a shown node, and a create that repeats one, both land on it.
        let p = proposal(&format!(
            r#"{{"ops":[
              {{"op":"update","ref":"n{}","attributes":[{{"key":"lives_in","value":"Lisbon"}}],"confidence":0.7}},
              {{"op":"create","ref":"t1","title":"anna","domain":"person","parent":"","attributes":[{{"key":"job","value":"nurse"}}],"confidence":0.95}}
            ]}}"#,
            anna.id
        ));
        let plan = g.write(&p, Some(8), 2000).unwrap();
        assert_eq!((plan.created, plan.updated), (0, 1));
        let anna = g.get(anna.id).unwrap().unwrap();
        assert_eq!(anna.attributes["lives_in"], "Lisbon");
        assert_eq!(anna.attributes["job"], "nurse");
        assert_eq!(anna.sources, vec![7, 8]);
        assert_eq!(anna.confidence, 0.95);
        assert_eq!(g.len(), 2);
        assert!(g.render_tree().unwrap().contains("\n  n"));
        assert_eq!(g.search("where does anna live", 5).unwrap()[0].id, anna.id);
    }

    #[test]
    fn an_invalid_proposal_writes_nothing() {
        let g = graph();
        let bad = [
            r#"{"ops":[{"op":"create","ref":"t1","title":"A","domain":"person","parent":"","attributes":[],"confidence":0.5},
                       {"op":"update","ref":"n999","attributes":[],"confidence":0.5}]}"#,
            r#"{"ops":[{"op":"create","ref":"t1","title":"A","domain":"person","parent":"t2","attributes":[],"confidence":0.5},
                       {"op":"create","ref":"t2","title":"B","domain":"person","parent":"t1","attributes":[],"confidence":0.5}]}"#,
            r#"{"ops":[{"op":"create","ref":"t1","title":"A","domain":"person","parent":"t1","attributes":[],"confidence":0.5}]}"#,
            r#"{"ops":[{"op":"create","ref":"t1","title":"A","domain":"person","parent":"t3","attributes":[],"confidence":0.5}]}"#,
            r#"{"ops":[{"op":"create","ref":"t1","title":"A","domain":"person","parent":"","attributes":[],"confidence":0.5},
                       {"op":"create","ref":"t1","title":"B","domain":"person","parent":"","attributes":[],"confidence":0.5}]}"#,
            r#"{"ops":[{"op":"create","ref":"t1","title":"  ","domain":"person","parent":"","attributes":[],"confidence":0.5}]}"#,
            r#"{"ops":[{"op":"create","ref":"t1","title":"A","domain":"spaceship","parent":"","attributes":[],"confidence":0.5}]}"#,
            r#"{"ops":[{"op":"create","ref":"t1","title":"A","domain":"person","parent":"","attributes":[],"confidence":1.5}]}"#,
            r#"{"ops":[{"op":"create","ref":"x","title":"A","domain":"person","parent":"","attributes":[],"confidence":0.5}]}"#,
            r#"{"ops":[{"op":"create","ref":"t1","title":"A","domain":"person","parent":"","attributes":[{"key":"","value":"v"}],"confidence":0.5}]}"#,
            r#"{"ops":[{"op":"create","ref":"t1","title":"A","domain":"person","parent":"n5x","attributes":[],"confidence":0.5}]}"#,
        ];
        for json in bad {
            let err = g.write(&proposal(json), None, 1).unwrap_err();
            assert!(matches!(err, GraphError::Rejected(_)), "{json}: {err}");
            assert_eq!(g.len(), 0, "{json} left a node behind");
        }
    }

    #[test]
    fn forgetting_a_source_removes_what_only_it_taught() {
        let g = graph();
        let p = proposal(
            r#"{"ops":[
              {"op":"create","ref":"t1","title":"Anna","domain":"person","parent":"","attributes":[],"confidence":0.9},
              {"op":"create","ref":"t2","title":"Porto","domain":"place","parent":"t1","attributes":[],"confidence":0.8}
            ]}"#,
        );
        g.write(&p, Some(1), 1).unwrap();
        let porto = g.search("porto", 1).unwrap().remove(0);
        let again = format!(
            r#"{{"ops":[{{"op":"update","ref":"n{}","attributes":[],"confidence":0.9}}]}}"#,
            porto.id
        );
        g.write(&proposal(&again), Some(2), 2).unwrap();
        assert_eq!(g.forget_source(1).unwrap(), 1);
        let porto = g.get(porto.id).unwrap().unwrap();
        assert_eq!((porto.parent, porto.sources), (None, vec![2]));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn the_schema_names_every_domain() {
        let schema = proposal_schema(&[]).to_string();
        for d in Domain::ALL {
            assert!(schema.contains(&format!("\"{}\"", d.as_str())));
        }
        assert!(
            !schema.contains("update"),
            "nothing shown, nothing to update"
        );
        let schema = proposal_schema(&[3, 12]).to_string();
        assert!(schema.contains("\"n12\"") && schema.contains("update"));
    }
}
