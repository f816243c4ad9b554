//! References of the MoE dispatch: token-expert pairs sorted by expert (with the M-tiles of a
//! grouped GEMM over the sorted rows), the grouped GEMM itself (bf16/f32 or FP8 weights, f32
//! accumulation), and the weighted un-permutation back to token order.
//!
//! A *pair* `p = token * k + j` is the `j`-th choice of `token`. Sorting pairs by expert gives
//! *sorted rows*; each expert's rows are cut into tiles of [`TILE_M`] rows, and a GEMM launch
//! runs one block row per tile, so every active expert is computed in one launch.

use super::fp8::{e4m3_to_f32, FP8_BLOCK};
use super::Elem;

/// Rows per M-tile of the grouped GEMM (the CUDA kernel's `TILE_M`).
pub const TILE_M: usize = 32;

/// Where every pair goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// `[experts + 1]`: expert `e`'s sorted rows are `offsets[e]..offsets[e + 1]`.
    pub offsets: Vec<u32>,
    /// `[pairs]`: the pair at each sorted row (in pair order within an expert here; the
    /// kernel may order rows within an expert differently).
    pub sorted_pair: Vec<u32>,
    /// `[pairs]`: the sorted row of each pair (inverse of `sorted_pair`).
    pub inv: Vec<u32>,
    /// `[max_tiles]`: expert of each M-tile, `-1` past the last tile.
    pub tile_expert: Vec<i32>,
    /// `[max_tiles]`: first sorted row of each M-tile (0 past the last tile).
    pub tile_start: Vec<u32>,
}

/// Upper bound of the number of M-tiles (the grid height of the grouped GEMM), known without
/// reading the routing: every expert adds at most one partial tile.
pub fn max_tiles(pairs: usize, experts: usize) -> usize {
    pairs.div_ceil(TILE_M) + experts
}

/// Sorts the pairs of `expert_ids` `[tokens * k]` by expert and cuts the M-tiles.
pub fn permute(expert_ids: &[u32], experts: usize) -> Dispatch {
    let pairs = expert_ids.len();
    let mut counts = vec![0u32; experts];
    for &e in expert_ids {
        assert!((e as usize) < experts, "permute: expert {e} of {experts}");
        counts[e as usize] += 1;
    }
    let mut offsets = vec![0u32; experts + 1];
    for e in 0..experts {
        offsets[e + 1] = offsets[e] + counts[e];
    }
    let mut cursor = offsets[..experts].to_vec();
    let mut sorted_pair = vec![0u32; pairs];
    let mut inv = vec![0u32; pairs];
    for (p, &e) in expert_ids.iter().enumerate() {
        let row = cursor[e as usize];
        cursor[e as usize] += 1;
        sorted_pair[row as usize] = p as u32;
        inv[p] = row;
    }
    let mt = max_tiles(pairs, experts);
    let mut tile_expert = vec![-1i32; mt];
    let mut tile_start = vec![0u32; mt];
    let mut t = 0;
    for e in 0..experts {
        let mut r = offsets[e];
        while r < offsets[e + 1] {
            tile_expert[t] = e as i32;
            tile_start[t] = r;
            t += 1;
            r += TILE_M as u32;
        }
    }
    Dispatch { offsets, sorted_pair, inv, tile_expert, tile_start }
}

/// Weights of all experts, `[experts, n, k]` row-major (`y = x W^T` per expert).
#[derive(Debug, Clone, Copy)]
pub enum ExpertWeights<'a, T> {
    /// Plain values.
    Dense(&'a [T]),
    /// FP8 e4m3 codes with one f32 scale per `FP8_BLOCK x FP8_BLOCK` block:
    /// `scales` is `[experts, ceil(n / 128), ceil(k / 128)]`.
    Fp8 {
        /// `[experts, n, k]` e4m3 codes.
        codes: &'a [u8],
        /// Per-block scales.
        scales: &'a [f32],
    },
}

impl<T: Elem> ExpertWeights<'_, T> {
    /// Value of `W[e, row, col]` for a matrix of `n x k`.
    pub fn get(&self, e: usize, row: usize, col: usize, n: usize, k: usize) -> f32 {
        let i = (e * n + row) * k + col;
        match self {
            ExpertWeights::Dense(w) => w[i].to_f32(),
            ExpertWeights::Fp8 { codes, scales } => {
                let (nb, kb) = (n.div_ceil(FP8_BLOCK), k.div_ceil(FP8_BLOCK));
                e4m3_to_f32(codes[i]) * scales[(e * nb + row / FP8_BLOCK) * kb + col / FP8_BLOCK]
            }
        }
    }
}

