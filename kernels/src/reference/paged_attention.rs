//! References of decode attention over the paged KV cache (the contract's layout): blocks of
//! [`BLOCK_TOKENS`] tokens, a block table per sequence (token `t` lives in block
//! `table[t / 16]`, row `t % 16`).
//!
//! - MHA pools: K and V, each `[num_blocks, kv_heads, 16, head_dim]`.
//! - MLA pools: latent `[num_blocks, 16, kv_lora_rank]` and rope key
//!   `[num_blocks, 16, qk_rope_head_dim]`.
//!
//! One query token per sequence (a decode step), already written to the cache: sequence `b`
//! attends over its `context_lens[b]` tokens. Scores, softmax and the weighted sum are f32;
//! the output is rounded once.

use super::Elem;

/// Tokens per cache block.
pub const BLOCK_TOKENS: usize = 16;

/// Flat index of `(token slot, head, dim)` in a pool `[blocks, heads, 16, dim]`, where
/// `slot = block * 16 + row`.
pub fn pool_index(slot: usize, head: usize, heads: usize, d: usize, dim: usize) -> usize {
    let (block, row) = (slot / BLOCK_TOKENS, slot % BLOCK_TOKENS);
    ((block * heads + head) * BLOCK_TOKENS + row) * dim + d
}

/// Slot of token `t` of a sequence with block table `table`.
pub fn slot_of(table: &[u32], t: usize) -> usize {
    table[t / BLOCK_TOKENS] as usize * BLOCK_TOKENS + t % BLOCK_TOKENS
}

/// Writes `rows` `[tokens, heads, dim]` into `pool` `[blocks, heads, 16, dim]` at `slots`
/// (`block * 16 + row` per token). MLA pools are the `heads = 1` case.
pub fn write_rows<T: Copy>(pool: &mut [T], rows: &[T], slots: &[u32], heads: usize, dim: usize) {
    assert_eq!(rows.len(), slots.len() * heads * dim, "write_rows: rows shape");
    for (t, &slot) in slots.iter().enumerate() {
        for h in 0..heads {
            let src = (t * heads + h) * dim;
            let dst = pool_index(slot as usize, h, heads, 0, dim);
            pool[dst..dst + dim].copy_from_slice(&rows[src..src + dim]);
        }
    }
}

/// Softmax-weighted sum over `n` scored items: returns `sum_i p_i * value(i, d)` for each `d`.
fn attend(scores: &[f32], dim: usize, value: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    (0..dim).map(|d| e.iter().enumerate().map(|(i, p)| p * value(i, d)).sum::<f32>() / sum).collect()
}

/// Shapes of an MHA decode call.
#[derive(Debug, Clone, Copy)]
pub struct MhaShape {
    /// Query heads.
    pub heads: usize,
    /// KV heads (query head `h` reads KV head `h / (heads / kv_heads)`).
    pub kv_heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// Width of a block-table row.
    pub max_blocks: usize,
}

/// MHA decode: `q` `[seqs, heads, head_dim]` -> `[seqs, heads, head_dim]`, scores scaled by
/// `scale`.
#[allow(clippy::too_many_arguments)]
pub fn paged_mha<T: Elem>(
    q: &[T],
    k_pool: &[T],
    v_pool: &[T],
    tables: &[u32],
    context_lens: &[u32],
    s: MhaShape,
    scale: f32,
) -> Vec<T> {
    let (h_n, kvh, dim) = (s.heads, s.kv_heads, s.head_dim);
    assert!(kvh > 0 && h_n % kvh == 0, "paged_mha: {h_n} heads over {kvh} KV heads");
    let rep = h_n / kvh;
    let mut out = Vec::with_capacity(q.len());
    for (b, &len) in context_lens.iter().enumerate() {
        let table = &tables[b * s.max_blocks..(b + 1) * s.max_blocks];
        for h in 0..h_n {
            let g = h / rep;
            let qv = &q[(b * h_n + h) * dim..(b * h_n + h + 1) * dim];
            let scores: Vec<f32> = (0..len as usize)
                .map(|t| {
                    let base = pool_index(slot_of(table, t), g, kvh, 0, dim);
                    qv.iter().zip(&k_pool[base..base + dim]).map(|(a, b)| a.to_f32() * b.to_f32()).sum::<f32>() * scale
                })
                .collect();
            let o = attend(&scores, dim, |t, d| v_pool[pool_index(slot_of(table, t), g, kvh, d, dim)].to_f32());
            out.extend(o.into_iter().map(T::from_f32));
        }
    }
    out
}

