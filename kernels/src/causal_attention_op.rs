//! Causal attention of a decoder prefill on the bf16 CPU kernels: the `n` new rows of one
//! sequence (positions `start..start + n`) attend over its first `start + n` cached keys.
//!
//! `q` `[heads, n, d]`, `k`, `v` `[kv_heads, start + n, d]` (bf16, CPU); query head `h` reads KV
//! head `h / (heads / kv_heads)` (GQA). Returns `[n, heads * d]`, the layout the output
//! projection takes. Each task is one query head: it packs its keys and transposed values for
//! the GEMM once, then takes [`ROWS`] query rows at a time and computes only the scores a row
//! can see (keys `0..=start + row`): f32 scores, the scale and the softmax in one pass
//! ([`softmax_row_bf16`]), bf16 probabilities (zero past the row's last key), and their product
//! with the values over the visible keys only, so the masked half of the square is never
//! computed. Semantics: `softmax(q kᵀ · scale + causal mask) v` with f32 scores and softmax,
//! probabilities rounded to bf16 before the second product, f32 accumulation, one rounding.

use candle_core::{Result, Tensor};
use half::bf16;

use crate::attention_op::{prepared, with_bf16, ROWS};
use crate::cpu::gemm_bf16::{gemm_packed_limited, Bf16Rows, PackedWeight, KC};
use crate::cpu::softmax::{softmax_row_bf16, RowBias};
use crate::cpu::{pool, Isa};

/// Whether [`sdpa_causal_bf16`] runs these tensors.
pub fn supports(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    crate::attention_op::supports(q, k, v)
}

/// `[n, heads * d]` bf16 causal attention output (see the module docs).
pub fn sdpa_causal_bf16(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let (heads, n, d) = q.dims3()?;
    let (kvh, total, d2) = k.dims3()?;
    if d2 != d || v.dims3()? != (kvh, total, d) || kvh == 0 || heads % kvh != 0 || total < n {
        candle_core::bail!("sdpa_causal_bf16: q {:?} k {:?} v {:?}", q.dims(), k.dims(), v.dims());
    }
    let (rep, start) = (heads / kvh, total - n);
    let isa = Isa::active();
    let scale = scale as f32;
    let mut out = vec![bf16::ZERO; n * heads * d];
    with_bf16(q, |qv| {
        with_bf16(k, |kv| {
            with_bf16(v, |vv| {
                let optr = SendPtr(out.as_mut_ptr());
                pool::for_each_task(heads, |h| {
                    let g = h / rep;
                    let mut kp = PackedWeight::default();
                    kp.pack(&Bf16Rows { data: &kv[g * total * d..(g + 1) * total * d], rows: total, cols: d });
                    let mut vt = vec![bf16::ZERO; d * total];
                    for (c, row) in vv[g * total * d..(g + 1) * total * d].chunks_exact(d).enumerate() {
                        for (i, x) in row.iter().enumerate() {
                            vt[i * total + c] = *x;
                        }
                    }
                    let mut vp = PackedWeight::default();
                    vp.pack(&Bf16Rows { data: &vt, rows: d, cols: total });
                    let mut scores = vec![0f32; ROWS * total];
                    let mut probs = vec![bf16::ZERO; ROWS * total];
                    let mut ctx = vec![0f32; ROWS * d];
                    for r0 in (0..n).step_by(ROWS) {
                        let rl = ROWS.min(n - r0);
                        // Keys any row of the block sees, and the k extent of the second product
                        // (whole packed blocks: probabilities past a row's keys are zero).
                        let nk = start + r0 + rl;
                        let kend = nk.next_multiple_of(KC).min(total);
                        let qa = prepared(isa, &qv[(h * n + r0) * d..(h * n + r0 + rl) * d]);
                        gemm_packed_limited(isa, &kp, &qa, rl, &mut scores, total, nk, d);
                        for r in 0..rl {
                            let seen = start + r0 + r + 1;
                            let p = &mut probs[r * total..r * total + kend];
                            softmax_row_bf16(
                                isa,
                                &mut scores[r * total..r * total + seen],
                                scale,
                                RowBias::None,
                                &mut p[..seen],
                            );
                            p[seen..].iter_mut().for_each(|x| *x = bf16::ZERO);
                        }
                        let pa = prepared(isa, &probs[..rl * total]);
                        gemm_packed_limited(isa, &vp, &pa, rl, &mut ctx, d, d, kend);
                        for r in 0..rl {
                            // SAFETY: head h alone writes columns h * d .. (h + 1) * d of every row.
                            let o = unsafe {
                                std::slice::from_raw_parts_mut(optr.get().add(((r0 + r) * heads + h) * d), d)
                            };
                            crate::cpu::vmath::to_bf16(isa, &ctx[r * d..(r + 1) * d], o);
                        }
                    }
                });
                Ok(())
            })
        })
    })?;
    Tensor::from_vec(out, (n, heads * d), q.device())
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
