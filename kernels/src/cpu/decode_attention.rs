//! Single-query attention over a contiguous per-head KV cache (one sequence's decode step):
//! for every query head `h` (KV head `g = h / (heads / kv_heads)`, GQA),
//! `out[h] = Σ_t softmax_t(scale · q[h]·k[g, t]) v[g, t]` over the first `len` cached rows.
//!
//! Semantics: keys, values and queries widened to f32, scores, softmax (max-subtracted,
//! `exp` of f32) and the weighted value sum in f32; the summation order differs from the
//! plain reference ([`decode_attention_reference`]) by rounding only. Work is split over
//! query heads on the kernel pool; each head reads its KV head's rows once per pass, straight
//! from the cache (no copy, no conversion of the whole buffer).

// The SIMD wrappers are `unsafe fn`s with `#[target_feature]` around one safe body.
#![allow(unsafe_op_in_unsafe_fn)]
// Lane loops index the accumulator and both inputs by the same counter.
#![allow(clippy::needless_range_loop)]

use super::isa::Isa;
use super::pool;
use crate::reference::attention::Element;

/// Lanes of the dot-product and axpy loops (one 512-bit vector of f32).
const LANES: usize = 16;

/// Where the cache rows are: row `t` of KV head `g` starts at `g * head_stride + t * dim`.
#[derive(Debug, Clone, Copy)]
pub struct CacheView<'a, T> {
    /// Keys.
    pub k: &'a [T],
    /// Values.
    pub v: &'a [T],
    /// KV heads.
    pub kv_heads: usize,
    /// Elements between consecutive KV heads (the cache's capacity times `dim`).
    pub head_stride: usize,
    /// Rows to attend over.
    pub len: usize,
    /// Head width of keys and values.
    pub dim: usize,
}

impl<T> CacheView<'_, T> {
    fn check(&self, q_len: usize, heads: usize, out_len: usize) {
        assert!(self.kv_heads > 0 && heads.is_multiple_of(self.kv_heads), "heads must be a multiple of kv_heads");
        assert!(self.len > 0, "attention over an empty cache");
        assert_eq!(q_len, heads * self.dim, "queries must be [heads, dim]");
        assert_eq!(out_len, heads * self.dim, "output must be [heads, dim]");
        assert!(self.head_stride >= self.len * self.dim, "cache rows overlap the next head");
        let need = (self.kv_heads - 1) * self.head_stride + self.len * self.dim;
        assert!(self.k.len() >= need && self.v.len() >= need, "cache shorter than its view");
    }
}

/// Attention of one query row `q` `[heads, dim]` (f32) over `cache`, into `out` `[heads, dim]`,
/// threaded over heads.
pub fn decode_attention<T: Element>(
    isa: Isa,
    q: &[f32],
    cache: &CacheView<T>,
    heads: usize,
    scale: f32,
    out: &mut [f32],
) {
    cache.check(q.len(), heads, out.len());
    let dim = cache.dim;
    let ptr = SendPtr(out.as_mut_ptr());
    pool::for_each_task(heads, |h| {
        // SAFETY: task h alone writes row h of `out`, whose extent was checked above.
        let o = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(h * dim), dim) };
        head(isa, &q[h * dim..(h + 1) * dim], cache, h / (heads / cache.kv_heads), scale, o);
    });
}

/// One head on the calling thread, on `isa`'s vector width.
fn head<T: Element>(isa: Isa, q: &[f32], cache: &CacheView<T>, g: usize, scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if isa >= Isa::Avx512 && Isa::Avx512.is_supported() {
            // SAFETY: the level is supported.
            return unsafe { head_avx512(q, cache, g, scale, out) };
        }
        if isa == Isa::Avx2 && Isa::Avx2.is_supported() {
            // SAFETY: the level is supported.
            return unsafe { head_avx2(q, cache, g, scale, out) };
        }
    }
    let _ = isa;
    head_body(q, cache, g, scale, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
unsafe fn head_avx512<T: Element>(q: &[f32], cache: &CacheView<T>, g: usize, scale: f32, out: &mut [f32]) {
    head_body(q, cache, g, scale, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2<T: Element>(q: &[f32], cache: &CacheView<T>, g: usize, scale: f32, out: &mut [f32]) {
    head_body(q, cache, g, scale, out)
}

/// Scores, softmax and the value sum of one head (inlined into each level's wrapper, where the
/// compiler vectorises the lane loops for that level).
#[inline(always)]
fn head_body<T: Element>(q: &[f32], cache: &CacheView<T>, g: usize, scale: f32, out: &mut [f32]) {
    let (dim, len) = (cache.dim, cache.len);
    let base = g * cache.head_stride;
    let mut scores = vec![0f32; len];
    let mut max = f32::NEG_INFINITY;
    for (t, s) in scores.iter_mut().enumerate() {
        let row = &cache.k[base + t * dim..base + (t + 1) * dim];
        *s = dot(q, row) * scale;
        max = max.max(*s);
    }
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    out.iter_mut().for_each(|o| *o = 0.0);
    for (t, &p) in scores.iter().enumerate() {
        let row = &cache.v[base + t * dim..base + (t + 1) * dim];
        axpy(out, p * inv, row);
    }
}

/// `Σ q[i] · row[i]` in [`LANES`] partial sums.
#[inline(always)]
fn dot<T: Element>(q: &[f32], row: &[T]) -> f32 {
    let mut acc = [0f32; LANES];
    let full = q.len() / LANES * LANES;
    for (qc, rc) in q[..full].chunks_exact(LANES).zip(row[..full].chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += qc[l] * rc[l].to_f32();
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (a, b) in q[full..].iter().zip(&row[full..]) {
        s += a * b.to_f32();
    }
    s
}

/// `out[i] += w · row[i]`.
#[inline(always)]
fn axpy<T: Element>(out: &mut [f32], w: f32, row: &[T]) {
    for (o, r) in out.iter_mut().zip(row) {
        *o += w * r.to_f32();
    }
}

/// The plain definition (f64 accumulation), for tests.
pub fn decode_attention_reference<T: Element>(q: &[f32], cache: &CacheView<T>, heads: usize, scale: f32) -> Vec<f32> {
    let (dim, len) = (cache.dim, cache.len);
    let mut out = vec![0f32; heads * dim];
    for h in 0..heads {
        let base = (h / (heads / cache.kv_heads)) * cache.head_stride;
        let scores: Vec<f64> = (0..len)
            .map(|t| {
                (0..dim).map(|i| q[h * dim + i] as f64 * cache.k[base + t * dim + i].to_f32() as f64).sum::<f64>()
                    * scale as f64
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        for i in 0..dim {
            let v: f64 = (0..len).map(|t| e[t] / sum * cache.v[base + t * dim + i].to_f32() as f64).sum();
            out[h * dim + i] = v as f32;
        }
    }
    out
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint output rows to tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}
