//! LoRA adapters on the one base model. A role's adapter (`roles.<name>.adapter`) is checked
//! against the model at start, so that a wrong file is an error naming it and the key to
//! change, not an abort inside llama.cpp; it is loaded once and set for each of that role's
//! jobs by the engine, which keeps a KV prefix per adapter (see `engine.rs`).

use std::path::{Path, PathBuf};

use super::gguf::{self, GgufSummary};
use super::{JobRole, LlmError, RolesConfig};

/// Which adapters the roles and personas run with: each file once, and each (file, scale) a
/// variant whose KV prefix is its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Plan {
    /// The adapter files, each loaded once, with the first setting that names it (for
    /// errors: "roles.pixie.adapter", "persona Brick's adapter").
    pub files: Vec<(PathBuf, String)>,
    /// (index into `files`, scale).
    pub variants: Vec<(usize, f32)>,
    /// Each role's variant, by [`JobRole::index`]; `None`: the base weights.
    pub by_role: [Option<usize>; 5],
    /// Each persona's variant, for its answers, by persona name.
    pub by_persona: Vec<(String, usize)>,
}

impl Plan {
    /// The plan `[roles.<name>]` asks for.
    pub fn from_roles(roles: &RolesConfig) -> Plan {
        let mut plan = Plan::default();
        for (role, c) in roles.all() {
            if c.has_adapter() {
                let setting = format!("roles.{role}.adapter");
                plan.by_role[role.index()] = Some(plan.add(&c.adapter, c.adapter_scale, setting));
            }
        }
        plan
    }

    /// This plan with each persona's adapter, as (name, file, scale), for its answers.
    pub fn with_personas(mut self, personas: &[(String, PathBuf, f32)]) -> Plan {
        for (name, path, scale) in personas {
            let variant = self.add(path, *scale, format!("persona {name}'s adapter"));
            self.by_persona.push((name.clone(), variant));
        }
        self
    }

    /// The variant of `path` at `scale`, added when it is new.
    fn add(&mut self, path: &Path, scale: f32, setting: String) -> usize {
        let file = match self.files.iter().position(|(p, _)| p == path) {
            Some(i) => i,
            None => {
                self.files.push((path.to_path_buf(), setting));
                self.files.len() - 1
            }
        };
        let wanted = (file, scale);
        match self.variants.iter().position(|v| *v == wanted) {
            Some(i) => i,
            None => {
                self.variants.push(wanted);
                self.variants.len() - 1
            }
        }
    }

    /// The variant `role`'s jobs run with.
    pub fn variant(&self, role: JobRole) -> Option<usize> {
        self.by_role[role.index()]
    }

    /// The variant a job of `role` runs with for `persona`: a persona's own adapter, for its
    /// answers, goes before the role's.
    pub fn variant_for(&self, role: JobRole, persona: Option<&str>) -> Option<usize> {
        let own = persona
            .filter(|_| role == JobRole::Consciousness)
            .and_then(|name| self.by_persona.iter().find(|(n, _)| n == name))
            .map(|(_, v)| *v);
        own.or(self.variant(role))
    }
}

/// Checks that the file at `path` (named by `setting`) is a LoRA adapter for the model
/// `base` describes: a GGUF of `general.type` adapter and `adapter.type` lora, of the model's
/// architecture, whose every tensor pair fits a tensor of the model. These are the checks
/// llama.cpp makes as it loads one (and answers only with a log line); making them first
/// gives the reason.
pub(crate) fn check(path: &Path, setting: &str, base: &GgufSummary) -> Result<(), LlmError> {
    let refuse = |reason: String| LlmError::Adapter {
        setting: setting.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    let file = gguf::validate(path).map_err(|e| refuse(e.to_string()))?;
    if file.file_type.as_deref() != Some("adapter") || file.adapter_type.as_deref() != Some("lora")
    {
        return Err(refuse(format!(
            "it is not a LoRA adapter (general.type {:?}, adapter.type {:?})",
            file.file_type, file.adapter_type
        )));
    }
    if file.architecture != base.architecture {
        return Err(refuse(format!(
            "it was made for architecture {:?} and the model is {:?}",
            file.architecture, base.architecture
        )));
    }
    let shape = |name: &str| {
        file.shapes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, dims)| dims.as_slice())
    };
    let mut pairs = 0;
    for (name, a) in &file.shapes {
        let Some(target) = name.strip_suffix(".lora_a") else {
            let paired = name
                .strip_suffix(".lora_b")
                .is_some_and(|t| shape(&format!("{t}.lora_a")).is_some());
            if paired || name.ends_with("_norm.weight") {
                continue;
            }
            return Err(refuse(format!(
                "tensor {name} is neither half of a LoRA pair"
            )));
        };
        let b = shape(&format!("{target}.lora_b"))
            .ok_or_else(|| refuse(format!("{target} has lora_a and no lora_b")))?;
        let w = base
            .shapes
            .iter()
            .find(|(n, _)| n == target)
            .map(|(_, dims)| dims.as_slice())
            .ok_or_else(|| refuse(format!("the model has no tensor {target}")))?;
        // A is [n_in, rank] and B [rank, n_out] in ggml order, for a weight of [n_in, n_out];
        // the token embedding's pair is flipped (llama.cpp looks rows up in B).
        let fits = a.len() == 2
            && b.len() == 2
            && w.len() >= 2
            && if target.ends_with("token_embd.weight") {
                w[0] == b[1] && w[1] == a[1]
            } else {
                a[0] == w[0] && b[1] == w[1] && a[1] == b[0]
            };
        if !fits {
            return Err(refuse(format!(
                "{target} is {w:?} in the model, and its lora_a {a:?} and lora_b {b:?} do not fit it (an adapter for another model?)"
            )));
        }
        pairs += 1;
    }
    if pairs == 0 {
        return Err(refuse("it holds no LoRA tensor pairs".into()));
    }
    Ok(())
}

