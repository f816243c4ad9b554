//! Decoder configuration: the DeepSeek-V2 family `config.json`, read either as a plain
//! DeepSeek-V2 config or as the `language_config` of a DeepSeek-OCR / OCR-2 config.
//!
//! Field names and serde defaults mirror `configuration_deepseek_v2.py` (the file shipped with
//! `deepseek-ai/DeepSeek-OCR`), so a key missing from `config.json` means what it means there.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ModelError;
pub use docseek_vision::Architecture;
use docseek_vision::VisionConfig;

/// [`ModelConfig::architecture_name`] of a text-only DeepSeek-V2 checkpoint.
pub const TEXT_ONLY_NAME: &str = "deepseek-v2";

/// `image_token_id` when a checkpoint's config does not name one (hard-coded in the official
/// `modeling_deepseekocr.py`).
pub const DEFAULT_IMAGE_TOKEN_ID: u32 = super::tokens::IMAGE_ID;

/// YaRN / linear / dynamic RoPE scaling (`rope_scaling` in config.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `yarn`, `linear` or `dynamic`.
    #[serde(rename = "type", alias = "rope_type")]
    pub kind: String,
    /// Context extension factor.
    pub factor: f64,
    /// Pre-extension context length (YaRN).
    #[serde(default = "default_original_max_pos")]
    pub original_max_position_embeddings: usize,
    /// YaRN high-frequency boundary (rotations).
    #[serde(default = "default_beta_fast")]
    pub beta_fast: f64,
    /// YaRN low-frequency boundary (rotations).
    #[serde(default = "default_beta_slow")]
    pub beta_slow: f64,
    /// YaRN `mscale` (scales cos/sin together with `mscale_all_dim`).
    #[serde(default = "default_mscale")]
    pub mscale: f64,
    /// YaRN `mscale_all_dim` (also scales the softmax when non-zero).
    #[serde(default)]
    pub mscale_all_dim: f64,
}

fn default_original_max_pos() -> usize {
    4096
}
fn default_beta_fast() -> f64 {
    32.0
}
fn default_beta_slow() -> f64 {
    1.0
}
fn default_mscale() -> f64 {
    1.0
}

/// A DeepSeek-V2-family decoder config (MHA or MLA, dense + MoE layers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeepseekV2Config {
    /// Vocabulary rows of `embed_tokens` and `lm_head`.
    #[serde(default = "d_vocab_size")]
    pub vocab_size: usize,
    /// Model width.
    #[serde(default = "d_hidden_size")]
    pub hidden_size: usize,
    /// FFN width of the dense layers.
    #[serde(default = "d_intermediate_size")]
    pub intermediate_size: usize,
    /// FFN width of one routed expert.
    #[serde(default = "d_moe_intermediate_size")]
    pub moe_intermediate_size: usize,
    /// Number of decoder layers.
    #[serde(default = "d_num_hidden_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads.
    #[serde(default = "d_num_attention_heads")]
    pub num_attention_heads: usize,
    /// KV heads (MHA path; `null` means `num_attention_heads`).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Shared experts (fused into one MLP of `n * moe_intermediate_size`).
    #[serde(default)]
    pub n_shared_experts: Option<usize>,
    /// Routed experts; `null` makes every layer dense.
    #[serde(default)]
    pub n_routed_experts: Option<usize>,
    /// Multiplies the routed weights.
    #[serde(default = "d_one")]
    pub routed_scaling_factor: f64,
    /// MLA latent width; `null` (with `use_mla: false`) selects plain MHA.
    #[serde(default = "d_kv_lora_rank")]
    pub kv_lora_rank: Option<usize>,
    /// MLA query LoRA rank; `null` means a full `q_proj`.
    #[serde(default = "d_q_lora_rank")]
    pub q_lora_rank: Option<usize>,
    /// MLA rotary part of each q/k head.
    #[serde(default = "d_qk_rope_head_dim")]
    pub qk_rope_head_dim: usize,
    /// MLA value head width.
    #[serde(default = "d_v_head_dim")]
    pub v_head_dim: usize,
    /// MLA non-rotary part of each q/k head.
    #[serde(default = "d_qk_nope_head_dim")]
    pub qk_nope_head_dim: usize,
    /// `greedy`, `group_limited_greedy` or `noaux_tc` (the reference's default is the typo
    /// `gready`, which behaves like `greedy`).
    #[serde(default = "d_topk_method")]
    pub topk_method: String,
    /// Expert groups (group-limited routing).
    #[serde(default)]
    pub n_group: Option<usize>,
    /// Groups kept per token (group-limited routing).
    #[serde(default)]
    pub topk_group: Option<usize>,
    /// Experts per token.
    #[serde(default)]
    pub num_experts_per_tok: Option<usize>,
    /// Every `moe_layer_freq`-th layer (from `first_k_dense_replace`) is MoE.
    #[serde(default = "d_one_usize")]
    pub moe_layer_freq: usize,
    /// The first k layers are dense.
    #[serde(default)]
    pub first_k_dense_replace: usize,
    /// Renormalise the top-k weights to sum 1.
    #[serde(default)]
    pub norm_topk_prob: bool,
    /// `softmax` (V2) or `sigmoid` (V3).
    #[serde(default = "d_scoring_func")]
    pub scoring_func: String,
    /// Activation of the MLPs (only `silu` is used by this family).
    #[serde(default = "d_hidden_act")]
    pub hidden_act: String,
    /// Longest sequence (prompt + generated) the model supports.
    #[serde(default = "d_max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon of the layer norms.
    #[serde(default = "d_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// Beginning-of-sequence id.
    #[serde(default = "d_bos")]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id.
    #[serde(default = "d_eos")]
    pub eos_token_id: Option<u32>,
    /// Whether `lm_head` shares `embed_tokens` (false in this family).
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// RoPE base.
    #[serde(default = "d_rope_theta")]
    pub rope_theta: f64,
    /// RoPE scaling (YaRN for DeepSeek-V2).
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    /// Biases on the attention projections.
    #[serde(default)]
    pub attention_bias: bool,
    /// MLA (true) or transformers' LlamaAttention (false).
    #[serde(default = "d_true")]
    pub use_mla: bool,
}

