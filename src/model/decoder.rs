//! The DeepSeek-V2-family decoder (`DeepseekV2ForCausalLM`): token embeddings, pre-norm
//! layers (attention MHA or MLA, then a dense MLP or an MoE), final RMSNorm, untied `lm_head`,
//! f32 logits. Activations are token-major `[tokens, hidden]`.
//!
//! Callers feed embeddings, so image features can be spliced into the prompt
//! ([`DeepseekDecoder::embed`] then overwrite rows), and ask for the logits of the last
//! position only (prefill, decode) or of all positions (parity checks).
//!
//! Two entry points: [`DeepseekDecoder::forward`] runs one sequence over its contiguous
//! [`KvCache`] (parity, tests); [`DeepseekDecoder::forward_batch`] runs the rows of many
//! sequences in one `[T, hidden]` batch over the paged cache ([`PagedKvCache`]): every op
//! but attention sees only rows, so the weights are read once per step for the whole batch.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use docseek_kernels::linear::LinearWeight;
use docseek_kernels::storage::Storage;
use half::bf16;

use super::attention::MhaAttention;
use super::batch::{causal_mask, AttentionPath, BatchPlan, SeqChunk};
use super::cache::{CacheLayout, KvCache};
use super::config::{AttentionKind, DeepseekV2Config};
use super::layers::{Linear, Mlp, RmsNorm};
use super::mla::MlaAttention;
use super::moe::Moe;
use super::paged_cache::PagedKvCache;
use super::rope::RotaryEmbedding;

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsFor {
    /// Only the last position (`[1, vocab]`).
    Last,
    /// Every position (`[tokens, vocab]`).
    All,
}

#[derive(Debug, Clone)]
enum Attention {
    Mha(MhaAttention),
    Mla(MlaAttention),
}

#[derive(Debug, Clone)]
enum FeedForward {
    Dense(Mlp),
    Moe(Moe),
}

/// One pre-norm decoder layer.
#[derive(Debug, Clone)]
struct DecoderLayer {
    input_norm: RmsNorm,
    attn: Attention,
    post_norm: RmsNorm,
    ffn: FeedForward,
}

/// The token embeddings: a tensor, or (bf16 on the CPU) rows read straight from the
/// memory-mapped checkpoint, so loading neither reads nor copies the table.
#[derive(Debug, Clone)]
enum Embedding {
    Tensor(Tensor),
    Mapped { data: Storage<bf16>, rows: usize, cols: usize },
}

impl Embedding {
    fn lookup(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        match self {
            Embedding::Tensor(t) => t.index_select(&Tensor::from_slice(ids, ids.len(), device)?, 0),
            Embedding::Mapped { data, rows, cols } => {
                let table = data.as_slice();
                let mut out = Vec::with_capacity(ids.len() * cols);
                for &id in ids {
                    let id = id as usize;
                    if id >= *rows {
                        candle_core::bail!("token id {id} outside the vocabulary of {rows}");
                    }
                    out.extend_from_slice(&table[id * cols..(id + 1) * cols]);
                }
                Tensor::from_vec(out, (ids.len(), *cols), device)
            }
        }
    }
}

/// The decoder with its weights.
#[derive(Debug, Clone)]
pub struct DeepseekDecoder {
    cfg: DeepseekV2Config,
    embed: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: RotaryEmbedding,
    dtype: DType,
    device: Device,
}

