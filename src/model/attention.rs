//! Plain multi-head attention of the released OCR checkpoints (`use_mla: false`): the
//! decoder layer uses transformers 4.46.3's `LlamaAttention` (eager) with `q/k/v/o_proj`,
//! NeoX RoPE over the full head dim, scale `1/sqrt(head_dim)`, softmax in f32, GQA by
//! repeating KV heads.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::cache::KvCache;
use super::config::DeepseekV2Config;
use super::layers::Linear;
use super::rope::RotaryEmbedding;

/// LlamaAttention weights and shapes.
#[derive(Debug, Clone)]
pub struct MhaAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl MhaAttention {
    /// Loads `{prefix}.{q,k,v,o}_proj`.
    pub fn load(vb: VarBuilder, cfg: &DeepseekV2Config) -> Result<Self> {
        let (h, heads, kv_heads, hd) = (cfg.hidden_size, cfg.num_attention_heads, cfg.kv_heads(), cfg.mha_head_dim());
        let bias = cfg.attention_bias;
        Ok(MhaAttention {
            q_proj: Linear::load(vb.pp("q_proj"), h, heads * hd, bias)?,
            k_proj: Linear::load(vb.pp("k_proj"), h, kv_heads * hd, bias)?,
            v_proj: Linear::load(vb.pp("v_proj"), h, kv_heads * hd, bias)?,
            o_proj: Linear::load(vb.pp("o_proj"), heads * hd, h, bias)?,
            heads,
            kv_heads,
            head_dim: hd,
        })
    }

    /// Attends `x` `[n, hidden]` (positions `cache.len()..+n`) over the cache plus itself.
    /// `mask` is the additive causal mask `[n, len + n]` (None for a single token).
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &RotaryEmbedding,
        cos_sin: &(Tensor, Tensor),
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let n = x.dim(0)?;
        let (heads, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let split = |t: Tensor, h: usize| -> Result<Tensor> { t.reshape((n, h, hd))?.transpose(0, 1)?.contiguous() };
        let q = split(self.q_proj.forward(x)?, heads)?;
        let k = split(self.k_proj.forward(x)?, kvh)?;
        let v = split(self.v_proj.forward(x)?, kvh)?;
        let q = rope.apply(&q, &cos_sin.0, &cos_sin.1)?;
        let k = rope.apply(&k, &cos_sin.0, &cos_sin.1)?;
        let (k_all, v_all) = cache.append_mha(layer, &k, &v)?;
        let total = k_all.dim(1)?;
        // GQA: heads h = g * rep + r share KV head g, so grouping q rows per KV head is a reshape.
        let rep = heads / kvh;
        let qg = q.reshape((kvh, rep * n, hd))?;
        let scores = (qg.matmul(&k_all.t()?)? / (hd as f64).sqrt())?;
        let scores = scores.reshape((heads, n, total))?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(x.dtype())?;
        let out = probs.reshape((kvh, rep * n, total))?.matmul(&v_all)?;
        let out = out.reshape((heads, n, hd))?.transpose(0, 1)?.reshape((n, heads * hd))?;
        self.o_proj.forward(&out)
    }
}