/// Shapes of an MLA decode call.
#[derive(Debug, Clone, Copy)]
pub struct MlaShape {
    /// Query heads.
    pub heads: usize,
    /// `kv_lora_rank`.
    pub rank: usize,
    /// `qk_rope_head_dim`.
    pub rope_dim: usize,
    /// Width of a block-table row.
    pub max_blocks: usize,
}

/// MLA decode with absorbed projections: per head, `score_t = (q_abs . c_t + q_pe . kpe_t) *
/// scale` over the latent cache, and the output is `sum_t p_t c_t` `[seqs, heads, rank]`
/// (the value up-projection is applied after, by a matmul).
#[allow(clippy::too_many_arguments)]
pub fn paged_mla<T: Elem>(
    q_abs: &[T],
    q_pe: &[T],
    latent_pool: &[T],
    kpe_pool: &[T],
    tables: &[u32],
    context_lens: &[u32],
    s: MlaShape,
    scale: f32,
) -> Vec<T> {
    let (h_n, rank, rd) = (s.heads, s.rank, s.rope_dim);
    let mut out = Vec::with_capacity(q_abs.len());
    for (b, &len) in context_lens.iter().enumerate() {
        let table = &tables[b * s.max_blocks..(b + 1) * s.max_blocks];
        for h in 0..h_n {
            let qa = &q_abs[(b * h_n + h) * rank..(b * h_n + h + 1) * rank];
            let qp = &q_pe[(b * h_n + h) * rd..(b * h_n + h + 1) * rd];
            let scores: Vec<f32> = (0..len as usize)
                .map(|t| {
                    let slot = slot_of(table, t);
                    let c = &latent_pool[slot * rank..(slot + 1) * rank];
                    let kp = &kpe_pool[slot * rd..(slot + 1) * rd];
                    let nope: f32 = qa.iter().zip(c).map(|(a, b)| a.to_f32() * b.to_f32()).sum();
                    let pe: f32 = qp.iter().zip(kp).map(|(a, b)| a.to_f32() * b.to_f32()).sum();
                    (nope + pe) * scale
                })
                .collect();
            let o = attend(&scores, rank, |t, d| latent_pool[slot_of(table, t) * rank + d].to_f32());
            out.extend(o.into_iter().map(T::from_f32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_layout_matches_the_contract() {
        // [blocks=3, heads=2, 16, dim=4]: slot 17 = block 1, row 1.
        assert_eq!(pool_index(17, 1, 2, 3, 4), ((2 + 1) * 16 + 1) * 4 + 3);
        assert_eq!(slot_of(&[5, 2], 17), 2 * 16 + 1);
    }

    #[test]
    fn one_token_context_returns_its_value() {
        let s = MhaShape { heads: 2, kv_heads: 1, head_dim: 2, max_blocks: 1 };
        let mut k = vec![0f32; 16 * 2];
        let mut v = vec![0f32; 16 * 2];
        write_rows(&mut k, &[1.0, 1.0], &[3], 1, 2);
        write_rows(&mut v, &[7.0, -2.0], &[3], 1, 2);
        // Block table [0]: token 0 is slot 0, so put the row at slot 0 as well.
        write_rows(&mut k, &[1.0, 1.0], &[0], 1, 2);
        write_rows(&mut v, &[7.0, -2.0], &[0], 1, 2);
        let out = paged_mha(&[1.0f32, 0.0, 0.0, 1.0], &k, &v, &[0], &[1], s, 0.5);
        assert_eq!(out, vec![7.0, -2.0, 7.0, -2.0]);
    }

    #[test]
    fn equal_scores_average_the_values() {
        let s = MlaShape { heads: 1, rank: 2, rope_dim: 2, max_blocks: 2 };
        let mut lat = vec![0f32; 2 * 16 * 2];
        let kpe = vec![0f32; 2 * 16 * 2];
        // Sequence of 17 tokens over blocks [1, 0]; q_abs = 0 so every score is 0.
        let table = [1u32, 0];
        for t in 0..17 {
            let slot = slot_of(&table, t) as u32;
            write_rows(&mut lat, &[t as f32, 1.0], &[slot], 1, 2);
        }
        let out = paged_mla(&[0.0f32, 0.0], &[0.0, 0.0], &lat, &kpe, &table, &[17], s, 1.0);
        assert!((out[0] - 8.0).abs() < 1e-5 && (out[1] - 1.0).abs() < 1e-6, "{out:?}");
    }
}
