//! Paged decode attention on the CPU: the semantics of [`crate::reference::attention`]
//! (same layout, same argument checks), fast.
//!
//! Work is split over (query row, group of heads that share one KV head); each task reads a
//! key row once for all of its heads, converts it to f32 once (bf16/f16 pools), and keeps
//! the scores of its heads in a scratch buffer: two passes (scores + max, then exp-sum and
//! the weighted value sum), all in f32. Dot products accumulate in 8 independent lanes so
//! the compiler vectorises them; the summation order therefore differs from the reference's
//! plain loop by rounding only. Tasks run on rayon's pool.

use rayon::prelude::*;

use crate::reference::attention::{check, Chunk, Element, PagedKv, Values, BLOCK_SIZE};

/// Most query heads one task handles (they share the key rows they read).
const MAX_HEADS_PER_TASK: usize = 4;

/// Lanes of the dot-product accumulator.
const LANES: usize = 8;

/// `sum(a[i] * b[i])` over equal-length f32 slices, in [`LANES`] partial sums.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ac, ar) = a.split_at(a.len() / LANES * LANES);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(LANES).zip(bc.chunks_exact(LANES)) {
        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// `dst[i] += w * src[i]`.
#[inline(always)]
fn axpy(dst: &mut [f32], w: f32, src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += w * s;
    }
}