/// Grouped GEMM: output row `r` is `x[gather[r]] . W[expert_of[r]]^T` (f32 accumulation in
/// `k` order), `[gather.len(), n]` in f32.
pub fn grouped_gemm<T: Elem, W: Elem>(
    x: &[T],
    k: usize,
    gather: &[u32],
    expert_of: &[u32],
    w: ExpertWeights<'_, W>,
    n: usize,
) -> Vec<f32> {
    assert_eq!(gather.len(), expert_of.len(), "grouped_gemm: one expert per row");
    let mut y = vec![0f32; gather.len() * n];
    for (r, (&src, &e)) in gather.iter().zip(expert_of).enumerate() {
        let xr = &x[src as usize * k..(src as usize + 1) * k];
        for col in 0..n {
            let mut acc = 0f32;
            for (i, xv) in xr.iter().enumerate() {
                acc += xv.to_f32() * w.get(e as usize, col, i, n, k);
            }
            y[r * n + col] = acc;
        }
    }
    y
}

/// Expert of each sorted row, from the segment offsets.
pub fn expert_of_rows(offsets: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(*offsets.last().unwrap_or(&0) as usize);
    for e in 0..offsets.len().saturating_sub(1) {
        out.extend(std::iter::repeat_n(e as u32, (offsets[e + 1] - offsets[e]) as usize));
    }
    out
}

/// `out[t] = sum_j weights[t*k + j] * y[inv[t*k + j]]` over `j` ascending, in f32, rounded
/// once to `T`: `[tokens, n]`.
pub fn unpermute<T: Elem>(y: &[f32], n: usize, inv: &[u32], weights: &[f32], k: usize) -> Vec<T> {
    assert_eq!(inv.len(), weights.len(), "unpermute: one weight per pair");
    assert!(k > 0 && inv.len().is_multiple_of(k), "unpermute: pairs are not tokens of {k}");
    let tokens = inv.len() / k;
    let mut out = Vec::with_capacity(tokens * n);
    for t in 0..tokens {
        for col in 0..n {
            let mut acc = 0f32;
            for j in 0..k {
                let p = t * k + j;
                acc += weights[p] * y[inv[p] as usize * n + col];
            }
            out.push(T::from_f32(acc));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_groups_pairs_and_cuts_tiles() {
        // 3 tokens, k = 2, 4 experts; expert 2 gets 3 pairs, expert 3 none.
        let ids = [2, 0, 2, 1, 0, 2];
        let d = permute(&ids, 4);
        assert_eq!(d.offsets, vec![0, 2, 3, 6, 6]);
        assert_eq!(d.sorted_pair, vec![1, 4, 3, 0, 2, 5]);
        for (p, &r) in d.inv.iter().enumerate() {
            assert_eq!(d.sorted_pair[r as usize], p as u32);
        }
        assert_eq!(d.tile_expert.len(), max_tiles(6, 4));
        assert_eq!(&d.tile_expert[..4], &[0, 1, 2, -1]);
        assert_eq!(&d.tile_start[..3], &[0, 2, 3]);
        assert_eq!(expert_of_rows(&d.offsets), vec![0, 0, 1, 2, 2, 2]);
    }

    #[test]
    fn long_segments_take_several_tiles() {
        let ids = vec![1u32; TILE_M * 2 + 3];
        let d = permute(&ids, 2);
        assert_eq!(&d.tile_expert[..4], &[1, 1, 1, -1]);
        assert_eq!(&d.tile_start[..3], &[0, TILE_M as u32, 2 * TILE_M as u32]);
    }

    #[test]
    fn gemm_and_unpermute_compose_to_the_dense_moe() {
        // 2 tokens, k = 2, 2 experts of 2x2: expert 0 = identity, expert 1 = 2 * identity.
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let w = [1.0f32, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 2.0];
        let ids = [0u32, 1, 1, 0];
        let weights = [0.5f32, 0.25, 1.0, 0.125];
        let d = permute(&ids, 2);
        let gather: Vec<u32> = d.sorted_pair.iter().map(|p| p / 2).collect();
        let y = grouped_gemm(&x, 2, &gather, &expert_of_rows(&d.offsets), ExpertWeights::Dense(&w), 2);
        let out: Vec<f32> = unpermute(&y, 2, &d.inv, &weights, 2);
        // token 0: 0.5 * x0 + 0.25 * 2 x0 = x0; token 1: 1.0 * 2 x1 + 0.125 * x1 = 2.125 x1.
        assert_eq!(out, vec![1.0, 2.0, 3.0 * 2.125, 4.0 * 2.125]);
    }
}
