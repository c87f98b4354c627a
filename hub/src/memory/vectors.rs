//! The embedding index. [`VectorIndex`] is the seam; [`BruteForce`] is exact and, at 384
//! dimensions, fast enough for a household's memories (about 16 ms for 100k on one core,
//! measured in shared/MODELS.md). An ANN index can replace it behind the same trait.
//!
//! Vectors are stored in sled beside their memories; the index lives in RAM and is loaded from
//! the store on open, so it can never be stale.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::record::MemoryId;

/// A nearest-neighbour index over L2-normalised vectors, scored by dot product (cosine).
pub trait VectorIndex: Send + Sync {
    /// Adds or replaces the vector of `id`.
    fn upsert(&mut self, id: MemoryId, vector: &[f32]);
    /// Removes `id`; returns whether it was there.
    fn remove(&mut self, id: MemoryId) -> bool;
    /// The `k` most similar ids, best first.
    fn search(&self, query: &[f32], k: usize) -> Vec<(MemoryId, f32)>;
    /// How many vectors are indexed.
    fn len(&self) -> usize;
    /// Whether none are.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Exact search over contiguous arrays of vectors. The scan reads int8 copies (a quarter of
/// the memory traffic, which bounds it at 100k vectors); the best candidates are then
/// re-scored in f32, so results are those of an exact f32 search unless int8 rounding pushes
/// a true top-k vector out of a candidate window of `4k + 32`.
#[derive(Debug, Default)]
pub struct BruteForce {
    dim: usize,
    ids: Vec<MemoryId>,
    data: Vec<f32>,
    quantised: Vec<i8>,
    slot: HashMap<MemoryId, usize>,
}

fn quantise(x: f32) -> i8 {
    (x.clamp(-1.0, 1.0) * 127.0).round() as i8
}

impl BruteForce {
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize) -> BruteForce {
        BruteForce {
            dim,
            ..BruteForce::default()
        }
    }

    /// The vector length.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

/// Dot product with eight independent accumulators: a plain `sum()` must add in order and
/// cannot be vectorised; this form compiles to SIMD (AVX2 with target-cpu=native).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Integer dot product of quantised vectors, vectorisable like [`dot`].
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// A scored id ordered so that the heap's top is the worst kept score.
#[derive(PartialEq)]
struct Scored(f32, MemoryId);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: lower scores are "greater", so the max-heap pops the worst first. Ties go
        // to the smaller id, for deterministic results.
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl VectorIndex for BruteForce {
    fn upsert(&mut self, id: MemoryId, vector: &[f32]) {
        assert_eq!(vector.len(), self.dim, "vector dimension");
        match self.slot.get(&id) {
            Some(&i) => {
                self.data[i * self.dim..(i + 1) * self.dim].copy_from_slice(vector);
                for (q, x) in self.quantised[i * self.dim..(i + 1) * self.dim]
                    .iter_mut()
                    .zip(vector)
                {
                    *q = quantise(*x);
                }
            }
            None => {
                self.slot.insert(id, self.ids.len());
                self.ids.push(id);
                self.data.extend_from_slice(vector);
                self.quantised.extend(vector.iter().map(|x| quantise(*x)));
            }
        }
    }

    fn remove(&mut self, id: MemoryId) -> bool {
        let Some(i) = self.slot.remove(&id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        if i != last {
            // Move the last vector into the hole.
            self.ids[i] = self.ids[last];
            self.slot.insert(self.ids[i], i);
            let (head, tail) = self.data.split_at_mut(last * self.dim);
            head[i * self.dim..(i + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
            let (head, tail) = self.quantised.split_at_mut(last * self.dim);
            head[i * self.dim..(i + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
        }
        self.ids.pop();
        self.data.truncate(last * self.dim);
        self.quantised.truncate(last * self.dim);
        true
    }

    fn search(&self, query: &[f32], k: usize) -> Vec<(MemoryId, f32)> {
        if k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        // Pass 1: the int8 scan keeps a window of candidates (row numbers).
        let window = k * 4 + 32;
        let q8: Vec<i8> = query.iter().map(|x| quantise(*x)).collect();
        let mut heap = BinaryHeap::with_capacity(window + 1);
        for (row, q) in self.quantised.chunks_exact(self.dim).enumerate() {
            let score = dot_i8(q, &q8) as f32;
            let item = Scored(score, row as u64);
            if heap.len() < window {
                heap.push(item);
            } else if let Some(worst) = heap.peek() {
                if item < *worst {
                    heap.pop();
                    heap.push(item);
                }
            }
        }
        // Pass 2: exact f32 scores for the window.
        let mut out: Vec<(MemoryId, f32)> = heap
            .into_iter()
            .map(|Scored(_, row)| {
                let row = row as usize;
                let v = &self.data[row * self.dim..(row + 1) * self.dim];
                (self.ids[row], dot(v, query))
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn normalised(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.into_iter().map(|x| x / n).collect()
    }

    /// The obvious implementation: score everything, sort.
    fn naive(vectors: &HashMap<MemoryId, Vec<f32>>, q: &[f32], k: usize) -> Vec<(MemoryId, f32)> {
        let mut all: Vec<(MemoryId, f32)> = vectors
            .iter()
            .map(|(&id, v)| (id, v.iter().zip(q).map(|(a, b)| a * b).sum()))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    proptest! {
        #[test]
        fn agrees_with_a_naive_search(
            ops in proptest::collection::vec((0u64..40, proptest::collection::vec(-1.0f32..1.0, 8), any::<bool>()), 1..120),
            query in proptest::collection::vec(-1.0f32..1.0, 8),
            k in 0usize..12,
        ) {
            let mut index = BruteForce::new(8);
            let mut model: HashMap<MemoryId, Vec<f32>> = HashMap::new();
            for (id, v, remove) in ops {
                if remove {
                    prop_assert_eq!(index.remove(id), model.remove(&id).is_some());
                } else {
                    let v = normalised(v);
                    index.upsert(id, &v);
                    model.insert(id, v);
                }
                prop_assert_eq!(index.len(), model.len());
            }
            let q = normalised(query);
            let got = index.search(&q, k);
            let want = naive(&model, &q, k);
            prop_assert_eq!(got.len(), want.len());
            for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                prop_assert_eq!(gi, wi);
                prop_assert!((gs - ws).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn int8_preselection_returns_the_exact_top_k_on_a_large_set() {
        // 3000 vectors of 384 dimensions, a candidate window of 72: the int8 scan must not
        // lose any of the true top 10.
        let mut seed: u64 = 7;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let mut index = BruteForce::new(384);
        let mut model = HashMap::new();
        for id in 0..3000 {
            let v = normalised((0..384).map(|_| next()).collect());
            index.upsert(id, &v);
            model.insert(id, v);
        }
        for _ in 0..20 {
            let q = normalised((0..384).map(|_| next()).collect());
            let got: Vec<MemoryId> = index.search(&q, 10).iter().map(|h| h.0).collect();
            let want: Vec<MemoryId> = naive(&model, &q, 10).iter().map(|h| h.0).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_wrong_sized_query_finds_nothing() {
        let mut index = BruteForce::new(3);
        index.upsert(1, &[1.0, 0.0, 0.0]);
        assert!(index.search(&[1.0, 0.0], 5).is_empty());
        assert_eq!(index.search(&[1.0, 0.0, 0.0], 5), vec![(1, 1.0)]);
    }
}
