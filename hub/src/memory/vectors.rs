//! The embedding index. [`VectorIndex`] is the seam; [`BruteForce`] is exact and, at 384
//! dimensions, fast enough for a household's memories (about 16 ms for 100k on one core,
//! measured in shared/MODELS.md). An ANN index can replace it behind the same trait.
//!
//! A memory may have several vectors (its passages): it scores as the best of them.
//!
//! Vectors are stored in sled beside their memories; the index lives in RAM and is loaded from
//! the store on open, so it can never be stale.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::record::MemoryId;

/// A nearest-neighbour index over L2-normalised vectors, scored by dot product (cosine). A
/// memory may have several vectors (one per passage, say): it scores as the best of them.
pub trait VectorIndex: Send + Sync {
    /// Adds or replaces the vectors of `id` (none removes it).
    fn set(&mut self, id: MemoryId, vectors: &[&[f32]]);
    /// Adds or replaces the one vector of `id`.
    fn upsert(&mut self, id: MemoryId, vector: &[f32]) {
        self.set(id, &[vector]);
    }
    /// Removes `id`; returns whether it was there.
    fn remove(&mut self, id: MemoryId) -> bool;
    /// The `k` most similar ids, best first.
    fn search(&self, query: &[f32], k: usize) -> Vec<(MemoryId, f32)>;
    /// How similar `id` is to `query` (the best of its vectors), if it is indexed.
    fn similarity(&self, id: MemoryId, query: &[f32]) -> Option<f32>;
    /// How many ids are indexed.
    fn len(&self) -> usize;
    /// Whether none are.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Exact search over contiguous arrays of vectors. The scan reads int8 copies (a quarter of
/// the memory traffic, which bounds it at 100k vectors); the best candidates are then
/// re-scored in f32, so results are those of an exact f32 search unless int8 rounding pushes
/// a true top-k id out of a candidate window of `4k + 32`.
#[derive(Debug, Default)]
pub struct BruteForce {
    dim: usize,
    /// Each row's owner: an index into `owners`.
    owner: Vec<u32>,
    data: Vec<f32>,
    quantised: Vec<i8>,
    /// Each indexed id with its rows.
    owners: Vec<(MemoryId, Vec<usize>)>,
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

    /// Whether `id` is indexed.
    pub fn contains(&self, id: MemoryId) -> bool {
        self.slot.contains_key(&id)
    }

    /// How many vectors are indexed, over all ids.
    pub fn rows(&self) -> usize {
        self.owner.len()
    }

    fn row(&self, row: usize) -> &[f32] {
        &self.data[row * self.dim..(row + 1) * self.dim]
    }

