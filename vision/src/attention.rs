//! Scaled dot-product attention shared by SAM, CLIP and the Qwen2 encoder:
//! `softmax(q·kᵀ · scale + bias) · v`, the semantics of `F.scaled_dot_product_attention` with a
//! float `attn_mask` (the bias is added after scaling, unscaled). Softmax runs in f32.
//!
//! Work is split over the batch·heads axis and, for long sequences, over query rows, so the
//! score block stays small (SAM's global blocks at 1024 px have 4096² scores per head; at
//! 1280 px 6400²). Small blocks keep the allocator reusing memory instead of mapping fresh
//! pages for every temporary, which dominated the run time with whole-head score matrices.
//! SAM's decomposed relative-position bias is expanded per block, never for the whole sequence.
//! bf16 on the CPU runs the fused kernel (`docseek_kernels::attention_op`: both products on
//! the bf16 GEMM, scale, bias and softmax in one pass over blocks of query rows); other dtypes
//! and devices use candle's ops.

use candle_core::{DType, Tensor};
use docseek_kernels::attention_op::{sdpa_bf16, AttnBias};

use crate::error::Result;

/// Most score elements materialised at once (4 Mi f32 = 16 MiB).
const MAX_SCORE_ELEMS: usize = 4 << 20;

/// An additive attention bias.
#[derive(Clone, Copy)]
pub enum Bias<'a> {
    /// `[N or 1, Lq, Lk]`.
    Full(&'a Tensor),
    /// SAM's decomposed relative positions over a `kh × kw` key grid: `h: [N, Lq, kh]`,
    /// `w: [N, Lq, kw]`; `bias[n, q, i·kw + j] = h[n, q, i] + w[n, q, j]`.
    Decomposed { h: &'a Tensor, w: &'a Tensor },
}

impl Bias<'_> {
    /// The bias of batch rows `n0..n0+nl` and query rows `r0..r0+rl`, `[nl or 1, rl, Lk]`, f32.
    fn block(&self, n: usize, n0: usize, nl: usize, r0: usize, rl: usize) -> Result<Tensor> {
        let rows = |t: &Tensor| -> Result<Tensor> {
            let t = if t.dim(0)? == n { t.narrow(0, n0, nl)? } else { t.clone() };
            Ok(t.narrow(1, r0, rl)?.to_dtype(DType::F32)?)
        };
        Ok(match self {
            Bias::Full(b) => rows(b)?,
            Bias::Decomposed { h, w } => {
                let (h, w) = (rows(h)?, rows(w)?);
                let (b, kh, kw) = (h.dim(0)?, h.dim(2)?, w.dim(2)?);
                h.unsqueeze(3)?.broadcast_add(&w.unsqueeze(2)?)?.reshape((b, rl, kh * kw))?
            }
        })
    }
}

/// `q: [N, Lq, d]`, `k, v: [N, Lk, d]`, optional bias → `[N, Lq, d]`.
pub fn sdpa(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<Bias>, scale: f64) -> Result<Tensor> {
    if docseek_kernels::attention_op::supports(q, k, v) {
        let b = bias.map(|b| match b {
            Bias::Full(t) => AttnBias::Full(t),
            Bias::Decomposed { h, w } => AttnBias::Decomposed { h, w },
        });
        return Ok(sdpa_bf16(q, k, v, b, scale)?);
    }
    let (n, lq, _) = q.dims3()?;
    let lk = k.dim(1)?;
    let n_chunk = (MAX_SCORE_ELEMS / (lq * lk).max(1)).clamp(1, n);
    let r_chunk = if n_chunk > 1 { lq } else { (MAX_SCORE_ELEMS / lk.max(1)).clamp(1, lq) };
    let mut outs = Vec::with_capacity(n.div_ceil(n_chunk));
    for n0 in (0..n).step_by(n_chunk) {
        let nl = n_chunk.min(n - n0);
        let qn = q.narrow(0, n0, nl)?;
        let kx = k.narrow(0, n0, nl)?.transpose(1, 2)?.contiguous()?;
        let vx = v.narrow(0, n0, nl)?.contiguous()?;
        let mut rows = Vec::with_capacity(lq.div_ceil(r_chunk));
        for r0 in (0..lq).step_by(r_chunk) {
            let rl = r_chunk.min(lq - r0);
            let qr = qn.narrow(1, r0, rl)?.contiguous()?;
            let b = bias.map(|b| b.block(n, n0, nl, r0, rl)).transpose()?;
            rows.push(attend(&qr, &kx, &vx, b.as_ref(), scale)?);
        }
        outs.push(if rows.len() == 1 { rows.pop().expect("one block") } else { Tensor::cat(&rows, 1)? });
    }
    Ok(if outs.len() == 1 { outs.pop().expect("one block") } else { Tensor::cat(&outs, 0)? })
}

/// One block: `q: [n, r, d]`, `kt: [n, d, Lk]`, `v: [n, Lk, d]`, f32 bias `[n or 1, r, Lk]`.
fn attend(q: &Tensor, kt: &Tensor, v: &Tensor, bias: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let dtype = q.dtype();
    let mut scores = (q.matmul(kt)?.to_dtype(DType::F32)? * scale)?;
    if let Some(b) = bias {
        scores = scores.broadcast_add(b)?;
    }
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dtype)?;
    Ok(probs.matmul(v)?)
}