/// Copies `src` widened to f32 into `dst`.
#[inline(always)]
fn widen<T: Element>(dst: &mut [f32], src: &[T]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// Heads per task: the largest divisor of `rep` up to [`MAX_HEADS_PER_TASK`].
fn heads_per_task(rep: usize) -> usize {
    (1..=MAX_HEADS_PER_TASK.min(rep)).rev().find(|d| rep.is_multiple_of(*d)).unwrap_or(1)
}

/// Paged attention of `q` `[rows, heads, key_dim]` over `kv` (see the reference for the exact
/// semantics); returns `[rows, heads, dim_v]` in f32, or why the arguments are inconsistent.
pub fn paged_attention<T: Element>(
    q: &[T],
    kv: &PagedKv<T>,
    chunks: &[Chunk],
    heads: usize,
    scale: f32,
) -> Result<Vec<f32>, String> {
    let rows = check(q, kv, chunks, heads)?;
    let mut out = vec![0f32; rows * heads * kv.dim_v];
    // (chunk, position) of every query row.
    let row_meta: Vec<(usize, usize)> =
        chunks.iter().enumerate().flat_map(|(ci, c)| (0..c.rows).map(move |i| (ci, c.start + i))).collect();
    let rep = heads / kv.kv_heads;
    let per = heads_per_task(rep);
    let tasks_per_row = heads / per;
    out.par_chunks_mut(per * kv.dim_v).enumerate().for_each(|(task, dst)| {
        let (row, h0) = (task / tasks_per_row, (task % tasks_per_row) * per);
        let (ci, pos) = row_meta[row];
        let table = chunks[ci].block_table;
        let g = h0 / rep;
        let kd = kv.key_dim();
        let mut queries = vec![0f32; per * kd];
        widen(&mut queries, &q[(row * heads + h0) * kd..(row * heads + h0 + per) * kd]);
        let ctx = pos + 1;
        let mut scores = vec![0f32; per * ctx];
        let mut key = vec![0f32; kd];
        let mut max = vec![f32::NEG_INFINITY; per];
        for t in 0..ctx {
            let (b, r) = (table[t / BLOCK_SIZE], t % BLOCK_SIZE);
            let a = kv.offset(b, g, r, kv.dim_a);
            widen(&mut key[..kv.dim_a], &kv.key_a[a..a + kv.dim_a]);
            if kv.dim_b > 0 {
                let o = kv.offset(b, g, r, kv.dim_b);
                widen(&mut key[kv.dim_a..], &kv.key_b[o..o + kv.dim_b]);
            }
            for (j, (query, m)) in queries.chunks_exact(kd).zip(max.iter_mut()).enumerate() {
                let s = dot(query, &key) * scale;
                scores[j * ctx + t] = s;
                *m = m.max(s);
            }
        }
        for (row_scores, m) in scores.chunks_exact_mut(ctx).zip(&max) {
            let mut sum = 0f32;
            for s in row_scores.iter_mut() {
                *s = (*s - m).exp();
                sum += *s;
            }
            let inv = 1.0 / sum;
            row_scores.iter_mut().for_each(|s| *s *= inv);
        }
        let mut value = vec![0f32; kv.dim_v];
        for t in 0..ctx {
            let (b, r) = (table[t / BLOCK_SIZE], t % BLOCK_SIZE);
            match kv.values {
                Values::Pool(v) => {
                    let o = kv.offset(b, g, r, kv.dim_v);
                    widen(&mut value, &v[o..o + kv.dim_v]);
                }
                Values::KeyPartA => {
                    let o = kv.offset(b, g, r, kv.dim_a);
                    widen(&mut value, &kv.key_a[o..o + kv.dim_a]);
                }
            }
            for (j, out) in dst.chunks_exact_mut(kv.dim_v).enumerate() {
                axpy(out, scores[j * ctx + t], &value);
            }
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::attention as reference;

    /// A deterministic pseudo-random value in [-1, 1).
    fn noise(i: usize, seed: u64) -> f32 {
        let mut z = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
        z = (z ^ (z >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 29;
        (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn filled(n: usize, seed: u64) -> Vec<f32> {
        (0..n).map(|i| noise(i, seed)).collect()
    }

    /// Block tables that interleave the sequences' blocks in the pool (as an allocator would).
    fn tables(lens: &[usize], blocks: usize) -> Vec<Vec<u32>> {
        let mut next = (0..blocks as u32).rev().collect::<Vec<_>>();
        let need: Vec<usize> = lens.iter().map(|l| l.div_ceil(BLOCK_SIZE)).collect();
        let mut out = vec![Vec::new(); lens.len()];
        for round in 0..need.iter().copied().max().unwrap_or(0) {
            for (s, n) in need.iter().enumerate() {
                if round < *n {
                    out[s].push(next.pop().expect("enough blocks"));
                }
            }
        }
        out
    }

    fn max_rel_err(got: &[f32], want: &[f32]) -> f32 {
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
    }

    struct Case {
        heads: usize,
        kv_heads: usize,
        mla: bool,
        /// (start, rows) per chunk.
        chunks: Vec<(usize, usize)>,
    }

    fn run_case(case: &Case, seed: u64) -> (Vec<f32>, Vec<f32>, usize) {
        let (dim_a, dim_b) = if case.mla { (24, 8) } else { (32, 0) };
        let lens: Vec<usize> = case.chunks.iter().map(|(s, r)| s + r).collect();
        let blocks = lens.iter().map(|l| l.div_ceil(BLOCK_SIZE)).sum::<usize>() + 3;
        let tables = tables(&lens, blocks);
        let kvh = if case.mla { 1 } else { case.kv_heads };
        let key_a = filled(blocks * kvh * BLOCK_SIZE * dim_a, seed);
        let key_b = filled(blocks * kvh * BLOCK_SIZE * dim_b, seed + 1);
        let values = filled(blocks * kvh * BLOCK_SIZE * dim_a, seed + 2);
        let rows: usize = case.chunks.iter().map(|c| c.1).sum();
        let q = filled(rows * case.heads * (dim_a + dim_b), seed + 3);
        let kv = if case.mla {
            PagedKv::mla(&key_a[..], &key_b[..], dim_a, dim_b)
        } else {
            PagedKv::mha(&key_a[..], &values[..], kvh, dim_a)
        };
        let chunks: Vec<Chunk> =
            case.chunks.iter().zip(&tables).map(|(&(start, rows), t)| Chunk { block_table: t, start, rows }).collect();
        let scale = 0.3;
        let want = reference::paged_attention(&q, &kv, &chunks, case.heads, scale);
        let got = paged_attention(&q, &kv, &chunks, case.heads, scale).unwrap();
        // The same inputs rounded to bf16, against the reference on the rounded values.
        let qb: Vec<half::bf16> = q.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let ab: Vec<half::bf16> = key_a.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let bb: Vec<half::bf16> = key_b.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let vb: Vec<half::bf16> = values.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let kvb = if case.mla {
            PagedKv::mla(&ab[..], &bb[..], dim_a, dim_b)
        } else {
            PagedKv::mha(&ab[..], &vb[..], kvh, dim_a)
        };
        let want_b = reference::paged_attention(&qb, &kvb, &chunks, case.heads, scale);
        let got_b = paged_attention(&qb, &kvb, &chunks, case.heads, scale).unwrap();
        assert!(max_rel_err(&got_b, &want_b) < 1e-5, "bf16 pools differ from the reference");
        (got, want, rows)
    }

    #[test]
    fn matches_the_reference_on_ragged_chunks() {
        let cases = [
            // One decode row per sequence, lengths across block boundaries.
            Case { heads: 4, kv_heads: 4, mla: false, chunks: vec![(0, 1), (15, 1), (16, 1), (40, 1)] },
            // GQA: 8 query heads over 2 KV heads; a prefill chunk between decode rows.
            Case { heads: 8, kv_heads: 2, mla: false, chunks: vec![(5, 1), (32, 7), (0, 20), (63, 1)] },
            // MLA: one latent head shared by every query head.
            Case { heads: 6, kv_heads: 1, mla: true, chunks: vec![(0, 3), (17, 1), (30, 18)] },
        ];
        for (i, case) in cases.iter().enumerate() {
            let (got, want, rows) = run_case(case, 11 + i as u64);
            assert_eq!(got.len(), rows * case.heads * if case.mla { 24 } else { 32 });
            let err = max_rel_err(&got, &want);
            assert!(err < 1e-5, "case {i}: relative error {err}");
        }
    }

    #[test]
    fn a_row_sees_only_its_own_sequence_and_the_past() {
        // Two sequences over one pool: changing a key after a row's position, or in the other
        // sequence's blocks, must not change that row's output.
        let (heads, dim) = (2, 16);
        let blocks = 4;
        let mut k = filled(blocks * heads * BLOCK_SIZE * dim, 5);
        let v = filled(blocks * heads * BLOCK_SIZE * dim, 6);
        let q = filled(2 * heads * dim, 7);
        let (t0, t1) = (vec![2u32], vec![0u32, 3]);
        let chunks = [Chunk { block_table: &t0, start: 4, rows: 1 }, Chunk { block_table: &t1, start: 20, rows: 1 }];
        let before = paged_attention(&q, &PagedKv::mha(&k[..], &v[..], heads, dim), &chunks, heads, 1.0).unwrap();
        // Position 5 of sequence 0 (after its row at 4) and block 1 (nobody's).
        let (o, o2, o3) = {
            let kv0 = PagedKv::mha(&k[..], &v[..], heads, dim);
            (kv0.offset(2, 0, 5, dim), kv0.offset(1, 1, 3, dim), kv0.offset(0, 1, 7, dim))
        };
        k[o] += 10.0;
        k[o2] -= 10.0;
        let after = paged_attention(&q, &PagedKv::mha(&k[..], &v[..], heads, dim), &chunks, heads, 1.0).unwrap();
        assert_eq!(before, after);
        // A key the row does see changes its output.
        k[o3] += 10.0;
        let seen = paged_attention(&q, &PagedKv::mha(&k[..], &v[..], heads, dim), &chunks, heads, 1.0).unwrap();
        assert_ne!(&before[heads * dim..], &seen[heads * dim..]);
    }

    #[test]
    fn refuses_inconsistent_arguments() {
        let k = vec![0f32; BLOCK_SIZE * 8];
        let kv = PagedKv::mha(&k[..], &k[..], 1, 8);
        let table = [0u32];
        let q = vec![0f32; 8];
        // 17 tokens do not fit one block.
        let long = [Chunk { block_table: &table, start: 16, rows: 1 }];
        assert!(paged_attention(&q, &kv, &long, 1, 1.0).is_err());
        // Block 1 is outside a one-block pool.
        let far = [1u32];
        assert!(paged_attention(&q, &kv, &[Chunk { block_table: &far, start: 0, rows: 1 }], 1, 1.0).is_err());
        // Three heads do not group over two KV heads.
        let kv2 = PagedKv::mha(&k[..], &k[..], 2, 4);
        assert!(paged_attention(&q, &kv2, &[Chunk { block_table: &table, start: 0, rows: 1 }], 3, 1.0).is_err());
    }
}