/// A LoRA adapter of random values for the model at `model`, on the query and value
/// projections of every block: `rank` wide, each value uniform in ±`strength`, the same for
/// the same `seed`. It teaches nothing; it is what benchmarks and tests load, since what an
/// adapter costs and how its KV prefix is kept do not depend on its values.
pub fn random_adapter(
    model: &Path,
    rank: u64,
    seed: u64,
    strength: f32,
) -> Result<Vec<u8>, gguf::GgufError> {
    let base = gguf::validate(model)?;
    let mut rng = SplitMix64::new(seed);
    let mut tensors = Vec::new();
    for (name, dims) in &base.shapes {
        let targeted = name.ends_with(".attn_q.weight") || name.ends_with(".attn_v.weight");
        if !targeted || dims.len() != 2 {
            continue;
        }
        let (n_in, n_out) = (dims[0], dims[1]);
        for (half, shape) in [("lora_a", [n_in, rank]), ("lora_b", [rank, n_out])] {
            tensors.push(gguf::AdapterTensor {
                name: format!("{name}.{half}"),
                dims: shape.to_vec(),
                data: (0..shape[0] * shape[1])
                    .map(|_| rng.uniform(strength))
                    .collect(),
            });
        }
    }
    let architecture = base.architecture.unwrap_or_default();
    Ok(gguf::adapter_bytes(&architecture, rank as f32, &tensors))
}

/// SplitMix64: a small, seedable generator, for adapters' initial values and the order of
/// training examples, the same on every machine for the same seed.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-bound, bound)`.
    pub fn uniform(&mut self, bound: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * bound
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_sharing_a_file_load_it_once() {
        let mut roles = RolesConfig::default();
        roles.consciousness.adapter = "a.gguf".into();
        roles.pixie.adapter = "a.gguf".into();
        roles.memory_writer.adapter = "a.gguf".into();
        roles.memory_writer.adapter_scale = 0.5;
        let plan = Plan::from_roles(&roles);
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.variants, vec![(0, 1.0), (0, 0.5)]);
        assert_eq!(plan.variant(JobRole::Consciousness), Some(0));
        assert_eq!(plan.variant(JobRole::Pixie), Some(0));
        assert_eq!(plan.variant(JobRole::MemoryWriter), Some(1));
        assert_eq!(plan.variant(JobRole::Preprocessor), None);
        // A persona's adapter goes before the role's, for its answers only.
        let plan = plan.with_personas(&[
            ("Brick".into(), "b.gguf".into(), 1.0),
            ("Nova".into(), "a.gguf".into(), 0.5),
        ]);
        assert_eq!(plan.files.len(), 2);
        assert_eq!(plan.files[1].1, "persona Brick's adapter");
        let answer = |persona| plan.variant_for(JobRole::Consciousness, persona);
        assert_eq!(
            (answer(Some("Brick")), answer(Some("Nova"))),
            (Some(2), Some(1))
        );
        assert_eq!((answer(Some("Bob")), answer(None)), (Some(0), Some(0)));
        assert_eq!(plan.variant_for(JobRole::Pixie, Some("Brick")), Some(0));
    }

    /// The test model: a written adapter reads back as one, fits the model, and an adapter
    /// made for another model, or a plain model file, is refused with the setting's name.
    #[test]
    fn an_adapter_is_checked_against_the_model() {
        let model = hearth_tests::smollm2();
        let base = gguf::validate(&model).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.gguf");
        std::fs::write(&good, random_adapter(&model, 4, 7, 0.05).unwrap()).unwrap();
        let read = gguf::validate(&good).unwrap();
        assert_eq!(read.file_type.as_deref(), Some("adapter"));
        assert_eq!(read.shapes.len(), 30 * 2 * 2);
        check(&good, "roles.consciousness.adapter", &base).unwrap();

        let gemma = gguf::validate(&hearth_tests::model("gemma-3-270m-q4_k_m.gguf")).unwrap();
        let err = check(&good, "roles.pixie.adapter", &gemma)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("roles.pixie.adapter") && err.contains("architecture"),
            "{err}"
        );

        let mut narrow = base.clone();
        for (_, dims) in &mut narrow.shapes {
            dims[0] /= 2;
        }
        let err = check(&good, "roles.consciousness.adapter", &narrow)
            .unwrap_err()
            .to_string();
        assert!(err.contains("do not fit"), "{err}");

        let err = check(&model, "roles.consciousness.adapter", &base)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a LoRA adapter"), "{err}");
        let cut = dir.path().join("cut.gguf");
        let bytes = std::fs::read(&good).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = check(&cut, "roles.consciousness.adapter", &base)
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
