//! Plain paged attention: the obviously-correct version the CPU kernel
//! ([`crate::cpu::attention`]) is tested against.
//!
//! Layout (the team contract's paged KV cache): tokens live in blocks of [`BLOCK_SIZE`]; a
//! sequence's block table maps token `t` to block `table[t / BLOCK_SIZE]`, row
//! `t % BLOCK_SIZE`. A pool is `[num_blocks, kv_heads, BLOCK_SIZE, dim]` (MLA pools have one
//! head: `[num_blocks, BLOCK_SIZE, dim]` is the same memory).
//!
//! Semantics: query row `i` of a chunk sits at position `start + i` and attends to keys
//! `0..=start + i` of its sequence (causal). Query head `h` reads KV head
//! `h / (heads / kv_heads)` (GQA). Keys are the concatenation of part A and part B (MLA: the
//! latent and the rotary key; MHA has no part B); values are their own pool or, for MLA, the
//! latent itself. Scores, softmax and the weighted sum are computed in f32.

/// Tokens per KV block.
pub const BLOCK_SIZE: usize = 16;

/// A number format the kernels read (computation is always in f32).
pub trait Element: Copy + Send + Sync + 'static {
    /// Widens to f32.
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for half::bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
}

impl Element for half::f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}

/// Where the values are.
#[derive(Debug, Clone, Copy)]
pub enum Values<'a, T> {
    /// A pool of their own, `[num_blocks, kv_heads, BLOCK_SIZE, dim]` (MHA).
    Pool(&'a [T]),
    /// Key part A doubles as the value (MLA: the latent).
    KeyPartA,
}

/// The paged key/value pools of one layer.
#[derive(Debug, Clone, Copy)]
pub struct PagedKv<'a, T> {
    /// Key part A, `[num_blocks, kv_heads, BLOCK_SIZE, dim_a]`.
    pub key_a: &'a [T],
    /// Width of key part A.
    pub dim_a: usize,
    /// Key part B, `[num_blocks, kv_heads, BLOCK_SIZE, dim_b]` (empty when `dim_b == 0`).
    pub key_b: &'a [T],
    /// Width of key part B (0: none).
    pub dim_b: usize,
    /// The values.
    pub values: Values<'a, T>,
    /// Width of a value row.
    pub dim_v: usize,
    /// Heads of the pools.
    pub kv_heads: usize,
}

impl<'a, T> PagedKv<'a, T> {
    /// MHA pools: K and V `[num_blocks, kv_heads, BLOCK_SIZE, head_dim]`.
    pub fn mha(k: &'a [T], v: &'a [T], kv_heads: usize, head_dim: usize) -> Self {
        PagedKv { key_a: k, dim_a: head_dim, key_b: &[], dim_b: 0, values: Values::Pool(v), dim_v: head_dim, kv_heads }
    }

    /// MLA pools: latent `[num_blocks, BLOCK_SIZE, rank]` (key part A and value) and rotary key
    /// `[num_blocks, BLOCK_SIZE, rope_dim]` (key part B).
    pub fn mla(latent: &'a [T], rope: &'a [T], rank: usize, rope_dim: usize) -> Self {
        PagedKv {
            key_a: latent,
            dim_a: rank,
            key_b: rope,
            dim_b: rope_dim,
            values: Values::KeyPartA,
            dim_v: rank,
            kv_heads: 1,
        }
    }

    /// Width of a whole key (and of a query row per head).
    pub fn key_dim(&self) -> usize {
        self.dim_a + self.dim_b
    }

    /// Index of the first element of token `row` of `block` for KV head `g` in a pool of width `dim`.
    #[inline(always)]
    pub fn offset(&self, block: u32, g: usize, row: usize, dim: usize) -> usize {
        ((block as usize * self.kv_heads + g) * BLOCK_SIZE + row) * dim
    }

    /// Blocks in the pools (from the length of key part A).
    pub fn num_blocks(&self) -> usize {
        self.key_a.len() / (self.kv_heads * BLOCK_SIZE * self.dim_a).max(1)
    }
}

/// Query rows of one sequence: rows at positions `start..start + rows`.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// The sequence's block table.
    pub block_table: &'a [u32],
    /// Position of the first query row.
    pub start: usize,
    /// Query rows.
    pub rows: usize,
}

