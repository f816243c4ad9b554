//! Scaled dot-product attention shared by SAM, CLIP and the Qwen2 encoder:
//! `softmax(q·kᵀ · scale + bias) · v`, the semantics of `F.scaled_dot_product_attention` with a
//! float `attn_mask` (the bias is added after scaling, unscaled). Softmax runs in f32. Large
//! problems are split over the batch·heads axis so the score matrix stays bounded in memory
//! (SAM's global blocks at 1280 px have 6400² scores per head).

use candle_core::{DType, Tensor};

use crate::error::Result;

/// Most score elements materialised at once (64 Mi f32 = 256 MiB).
const MAX_SCORE_ELEMS: usize = 64 << 20;

/// `q: [N, Lq, d]`, `k, v: [N, Lk, d]`, `bias: [N or 1, Lq, Lk]` → `[N, Lq, d]`.
pub fn sdpa(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let (n, lq, _) = q.dims3()?;
    let lk = k.dim(1)?;
    let per = (lq * lk).max(1);
    let chunk = (MAX_SCORE_ELEMS / per).clamp(1, n);
    if chunk >= n {
        return sdpa_once(q, k, v, bias, scale);
    }
    let mut outs = Vec::with_capacity(n.div_ceil(chunk));
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let b = match bias {
            Some(b) if b.dim(0)? == n => Some(b.narrow(0, start, len)?),
            Some(b) => Some(b.clone()),
            None => None,
        };
        outs.push(sdpa_once(
            &q.narrow(0, start, len)?,
            &k.narrow(0, start, len)?,
            &v.narrow(0, start, len)?,
            b.as_ref(),
            scale,
        )?);
        start += len;
    }
    Ok(Tensor::cat(&outs, 0)?)
}

fn sdpa_once(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let dtype = q.dtype();
    let q = q.contiguous()?;
    let kt = k.transpose(1, 2)?.contiguous()?;
    let mut scores = (q.matmul(&kt)?.to_dtype(DType::F32)? * scale)?;
    if let Some(b) = bias {
        scores = scores.broadcast_add(&b.to_dtype(DType::F32)?)?;
    }
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dtype)?;
    Ok(probs.matmul(&v.contiguous()?)?)
}