    /// Removes one row by moving the last row into its place.
    fn remove_row(&mut self, row: usize) {
        let (last, dim) = (self.owner.len() - 1, self.dim);
        if row != last {
            self.data
                .copy_within(last * dim..(last + 1) * dim, row * dim);
            self.quantised
                .copy_within(last * dim..(last + 1) * dim, row * dim);
            let moved = self.owner[last];
            self.owner[row] = moved;
            for r in &mut self.owners[moved as usize].1 {
                if *r == last {
                    *r = row;
                }
            }
        }
        self.owner.pop();
        self.data.truncate(last * dim);
        self.quantised.truncate(last * dim);
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
    fn set(&mut self, id: MemoryId, vectors: &[&[f32]]) {
        for v in vectors {
            assert_eq!(v.len(), self.dim, "vector dimension");
        }
        self.remove(id);
        if vectors.is_empty() {
            return;
        }
        let owner = self.owners.len();
        let first = self.owner.len();
        for v in vectors {
            self.owner.push(owner as u32);
            self.data.extend_from_slice(v);
            self.quantised.extend(v.iter().map(|x| quantise(*x)));
        }
        self.owners
            .push((id, (first..first + vectors.len()).collect()));
        self.slot.insert(id, owner);
    }

    fn remove(&mut self, id: MemoryId) -> bool {
        let Some(i) = self.slot.remove(&id) else {
            return false;
        };
        // Rows from the last, so that a moved row is never one still to remove.
        let mut rows = std::mem::take(&mut self.owners[i].1);
        rows.sort_unstable();
        for row in rows.into_iter().rev() {
            self.remove_row(row);
        }
        // Move the last owner into the hole.
        let last = self.owners.len() - 1;
        self.owners.swap_remove(i);
        if i != last {
            for &row in &self.owners[i].1 {
                self.owner[row] = i as u32;
            }
            self.slot.insert(self.owners[i].0, i);
        }
        true
    }

    fn search(&self, query: &[f32], k: usize) -> Vec<(MemoryId, f32)> {
        if k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        // Pass 1: the int8 scan keeps each owner's best row, then a window of owners.
        let window = k * 4 + 32;
        let q8: Vec<i8> = query.iter().map(|x| quantise(*x)).collect();
        let mut best = vec![i32::MIN; self.owners.len()];
        for (q, &owner) in self.quantised.chunks_exact(self.dim).zip(&self.owner) {
            let b = &mut best[owner as usize];
            *b = (*b).max(dot_i8(q, &q8));
        }
        let mut heap = BinaryHeap::with_capacity(window + 1);
        for (owner, score) in best.into_iter().enumerate() {
            let item = Scored(score as f32, owner as u64);
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
            .map(|Scored(_, owner)| {
                let (id, rows) = &self.owners[owner as usize];
                let score = rows
                    .iter()
                    .map(|&r| dot(self.row(r), query))
                    .fold(f32::MIN, f32::max);
                (*id, score)
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }

    fn similarity(&self, id: MemoryId, query: &[f32]) -> Option<f32> {
        if query.len() != self.dim {
            return None;
        }
        let (_, rows) = &self.owners[*self.slot.get(&id)?];
        rows.iter()
            .map(|&r| dot(self.row(r), query))
            .reduce(f32::max)
    }

    fn len(&self) -> usize {
        self.owners.len()
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

    /// The obvious implementation: score everything, keep each id's best, sort.
    fn naive(
        vectors: &HashMap<MemoryId, Vec<Vec<f32>>>,
        q: &[f32],
        k: usize,
    ) -> Vec<(MemoryId, f32)> {
        let mut all: Vec<(MemoryId, f32)> = vectors
            .iter()
            .map(|(&id, vs)| {
                let best = vs
                    .iter()
                    .map(|v| v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>())
                    .fold(f32::MIN, f32::max);
                (id, best)
            })
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    proptest! {
        #[test]
        fn agrees_with_a_naive_search(
            ops in proptest::collection::vec(
                (0u64..40, proptest::collection::vec(proptest::collection::vec(-1.0f32..1.0, 8), 1..4), any::<bool>()),
                1..120,
            ),
            query in proptest::collection::vec(-1.0f32..1.0, 8),
            k in 0usize..12,
        ) {
            let mut index = BruteForce::new(8);
            let mut model: HashMap<MemoryId, Vec<Vec<f32>>> = HashMap::new();
            for (id, vs, remove) in ops {
                if remove {
                    prop_assert_eq!(index.remove(id), model.remove(&id).is_some());
                } else {
                    let vs: Vec<Vec<f32>> = vs.into_iter().map(normalised).collect();
                    let rows: Vec<&[f32]> = vs.iter().map(Vec::as_slice).collect();
                    index.set(id, &rows);
                    model.insert(id, vs);
                }
                prop_assert_eq!(index.len(), model.len());
                prop_assert_eq!(index.rows(), model.values().map(Vec::len).sum::<usize>());
            }
            let q = normalised(query);
            let got = index.search(&q, k);
            let want = naive(&model, &q, k);
            prop_assert_eq!(got.len(), want.len());
            for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                prop_assert_eq!(gi, wi);
                prop_assert!((gs - ws).abs() < 1e-5);
            }
            for (id, _) in &want {
                let s = index.similarity(*id, &q).expect("indexed");
                prop_assert!((s - naive(&HashMap::from([(*id, model[id].clone())]), &q, 1)[0].1).abs() < 1e-5);
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
            model.insert(id, vec![v]);
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
        assert_eq!(index.similarity(1, &[1.0, 0.0]), None);
        assert_eq!(index.similarity(2, &[1.0, 0.0, 0.0]), None);
    }
}
