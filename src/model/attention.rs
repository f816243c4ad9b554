//! Plain multi-head attention of the released OCR checkpoints (`use_mla: false`): the
//! decoder layer uses transformers 4.46.3's `LlamaAttention` (eager) with `q/k/v/o_proj`,
//! NeoX RoPE over the full head dim, scale `1/sqrt(head_dim)`, softmax in f32, GQA by
//! repeating KV heads.
//!
//! [`MhaAttention::forward`] serves one sequence over its contiguous [`KvCache`];
//! [`MhaAttention::forward_batch`] serves a token-major batch over the paged cache. Both
//! share the products of [`MhaAttention::attend`].

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use docseek_kernels::paged::{PagedAttention, PagedPools};

use super::batch::{BatchPlan, Group};
use super::cache::KvCache;
use super::config::DeepseekV2Config;
use super::layers::Linear;
use super::paged_cache::{PagedKvCache, PoolLayer};
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
        if n == 1 && docseek_kernels::decode_attention_op::supports(&q, &k_all, &v_all) {
            // One decode row over the bf16 cache, read in place.
            let scale = (1.0 / (hd as f64).sqrt()) as f32;
            let out = docseek_kernels::decode_attention_op::attend_one(&q, &k_all, &v_all, scale)?;
            return self.o_proj.forward(&out);
        }
        // A bf16 prefill on the CPU: the causal kernel computes only the visible scores (the
        // mask here is always the causal one of these positions).
        if n > 1 && mask.is_some() && docseek_kernels::causal_attention_op::supports(&q, &k_all, &v_all) {
            let scale = 1.0 / (hd as f64).sqrt();
            let out = docseek_kernels::causal_attention_op::sdpa_causal_bf16(&q, &k_all, &v_all, scale)?;
            return self.o_proj.forward(&out);
        }
        let out = self.attend(&q, &k_all, &v_all, mask)?;
        self.o_proj.forward(&out)
    }

    /// Softmax attention of `q` `[heads, n, hd]` over `k_all`, `v_all` `[kv_heads, total, hd]`
    /// with the additive `mask` `[n, total]`; returns `[n, heads * hd]`.
    fn attend(&self, q: &Tensor, k_all: &Tensor, v_all: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (heads, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let n = q.dim(1)?;
        let total = k_all.dim(1)?;
        // GQA: heads h = g * rep + r share KV head g, so grouping q rows per KV head is a reshape.
        let rep = heads / kvh;
        let qg = q.contiguous()?.reshape((kvh, rep * n, hd))?;
        let scores = (qg.matmul(&k_all.t()?)? / (hd as f64).sqrt())?;
        let scores = scores.reshape((heads, n, total))?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?;
        let out = probs.reshape((kvh, rep * n, total))?.matmul(v_all)?;
        out.reshape((heads, n, hd))?.transpose(0, 1)?.reshape((n, heads * hd))
    }

    /// Attends the token-major batch `x` `[T, hidden]` (rows and positions as `plan` says):
    /// writes every row's K and V into its slot of `cache`, then attends each chunk over its
    /// own sequence's blocks. Returns `[T, hidden]`.
    pub fn forward_batch(
        &self,
        x: &Tensor,
        rope: &RotaryEmbedding,
        cos_sin: &(Tensor, Tensor),
        plan: &BatchPlan,
        cache: &PagedKvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let t = x.dim(0)?;
        let (heads, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let split = |t_: Tensor, h: usize| -> Result<Tensor> { t_.reshape((t, h, hd))?.transpose(0, 1)?.contiguous() };
        let q = rope.apply(&split(self.q_proj.forward(x)?, heads)?, &cos_sin.0, &cos_sin.1)?; // [H, T, hd]
        let k = rope.apply(&split(self.k_proj.forward(x)?, kvh)?, &cos_sin.0, &cos_sin.1)?; // [kvh, T, hd]
        let v = self.v_proj.forward(x)?; // [T, kvh * hd]
        let k_rows = k.transpose(0, 1)?.contiguous()?.reshape((t, kvh * hd))?;
        cache.write_mha(layer, &plan.slots, &k_rows, &v)?;
        let PoolLayer::Mha { k: k_pool, v: v_pool } = cache.layer(layer) else {
            candle_core::bail!("MHA attention over an MLA cache");
        };
        let mut outs = Vec::with_capacity(plan.groups.len());
        for group in &plan.groups {
            match group {
                Group::Kernel { row, rows, device: Some(t), .. } => {
                    let qk = q.narrow(1, *row, *rows)?.transpose(0, 1)?.contiguous()?; // [rows, H, hd]
                    let scale = (1.0 / (hd as f64).sqrt()) as f32;
                    let o = docseek_kernels::ops::attention::paged_attention_mha(
                        &qk, k_pool, v_pool, &t.tables, &t.lens, scale,
                    )?;
                    outs.push(o.reshape((*rows, heads * hd))?);
                }
                Group::Kernel { chunks, row, rows, device: None } => {
                    let op = PagedAttention {
                        chunks: chunks.clone(),
                        heads,
                        pools: PagedPools::Mha { kv_heads: kvh, head_dim: hd },
                        scale: (1.0 / (hd as f64).sqrt()) as f32,
                    };
                    let qk = q.narrow(1, *row, *rows)?.transpose(0, 1)?.contiguous()?; // [rows, H, hd]
                    outs.push(op.apply(&qk, k_pool, v_pool)?.reshape((*rows, heads * hd))?);
                }
                Group::Gather(i) => {
                    let c = &plan.chunks[*i];
                    let (k_all, v_all) = cache.gather(layer, c.seq, c.start + c.len)?;
                    outs.push(self.attend(&q.narrow(1, c.row, c.len)?, &k_all, &v_all, c.mask.as_ref())?);
                }
            }
        }
        let out = if outs.len() == 1 { outs.remove(0) } else { Tensor::cat(&outs, 0)? };
        self.o_proj.forward(&out)
    }
}
