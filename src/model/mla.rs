//! Multi-head latent attention (`DeepseekV2Attention`, `use_mla: true`) over a compressed
//! cache, in the weight-absorbed form the reference computes:
//!
//! - q: `q_proj`, or `q_b_proj(q_a_layernorm(q_a_proj(x)))` (q-LoRA), split per head into a
//!   non-rotary part (`qk_nope_head_dim`) and a rotary part (`qk_rope_head_dim`).
//! - `kv_a_proj_with_mqa(x)` = latent `c` (`kv_lora_rank`) + one shared rotary key; the cache
//!   keeps `kv_a_layernorm(c)` and the roped key only.
//! - `kv_b_proj` `[heads * (nope + v), rank]` is never applied to the cache: its key half is
//!   folded into the query (`q_nope W_k`, giving a rank-wide query) and its value half into the
//!   output (`(P c) W_v^T`).
//! - scores `= (q_pe k_pe^T + q_abs c^T) * softmax_scale`, with YaRN's `mscale_all_dim^2`.
//!
//! `q_a_layernorm` / `kv_a_layernorm` use the default eps 1e-6, not `rms_norm_eps`.
//!
//! [`MlaAttention::forward`] serves one sequence over its contiguous [`KvCache`];
//! [`MlaAttention::forward_batch`] a token-major batch over the paged latent cache.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use docseek_kernels::paged::{PagedAttention, PagedPools};

use super::batch::{BatchPlan, Group};
use super::cache::KvCache;
use super::config::DeepseekV2Config;
use super::layers::{Linear, RmsNorm};
use super::paged_cache::{PagedKvCache, PoolLayer};
use super::rope::{yarn_mscale, RotaryEmbedding};

/// Eps of the MLA-internal RMSNorms (`DeepseekV2RMSNorm`'s default).
const MLA_NORM_EPS: f64 = 1e-6;

/// How the query is produced.
#[derive(Debug, Clone)]
enum QueryProj {
    Full(Linear),
    LoRa { a: Linear, norm: RmsNorm, b: Linear },
}

/// MLA weights, with `kv_b_proj` pre-split into its absorbed halves.
#[derive(Debug, Clone)]
pub struct MlaAttention {
    q: QueryProj,
    kv_a: Linear,
    kv_a_norm: RmsNorm,
    /// `[heads, nope, rank]`: folds the key up-projection into the query.
    k_absorb: Tensor,
    /// `[heads, rank, v]`: applies the value up-projection after attention.
    v_absorb_t: Tensor,
    o_proj: Linear,
    heads: usize,
    nope: usize,
    rope_dim: usize,
    rank: usize,
    v_dim: usize,
    softmax_scale: f64,
}

impl MlaAttention {
    /// Loads the official tensor names under `{prefix}` (`self_attn`).
    pub fn load(vb: VarBuilder, cfg: &DeepseekV2Config) -> Result<Self> {
        let h = cfg.hidden_size;
        let heads = cfg.num_attention_heads;
        let (nope, rope_dim, v_dim) = (cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim);
        let qhd = nope + rope_dim;
        let rank = cfg.kv_lora_rank.ok_or_else(|| candle_core::Error::Msg("MLA needs kv_lora_rank".into()))?;
        let bias = cfg.attention_bias;
        let q = match cfg.q_lora_rank {
            None => QueryProj::Full(Linear::load(vb.pp("q_proj"), h, heads * qhd, false)?),
            Some(r) => QueryProj::LoRa {
                a: Linear::load(vb.pp("q_a_proj"), h, r, bias)?,
                norm: RmsNorm::load(vb.pp("q_a_layernorm"), r, MLA_NORM_EPS)?,
                b: Linear::load(vb.pp("q_b_proj"), r, heads * qhd, false)?,
            },
        };
        let kv_a = Linear::load(vb.pp("kv_a_proj_with_mqa"), h, rank + rope_dim, bias)?;
        let kv_a_norm = RmsNorm::load(vb.pp("kv_a_layernorm"), rank, MLA_NORM_EPS)?;
        let kv_b = vb.pp("kv_b_proj").get((heads * (nope + v_dim), rank), "weight")?;
        let kv_b = kv_b.reshape((heads, nope + v_dim, rank))?;
        let k_absorb = kv_b.narrow(1, 0, nope)?.contiguous()?;
        let v_absorb_t = kv_b.narrow(1, nope, v_dim)?.transpose(1, 2)?.contiguous()?;
        let o_proj = Linear::load(vb.pp("o_proj"), heads * v_dim, h, bias)?;
        let mut softmax_scale = (qhd as f64).powf(-0.5);
        if let Some(s) = &cfg.rope_scaling {
            if s.mscale_all_dim != 0.0 {
                let m = yarn_mscale(s.factor, s.mscale_all_dim);
                softmax_scale *= m * m;
            }
        }
        Ok(MlaAttention {
            q,
            kv_a,
            kv_a_norm,
            k_absorb,
            v_absorb_t,
            o_proj,
            heads,
            nope,
            rope_dim,
            rank,
            v_dim,
            softmax_scale,
        })
    }