fn d_vocab_size() -> usize {
    102400
}
fn d_hidden_size() -> usize {
    4096
}
fn d_intermediate_size() -> usize {
    11008
}
fn d_moe_intermediate_size() -> usize {
    1407
}
fn d_num_hidden_layers() -> usize {
    30
}
fn d_num_attention_heads() -> usize {
    32
}
fn d_one() -> f64 {
    1.0
}
fn d_one_usize() -> usize {
    1
}
fn d_kv_lora_rank() -> Option<usize> {
    Some(512)
}
fn d_q_lora_rank() -> Option<usize> {
    Some(1536)
}
fn d_qk_rope_head_dim() -> usize {
    64
}
fn d_v_head_dim() -> usize {
    128
}
fn d_qk_nope_head_dim() -> usize {
    128
}
fn d_topk_method() -> String {
    "gready".into()
}
fn d_scoring_func() -> String {
    "softmax".into()
}
fn d_hidden_act() -> String {
    "silu".into()
}
fn d_max_position_embeddings() -> usize {
    2048
}
fn d_rms_norm_eps() -> f64 {
    1e-6
}
fn d_bos() -> Option<u32> {
    Some(100000)
}
fn d_eos() -> Option<u32> {
    Some(100001)
}
fn d_rope_theta() -> f64 {
    10000.0
}
fn d_true() -> bool {
    true
}

/// How an MoE layer picks its experts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopkMethod {
    /// Plain top-k over all experts.
    Greedy,
    /// Top-k inside the best `topk_group` groups (group score = the group's max score).
    GroupLimitedGreedy,
    /// DeepSeek-V3: choose with `score + e_score_correction_bias` inside the best groups
    /// (group score = sum of its top-2), weigh with the raw score.
    NoauxTc,
}

/// The gate's scoring function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoringFunc {
    /// Softmax over experts (V2).
    Softmax,
    /// Independent sigmoids (V3).
    Sigmoid,
}

/// Which attention a config selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKind {
    /// transformers' LlamaAttention: NeoX RoPE over the full head dim, full K/V cache.
    Mha,
    /// Multi-head latent attention with a compressed latent cache.
    Mla,
}

impl DeepseekV2Config {
    /// Parses a config from JSON text and validates it.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let cfg: DeepseekV2Config = serde_json::from_str(text).map_err(|e| ModelError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Attention variant: MLA when `use_mla` is set and `kv_lora_rank` is given.
    pub fn attention_kind(&self) -> AttentionKind {
        if self.use_mla && self.kv_lora_rank.is_some() {
            AttentionKind::Mla
        } else {
            AttentionKind::Mha
        }
    }

    /// KV heads of the MHA path.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Head width of the MHA path (transformers: `hidden_size // num_heads`).
    pub fn mha_head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// MLA q/k head width (`qk_nope_head_dim + qk_rope_head_dim`).
    pub fn q_head_dim(&self) -> usize {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }

    /// Whether layer `idx` is an MoE layer (the reference's rule).
    pub fn is_moe_layer(&self, idx: usize) -> bool {
        self.n_routed_experts.is_some()
            && idx >= self.first_k_dense_replace
            && idx.is_multiple_of(self.moe_layer_freq.max(1))
    }

    /// Parsed `topk_method`.
    pub fn topk_method(&self) -> Result<TopkMethod, ModelError> {
        match self.topk_method.as_str() {
            "greedy" | "gready" => Ok(TopkMethod::Greedy),
            "group_limited_greedy" => Ok(TopkMethod::GroupLimitedGreedy),
            "noaux_tc" => Ok(TopkMethod::NoauxTc),
            other => Err(ModelError::Config(format!("unknown topk_method '{other}'"))),
        }
    }

    /// Parsed `scoring_func`.
    pub fn scoring_func(&self) -> Result<ScoringFunc, ModelError> {
        match self.scoring_func.as_str() {
            "softmax" => Ok(ScoringFunc::Softmax),
            "sigmoid" => Ok(ScoringFunc::Sigmoid),
            other => Err(ModelError::Config(format!("unknown scoring_func '{other}'"))),
        }
    }

    /// Bytes of KV cache one token occupies across all layers in `dtype_bytes`-sized values:
    /// MHA stores K and V for every KV head; MLA stores only the latent and the shared rope key.
    pub fn cache_bytes_per_token(&self, dtype_bytes: usize) -> usize {
        let per_layer = match self.attention_kind() {
            AttentionKind::Mha => 2 * self.kv_heads() * self.mha_head_dim(),
            AttentionKind::Mla => self.kv_lora_rank.unwrap_or(0) + self.qk_rope_head_dim,
        };
        per_layer * self.num_hidden_layers * dtype_bytes
    }

    /// Checks the invariants the forward code relies on.
    pub fn validate(&self) -> Result<(), ModelError> {
        let err = |m: String| Err(ModelError::Config(m));
        if self.hidden_size == 0 || self.num_attention_heads == 0 || self.num_hidden_layers == 0 {
            return err("hidden_size, num_attention_heads and num_hidden_layers must be > 0".into());
        }
        if self.hidden_act != "silu" {
            return err(format!("unsupported hidden_act '{}' (only silu)", self.hidden_act));
        }
        self.topk_method()?;
        self.scoring_func()?;
        match self.attention_kind() {
            AttentionKind::Mha => {
                if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
                    return err("hidden_size must be a multiple of num_attention_heads".into());
                }
                if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
                    return err("num_attention_heads must be a multiple of num_key_value_heads".into());
                }
                if !self.mha_head_dim().is_multiple_of(2) {
                    return err("the MHA head dim must be even for RoPE".into());
                }
                if let Some(s) = &self.rope_scaling {
                    if s.kind != "linear" {
                        return err(format!("rope_scaling '{}' is only supported with MLA (use_mla: true)", s.kind));
                    }
                }
            }
            AttentionKind::Mla => {
                if !self.qk_rope_head_dim.is_multiple_of(2) || self.qk_rope_head_dim == 0 {
                    return err("qk_rope_head_dim must be even and > 0".into());
                }
                if let Some(s) = &self.rope_scaling {
                    if !matches!(s.kind.as_str(), "yarn" | "linear") {
                        return err(format!("unsupported rope_scaling type '{}'", s.kind));
                    }
                }
            }
        }
        if let Some(e) = self.n_routed_experts {
            let k = self.num_experts_per_tok.unwrap_or(0);
            if k == 0 || k > e {
                return err(format!("num_experts_per_tok must be in 1..={e}"));
            }
            if self.topk_method()? != TopkMethod::Greedy {
                let g = self.n_group.unwrap_or(1).max(1);
                if e % g != 0 || self.topk_group.unwrap_or(1) > g {
                    return err("n_routed_experts must split into n_group groups, topk_group <= n_group".into());
                }
            }
        }
        Ok(())
    }
}

/// A checkpoint folder's `config.json`: the architecture, the decoder config and the OCR keys.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Which OCR family ([`Architecture::detect`]'s rule); `None` for a text-only DeepSeek-V2
    /// decoder (no vision tower).
    pub architecture: Option<Architecture>,
    /// The decoder config.
    pub decoder: DeepseekV2Config,
    /// The id that marks image slots in the prompt.
    pub image_token_id: u32,
    /// The vision tower's config, parsed from the same file (`None` for a text-only decoder).
    pub vision: Option<VisionConfig>,
}