/// Checks the arguments every implementation relies on; returns the total query rows.
pub fn check<T>(q: &[T], kv: &PagedKv<T>, chunks: &[Chunk], heads: usize) -> Result<usize, String> {
    if kv.kv_heads == 0 || !heads.is_multiple_of(kv.kv_heads) {
        return Err(format!("{heads} query heads do not group over {} KV heads", kv.kv_heads));
    }
    if kv.dim_b == 0 && !kv.key_b.is_empty() {
        return Err("key part B given with width 0".into());
    }
    let block = kv.kv_heads * BLOCK_SIZE;
    let pools_ok = kv.key_a.len().is_multiple_of((block * kv.dim_a).max(1))
        && (kv.dim_b == 0 || kv.key_b.len() == kv.num_blocks() * block * kv.dim_b)
        && match kv.values {
            Values::Pool(v) => v.len() == kv.num_blocks() * block * kv.dim_v,
            Values::KeyPartA => kv.dim_v == kv.dim_a,
        };
    if !pools_ok {
        return Err("pool sizes disagree with the widths".into());
    }
    let rows: usize = chunks.iter().map(|c| c.rows).sum();
    if q.len() != rows * heads * kv.key_dim() {
        return Err(format!("query has {} values, want {rows} rows x {heads} heads x {}", q.len(), kv.key_dim()));
    }
    let blocks = kv.num_blocks();
    for c in chunks {
        let ctx = c.start + c.rows;
        if c.block_table.len() * BLOCK_SIZE < ctx {
            return Err(format!("block table of {} blocks is too short for {ctx} tokens", c.block_table.len()));
        }
        if let Some(b) = c.block_table.iter().take(ctx.div_ceil(BLOCK_SIZE)).find(|&&b| b as usize >= blocks) {
            return Err(format!("block {b} is outside the pool of {blocks} blocks"));
        }
    }
    Ok(rows)
}

/// Paged attention of `q` `[rows, heads, key_dim]` (the chunks' rows, in order) over `kv`;
/// returns `[rows, heads, dim_v]` in f32. Panics on arguments [`check`] refuses.
pub fn paged_attention<T: Element>(q: &[T], kv: &PagedKv<T>, chunks: &[Chunk], heads: usize, scale: f32) -> Vec<f32> {
    let rows = check(q, kv, chunks, heads).expect("paged attention arguments");
    let kd = kv.key_dim();
    let rep = heads / kv.kv_heads;
    let mut out = vec![0f32; rows * heads * kv.dim_v];
    let mut row = 0;
    for c in chunks {
        for i in 0..c.rows {
            let pos = c.start + i;
            for h in 0..heads {
                let g = h / rep;
                let qv = &q[(row * heads + h) * kd..(row * heads + h + 1) * kd];
                let scores: Vec<f32> = (0..=pos)
                    .map(|t| {
                        let (b, r) = (c.block_table[t / BLOCK_SIZE], t % BLOCK_SIZE);
                        let a = kv.offset(b, g, r, kv.dim_a);
                        let key_a = &kv.key_a[a..a + kv.dim_a];
                        let mut s: f32 = qv[..kv.dim_a].iter().zip(key_a).map(|(x, y)| x.to_f32() * y.to_f32()).sum();
                        if kv.dim_b > 0 {
                            let o = kv.offset(b, g, r, kv.dim_b);
                            let key_b = &kv.key_b[o..o + kv.dim_b];
                            s += qv[kv.dim_a..].iter().zip(key_b).map(|(x, y)| x.to_f32() * y.to_f32()).sum::<f32>();
                        }
                        s * scale
                    })
                    .collect();
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let weights: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f32 = weights.iter().sum();
                let dst = &mut out[(row * heads + h) * kv.dim_v..(row * heads + h + 1) * kv.dim_v];
                for (t, w) in weights.iter().enumerate() {
                    let (b, r) = (c.block_table[t / BLOCK_SIZE], t % BLOCK_SIZE);
                    let (pool, o) = match kv.values {
                        Values::Pool(v) => (v, kv.offset(b, g, r, kv.dim_v)),
                        Values::KeyPartA => (kv.key_a, kv.offset(b, g, r, kv.dim_a)),
                    };
                    for (d, v) in dst.iter_mut().zip(&pool[o..o + kv.dim_v]) {
                        *d += w / sum * v.to_f32();
                    }
                }
            }
            row += 1;
        }
    }
    out
}