    /// The per-head projections of `x` `[n, hidden]`: the absorbed query `[H, n, rank]`, the
    /// roped query `[H, n, rope]`, the normalised latent `[n, rank]`, the roped key `[n, rope]`.
    fn project(&self, x: &Tensor, rope: &RotaryEmbedding, cos_sin: &(Tensor, Tensor)) -> Result<[Tensor; 4]> {
        let n = x.dim(0)?;
        let heads = self.heads;
        let qhd = self.nope + self.rope_dim;
        let q = match &self.q {
            QueryProj::Full(p) => p.forward(x)?,
            QueryProj::LoRa { a, norm, b } => b.forward(&norm.forward(&a.forward(x)?)?)?,
        };
        let q = q.reshape((n, heads, qhd))?.transpose(0, 1)?.contiguous()?; // [H, n, qhd]
        let q_nope = q.narrow(2, 0, self.nope)?.contiguous()?; // cuBLAS takes contiguous batched operands
        let q_pe = q.narrow(2, self.nope, self.rope_dim)?.contiguous()?;
        let q_pe = rope.apply(&q_pe, &cos_sin.0, &cos_sin.1)?;

        let ckv = self.kv_a.forward(x)?; // [n, rank + rope]
        let latent = self.kv_a_norm.forward(&ckv.narrow(1, 0, self.rank)?.contiguous()?)?;
        let k_pe = ckv.narrow(1, self.rank, self.rope_dim)?.unsqueeze(0)?.contiguous()?;
        let k_pe = rope.apply(&k_pe, &cos_sin.0, &cos_sin.1)?.squeeze(0)?; // [n, rope]
                                                                           // Absorb the key up-projection: [H, n, nope] x [H, nope, rank] -> [H, n, rank].
        let q_abs = q_nope.matmul(&self.k_absorb)?;
        Ok([q_abs, q_pe, latent, k_pe])
    }

    /// Attends `x` `[n, hidden]` over the latent cache plus itself (see [`super::attention`]
    /// for the mask convention).
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &RotaryEmbedding,
        cos_sin: &(Tensor, Tensor),
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let [q_abs, q_pe, latent, k_pe] = self.project(x, rope, cos_sin)?;
        let (latent_all, k_pe_all) = cache.append_mla(layer, &latent, &k_pe)?;
        let out = self.attend(&q_abs, &q_pe, &latent_all, &k_pe_all, mask)?;
        self.o_proj.forward(&out)
    }

    /// Absorbed attention of `q_abs` `[H, n, rank]` and `q_pe` `[H, n, rope]` over
    /// `latent_all` `[total, rank]` and `k_pe_all` `[total, rope]`; returns `[n, H * v]`.
    fn attend(
        &self,
        q_abs: &Tensor,
        q_pe: &Tensor,
        latent_all: &Tensor,
        k_pe_all: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let heads = self.heads;
        let n = q_abs.dim(1)?;
        let total = latent_all.dim(0)?;
        let q_abs = q_abs.contiguous()?.reshape((heads * n, self.rank))?;
        let q_pe = q_pe.contiguous()?.reshape((heads * n, self.rope_dim))?;
        let scores = (q_pe.matmul(&k_pe_all.t()?)? + q_abs.matmul(&latent_all.t()?)?)?;
        let scores = (scores * self.softmax_scale)?.reshape((heads, n, total))?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(q_abs.dtype())?;
        // [H*n, total] x [total, rank] -> [H, n, rank] x [H, rank, v] -> [H, n, v].
        let ctx = probs.reshape((heads * n, total))?.matmul(latent_all)?;
        self.values(&ctx.reshape((heads, n, self.rank))?)
    }

    /// Applies the value up-projection to attention output `ctx` `[H, n, rank]`: `[n, H * v]`.
    fn values(&self, ctx: &Tensor) -> Result<Tensor> {
        let n = ctx.dim(1)?;
        let out = ctx.matmul(&self.v_absorb_t)?;
        out.transpose(0, 1)?.reshape((n, self.heads * self.v_dim))
    }

    /// Attends the token-major batch `x` `[T, hidden]` (see [`super::attention`]): writes every
    /// row's latent and rotary key into its slot, then attends each chunk over its sequence.
    pub fn forward_batch(
        &self,
        x: &Tensor,
        rope: &RotaryEmbedding,
        cos_sin: &(Tensor, Tensor),
        plan: &BatchPlan,
        cache: &PagedKvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let [q_abs, q_pe, latent, k_pe] = self.project(x, rope, cos_sin)?;
        cache.write_mla(layer, &plan.slots, &latent, &k_pe)?;
        let PoolLayer::Mla { latent: latent_pool, k_pe: k_pe_pool } = cache.layer(layer) else {
            candle_core::bail!("MLA attention over an MHA cache");
        };
        let mut outs = Vec::with_capacity(plan.groups.len());
        for group in &plan.groups {
            match group {
                Group::Kernel { chunks, row, rows, .. } => {
                    let op = PagedAttention {
                        chunks: chunks.clone(),
                        heads: self.heads,
                        pools: PagedPools::Mla { rank: self.rank, rope_dim: self.rope_dim },
                        scale: self.softmax_scale as f32,
                    };
                    // [H, rows, rank + rope] -> [rows, H, rank + rope].
                    let q = Tensor::cat(&[&q_abs.narrow(1, *row, *rows)?, &q_pe.narrow(1, *row, *rows)?], 2)?;
                    let q = q.transpose(0, 1)?.contiguous()?;
                    let ctx = op.apply(&q, latent_pool, k_pe_pool)?; // [rows, H, rank]
                    outs.push(self.values(&ctx.transpose(0, 1)?.contiguous()?)?);
                }
                Group::Gather(i) => {
                    let c = &plan.chunks[*i];
                    let (latent_all, k_pe_all) = cache.gather(layer, c.seq, c.start + c.len)?;
                    let (qa, qp) = (q_abs.narrow(1, c.row, c.len)?, q_pe.narrow(1, c.row, c.len)?);
                    outs.push(self.attend(&qa, &qp, &latent_all, &k_pe_all, c.mask.as_ref())?);
                }
            }
        }
        let out = if outs.len() == 1 { outs.remove(0) } else { Tensor::cat(&outs, 0)? };
        self.o_proj.forward(&out)
    }
}