impl ModelConfig {
    /// Reads and classifies `config.json` text.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let raw: serde_json::Value = serde_json::from_str(text).map_err(|e| ModelError::Config(e.to_string()))?;
        let vision_error = |e: docseek_vision::VisionError| ModelError::Config(format!("vision config: {e}"));
        let architecture = Architecture::detect(&raw).map_err(vision_error)?;
        let vision = architecture.map(|_| VisionConfig::from_value(&raw)).transpose().map_err(vision_error)?;
        let lang = raw.get("language_config").unwrap_or(&raw);
        let decoder: DeepseekV2Config =
            serde_json::from_value(lang.clone()).map_err(|e| ModelError::Config(format!("language config: {e}")))?;
        decoder.validate()?;
        let image_token_id =
            raw.get("image_token_id").and_then(|v| v.as_u64()).map(|v| v as u32).unwrap_or(DEFAULT_IMAGE_TOKEN_ID);
        Ok(ModelConfig { architecture, decoder, image_token_id, vision })
    }

    /// The family's name for engine info and logs (`deepseek-ocr`, `deepseek-ocr-2`, or
    /// `deepseek-v2` for a text-only decoder).
    pub fn architecture_name(&self) -> &'static str {
        self.architecture.map_or(TEXT_ONLY_NAME, Architecture::name)
    }

    /// Reads `DIR/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("config.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| ModelError::Config(format!("{}: {e}", path.display())))?;
        Self::from_json(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_reference_config() {
        let c = DeepseekV2Config::from_json(r#"{"n_routed_experts": 4, "num_experts_per_tok": 2}"#).unwrap();
        assert_eq!(c.vocab_size, 102400);
        assert_eq!(c.kv_lora_rank, Some(512));
        assert_eq!(c.q_lora_rank, Some(1536));
        assert!(c.use_mla);
        assert_eq!(c.attention_kind(), AttentionKind::Mla);
        assert_eq!(c.topk_method().unwrap(), TopkMethod::Greedy);
        assert_eq!(c.first_k_dense_replace, 0);
        assert_eq!(c.rope_theta, 10000.0);
        assert_eq!(c.kv_heads(), 32);
    }

    #[test]
    fn ocr_style_config_is_mha_with_dense_first_layer() {
        let text = r#"{"model_type":"deepseek_vl_v2","vision_config":{"model_name":"deeplip_b_l"},
            "language_config":{"use_mla":false,"kv_lora_rank":null,"q_lora_rank":null,"hidden_size":1280,
            "num_attention_heads":10,"num_key_value_heads":10,"num_hidden_layers":12,"n_routed_experts":64,
            "num_experts_per_tok":6,"n_shared_experts":2,"first_k_dense_replace":1,"topk_method":"greedy",
            "vocab_size":129280,"intermediate_size":6848,"moe_intermediate_size":896,"max_position_embeddings":8192}}"#;
        let m = ModelConfig::from_json(text).unwrap();
        assert_eq!(m.architecture, Some(Architecture::Ocr1));
        assert_eq!(m.architecture_name(), "deepseek-ocr");
        assert_eq!(m.image_token_id, DEFAULT_IMAGE_TOKEN_ID);
        let c = &m.decoder;
        assert_eq!(c.attention_kind(), AttentionKind::Mha);
        assert!(!c.is_moe_layer(0) && c.is_moe_layer(1) && c.is_moe_layer(11));
        assert_eq!(c.mha_head_dim(), 128);
        // 12 layers x 2 (K, V) x 1280 values x 2 bytes.
        assert_eq!(c.cache_bytes_per_token(2), 12 * 2 * 1280 * 2);
    }

    #[test]
    fn mla_cache_is_latent_plus_rope_key() {
        let c = DeepseekV2Config::from_json(
            r#"{"num_hidden_layers":27,"hidden_size":2048,"num_attention_heads":16,"kv_lora_rank":512,
               "q_lora_rank":null,"qk_rope_head_dim":64,"n_routed_experts":64,"num_experts_per_tok":6}"#,
        )
        .unwrap();
        assert_eq!(c.cache_bytes_per_token(2), 27 * (512 + 64) * 2);
    }

    #[test]
    fn bad_configs_are_rejected() {
        assert!(DeepseekV2Config::from_json(r#"{"topk_method":"magic"}"#).is_err());
        assert!(DeepseekV2Config::from_json(r#"{"n_routed_experts":4,"num_experts_per_tok":5}"#).is_err());
        assert!(DeepseekV2Config::from_json(r#"{"hidden_act":"gelu"}"#).is_err());
    }
}
