//! Scaled dot-product attention of the vision encoder on the bf16 CPU kernels:
//! `softmax(q kᵀ · scale + bias) v` for `q` `[n, lq, d]`, `k`, `v` `[n, lk, d]` (bf16, CPU).
//!
//! The batch (`n`: heads, windows) is split over the threads. Each item packs its keys and
//! transposed values for the GEMM once, then takes [`ROWS`] query rows at a time: f32 scores
//! from the GEMM, the scale, the bias and the softmax in one pass ([`softmax_row_bf16`]),
//! bf16 probabilities, and their product with the values. Scores never exist for more than
//! one block of rows per thread. Semantics as `F.scaled_dot_product_attention` with a float
//! mask: the bias is added after scaling; probabilities are rounded to bf16 before the second
//! product, as the candle path does.

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor};
use half::bf16;

use crate::cpu::gemm_bf16::{gemm_packed, Bf16Rows, PackedWeight};
use crate::cpu::gemv_bf16::PreparedActs;
use crate::cpu::softmax::{softmax_row_bf16, RowBias};
use crate::cpu::{pool, Isa};

/// Query rows per block.
pub const ROWS: usize = 64;

/// The additive bias.
#[derive(Debug, Clone, Copy)]
pub enum AttnBias<'a> {
    /// `[n or 1, lq, lk]`.
    Full(&'a Tensor),
    /// `h: [n, lq, kh]`, `w: [n, lq, kw]`, `lk = kh · kw`: `bias[b, q, i·kw + j] = h[b, q, i] + w[b, q, j]`.
    Decomposed {
        /// Row part.
        h: &'a Tensor,
        /// Column part.
        w: &'a Tensor,
    },
}

/// Whether [`sdpa_bf16`] runs these tensors.
pub fn supports(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    [q, k, v].iter().all(|t| t.device().is_cpu() && t.dtype() == DType::BF16 && t.rank() == 3)
}

fn f32_values(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

pub(crate) fn with_bf16<R>(t: &Tensor, f: impl FnOnce(&[bf16]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout): (_, &Layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("not contiguous".into()))?;
    match &*storage {
        Storage::Cpu(CpuStorage::BF16(v)) => f(&v[start..end]),
        _ => candle_core::bail!("sdpa_bf16 takes bf16 CPU tensors"),
    }
}

/// `[n, lq, d]` bf16 attention output.
pub fn sdpa_bf16(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<AttnBias>, scale: f64) -> Result<Tensor> {
    let (n, lq, d) = q.dims3()?;
    let (n2, lk, d2) = k.dims3()?;
    if n2 != n || d2 != d || v.dims3()? != (n, lk, d) {
        candle_core::bail!("sdpa_bf16: q {:?} k {:?} v {:?}", q.dims(), k.dims(), v.dims());
    }
    enum Bias {
        None,
        Full { data: Vec<f32>, per_batch: bool },
        Decomposed { h: Vec<f32>, w: Vec<f32>, kh: usize, kw: usize },
    }
    let bias = match bias {
        None => Bias::None,
        Some(AttnBias::Full(b)) => {
            let (bn, bq, bk) = b.dims3()?;
            if (bn != n && bn != 1) || bq != lq || bk != lk {
                candle_core::bail!("sdpa_bf16: bias {:?} for q {:?} k {:?}", b.dims(), q.dims(), k.dims());
            }
            Bias::Full { data: f32_values(b)?, per_batch: bn == n && n > 1 }
        }
        Some(AttnBias::Decomposed { h, w }) => {
            let (kh, kw) = (h.dim(2)?, w.dim(2)?);
            if h.dims3()? != (n, lq, kh) || w.dims3()? != (n, lq, kw) || kh * kw != lk {
                candle_core::bail!("sdpa_bf16: decomposed bias {:?} + {:?} for {lk} keys", h.dims(), w.dims());
            }
            Bias::Decomposed { h: f32_values(h)?, w: f32_values(w)?, kh, kw }
        }
    };
    let isa = Isa::active();
    let scale = scale as f32;
    // Every value is written by the tasks (item b, rows r0..r0 + rl) before the length is set.
    let mut out = Vec::<bf16>::with_capacity(n * lq * d);
    with_bf16(q, |qv| {
        with_bf16(k, |kv| {
            with_bf16(v, |vv| {
                let optr = SendPtr(out.as_mut_ptr());
                pool::for_each_task(n, |b| {
                    let mut kp = PackedWeight::default();
                    kp.pack(&Bf16Rows { data: &kv[b * lk * d..(b + 1) * lk * d], rows: lk, cols: d });
                    let vb = &vv[b * lk * d..(b + 1) * lk * d];
                    let mut vt = vec![bf16::ZERO; d * lk];
                    for (c, row) in vb.chunks_exact(d).enumerate() {
                        for (i, x) in row.iter().enumerate() {
                            vt[i * lk + c] = *x;
                        }
                    }
                    let mut vp = PackedWeight::default();
                    vp.pack(&Bf16Rows { data: &vt, rows: d, cols: lk });
                    let mut scores = vec![0f32; ROWS * lk];
                    let mut probs = vec![bf16::ZERO; ROWS * lk];
                    let mut ctx = vec![0f32; ROWS * d];
                    for r0 in (0..lq).step_by(ROWS) {
                        let rl = ROWS.min(lq - r0);
                        let qa = prepared(isa, &qv[(b * lq + r0) * d..(b * lq + r0 + rl) * d]);
                        gemm_packed(isa, &kp, &qa, rl, &mut scores, lk);
                        for r in 0..rl {
                            let row_bias = match &bias {
                                Bias::None => RowBias::None,
                                Bias::Full { data, per_batch } => {
                                    let base = (if *per_batch { b * lq } else { 0 } + r0 + r) * lk;
                                    RowBias::Full(&data[base..base + lk])
                                }
                                Bias::Decomposed { h, w, kh, kw } => {
                                    let row = b * lq + r0 + r;
                                    RowBias::Decomposed {
                                        h: &h[row * kh..(row + 1) * kh],
                                        w: &w[row * kw..(row + 1) * kw],
                                    }
                                }
                            };
                            softmax_row_bf16(
                                isa,
                                &mut scores[r * lk..(r + 1) * lk],
                                scale,
                                row_bias,
                                &mut probs[r * lk..(r + 1) * lk],
                            );
                        }
                        let pa = prepared(isa, &probs[..rl * lk]);
                        gemm_packed(isa, &vp, &pa, rl, &mut ctx, d);
                        // SAFETY: item b alone writes rows b * lq .. (b + 1) * lq of `out`.
                        unsafe {
                            crate::cpu::vmath::to_bf16_raw(isa, &ctx[..rl * d], optr.get().add((b * lq + r0) * d))
                        };
                    }
                });
                Ok(())
            })
        })
    })?;
    // SAFETY: the tasks above wrote all n * lq * d values.
    unsafe { out.set_len(n * lq * d) };
    Tensor::from_vec(out, (n, lq, d), q.device())
}

/// bf16 activations as the level's GEMM reads them.
pub(crate) fn prepared(isa: Isa, a: &[bf16]) -> PreparedActs<'_> {
    crate::cpu::gemv_bf16::prepare(isa, crate::cpu::gemv_bf16::Acts::Bf16(a))
}

#[derive(Clone, Copy)]
struct SendPtr(*mut bf16);
// SAFETY: used only to hand disjoint output ranges to tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn get(self) -> *mut bf16 {
        self.0
    }
}