impl DeepseekDecoder {
    /// Loads the official names: `model.embed_tokens`, `model.layers.N.*`, `model.norm`,
    /// `lm_head` (or the embeddings when `tie_word_embeddings`). `vb` is the checkpoint root.
    pub fn load(cfg: &DeepseekV2Config, vb: VarBuilder) -> Result<Self> {
        let m = vb.pp("model");
        let h = cfg.hidden_size;
        let embed_name = format!("{}.weight", m.pp("embed_tokens").prefix());
        let embed = match super::quant_store::mapped_bf16(&embed_name, cfg.vocab_size, h, vb.dtype(), vb.device()) {
            Some(data) => Embedding::Mapped { data, rows: cfg.vocab_size, cols: h },
            None => Embedding::Tensor(m.pp("embed_tokens").get((cfg.vocab_size, h), "weight")?),
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = m.pp("layers").pp(i);
            let attn = match cfg.attention_kind() {
                AttentionKind::Mha => Attention::Mha(MhaAttention::load(l.pp("self_attn"), cfg)?),
                AttentionKind::Mla => Attention::Mla(MlaAttention::load(l.pp("self_attn"), cfg)?),
            };
            let ffn = if cfg.is_moe_layer(i) {
                FeedForward::Moe(Moe::load(l.pp("mlp"), cfg)?)
            } else {
                FeedForward::Dense(Mlp::load(l.pp("mlp"), h, cfg.intermediate_size)?)
            };
            layers.push(DecoderLayer {
                input_norm: RmsNorm::load(l.pp("input_layernorm"), h, cfg.rms_norm_eps)?,
                attn,
                post_norm: RmsNorm::load(l.pp("post_attention_layernorm"), h, cfg.rms_norm_eps)?,
                ffn,
            });
        }
        let norm = RmsNorm::load(m.pp("norm"), h, cfg.rms_norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings && !vb.contains_tensor("lm_head.weight") {
            match &embed {
                Embedding::Tensor(t) => Linear::from_weight(t.clone(), None),
                Embedding::Mapped { data, rows, cols } => {
                    Linear::from_kernel_weight(LinearWeight::Bf16 { data: data.clone(), rows: *rows, cols: *cols })?
                }
            }
        } else {
            Linear::load(vb.pp("lm_head"), h, cfg.vocab_size, false)?
        };
        let rope = match cfg.attention_kind() {
            AttentionKind::Mha => RotaryEmbedding::for_mha(cfg),
            AttentionKind::Mla => RotaryEmbedding::for_mla(cfg),
        };
        Ok(DeepseekDecoder {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            lm_head,
            rope,
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// The config.
    pub fn config(&self) -> &DeepseekV2Config {
        &self.cfg
    }

    /// Weight dtype (and activation dtype).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Row layout of this model's KV cache.
    pub fn cache_layout(&self) -> CacheLayout {
        match self.cfg.attention_kind() {
            AttentionKind::Mha => CacheLayout::Mha { kv_heads: self.cfg.kv_heads(), head_dim: self.cfg.mha_head_dim() },
            AttentionKind::Mla => {
                CacheLayout::Mla { rank: self.cfg.kv_lora_rank.unwrap_or(0), rope_dim: self.cfg.qk_rope_head_dim }
            }
        }
    }

    /// Bytes of KV cache per token in this model's dtype.
    pub fn cache_bytes_per_token(&self) -> usize {
        self.cfg.cache_bytes_per_token(self.dtype.size_in_bytes())
    }

    /// An empty cache with room for `capacity` tokens.
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache> {
        KvCache::new(self.cache_layout(), self.layers.len(), capacity, self.dtype, &self.device)
    }

    /// Embeddings `[ids, hidden]` of token ids.
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        self.embed.lookup(ids, &self.device)
    }

    /// Runs `embeds` `[n, hidden]` (positions `cache.len()..+n`) through the decoder, appends
    /// them to `cache`, and returns f32 logits for the requested positions.
    pub fn forward(&self, embeds: &Tensor, cache: &mut KvCache, logits: LogitsFor) -> Result<Tensor> {
        let n = embeds.dim(0)?;
        let start = cache.len();
        if start + n > self.cfg.max_position_embeddings {
            candle_core::bail!(
                "sequence of {} tokens exceeds max_position_embeddings {}",
                start + n,
                self.cfg.max_position_embeddings
            );
        }
        cache.reserve(n)?;
        let cos_sin = self.rope.tables(start, n, self.dtype, &self.device)?;
        let mask = if n > 1 { Some(causal_mask(n, start, self.dtype, &self.device)?) } else { None };
        let mut h = embeds.to_dtype(self.dtype)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let x = layer.input_norm.forward(&h)?;
            let a = match &layer.attn {
                Attention::Mha(att) => att.forward(&x, &self.rope, &cos_sin, mask.as_ref(), cache, i)?,
                Attention::Mla(att) => att.forward(&x, &self.rope, &cos_sin, mask.as_ref(), cache, i)?,
            };
            let (h_attn, x) = layer.post_norm.forward_residual(&h, &a)?;
            h = h_attn;
            let f = match &layer.ffn {
                FeedForward::Dense(mlp) => mlp.forward(&x)?,
                FeedForward::Moe(moe) => moe.forward(&x)?,
            };
            h = (h + f)?;
        }
        cache.advance(n);
        let h = match logits {
            LogitsFor::Last => h.narrow(0, n - 1, 1)?,
            LogitsFor::All => h,
        };
        let h = self.norm.forward(&h)?;
        self.lm_head.forward(&h)?.to_dtype(DType::F32)
    }

    /// An empty paged cache of `budget_bytes` (see [`PagedKvCache::with_budget`]).
    pub fn new_paged_cache(&self, budget_bytes: usize) -> Result<PagedKvCache> {
        PagedKvCache::with_budget(self.cache_layout(), self.layers.len(), budget_bytes, self.dtype, &self.device)
    }

    /// Runs a token-major batch: `embeds` `[T, hidden]` holds the rows of `chunks` in order
    /// (each a prefill chunk or one decode token of a sequence whose cache holds exactly
    /// `chunk.start` tokens). Reserves the blocks the chunks need (an error when the cache
    /// is full), writes their keys and values, and returns the f32 logits of the last row of
    /// each chunk `[chunks, vocab]`.
    pub fn forward_batch(&self, embeds: &Tensor, chunks: &[SeqChunk], cache: &mut PagedKvCache) -> Result<Tensor> {
        self.forward_batch_with(embeds, chunks, cache, AttentionPath::Auto)
    }

    /// [`Self::forward_batch`] with a choice of attention path (tests compare them).
    pub fn forward_batch_with(
        &self,
        embeds: &Tensor,
        chunks: &[SeqChunk],
        cache: &mut PagedKvCache,
        path: AttentionPath,
    ) -> Result<Tensor> {
        let t = embeds.dim(0)?;
        if chunks.is_empty() || chunks.iter().map(|c| c.len).sum::<usize>() != t {
            let lens: Vec<usize> = chunks.iter().map(|c| c.len).collect();
            candle_core::bail!("forward_batch: {t} rows for chunks of {lens:?}");
        }
        let mut seen = std::collections::HashSet::new();
        for c in chunks {
            if c.len == 0 || !seen.insert(c.seq) {
                candle_core::bail!("forward_batch: sequence {} is empty or appears twice", c.seq);
            }
            if cache.len(c.seq).unwrap_or(0) != c.start {
                let cached = cache.len(c.seq).unwrap_or(0);
                candle_core::bail!("sequence {}: chunk starts at {} but {cached} tokens are cached", c.seq, c.start);
            }
            if c.start + c.len > self.cfg.max_position_embeddings {
                candle_core::bail!(
                    "sequence of {} tokens exceeds max_position_embeddings {}",
                    c.start + c.len,
                    self.cfg.max_position_embeddings
                );
            }
            if !cache.reserve(c.seq, c.start + c.len) {
                candle_core::bail!("the KV cache is full: sequence {} needs more blocks", c.seq);
            }
        }
        let plan = BatchPlan::new(chunks, cache, path, self.dtype)?;
        let cos_sin = self.rope.tables_at(&plan.positions, self.dtype, &self.device)?;
        let mut h = embeds.to_dtype(self.dtype)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let x = layer.input_norm.forward(&h)?;
            let a = match &layer.attn {
                Attention::Mha(att) => att.forward_batch(&x, &self.rope, &cos_sin, &plan, cache, i)?,
                Attention::Mla(att) => att.forward_batch(&x, &self.rope, &cos_sin, &plan, cache, i)?,
            };
            h = (h + a)?;
            let x = layer.post_norm.forward(&h)?;
            let f = match &layer.ffn {
                FeedForward::Dense(mlp) => mlp.forward(&x)?,
                FeedForward::Moe(moe) => moe.forward(&x)?,
            };
            h = (h + f)?;
        }
        for c in chunks {
            cache.set_len(c.seq, c.start + c.len)?;
        }
        let last = plan.last_rows();
        let n = last.len();
        let h = h.index_select(&Tensor::from_vec(last, n, &self.device)?, 0)?;
        let h = self.norm.forward(&h)?;
        self.lm_head.forward(&h)?.to_dtype(DType::F32)
    }

    /// Indices of the MoE layers.
    pub fn moe_layers(&self) -> Vec<usize> {
        self.layers.iter().enumerate().filter(|(_, l)| matches!(l.ffn, FeedForward::Moe(_))).map(|(i, _)| i).collect()
    }

    /// Runs only the routed experts of MoE layer `idx` on `x` `[tokens, hidden]` and returns
    /// the experts that ran (for tests of sparse dispatch).
    pub fn experts_run_by_layer(&self, idx: usize, x: &Tensor) -> Result<Vec<usize>> {
        match &self.layers[idx].ffn {
            FeedForward::Moe(moe) => {
                let routing = moe.gate().route(x)?;
                Ok(moe.routed(x, &routing)?.1)
            }
            FeedForward::Dense(_) => candle_core::bail!("layer {idx} is dense"),
        }
    }

    /// Argmax over the last dim of f32 logits `[1, vocab]` or `[vocab]`.
    pub fn argmax(logits: &Tensor) -> Result<u32> {
        logits.flatten_all()?.argmax(D::Minus1)?.to_scalar::<u32>()
    }
}
