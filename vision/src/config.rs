//! Vision configuration read from a checkpoint's own `config.json` (official DeepSeek-OCR /
//! DeepSeek-OCR-2 layout): `vision_config.width.{sam_vit_b, clip-l-14-224, qwen2-0-5b}` and
//! `projector_config`. Keys absent from the official file (hard-coded in `deepencoder.py` /
//! `deepencoderv2.py`) fall back to the real model's values, so the real config loads as is
//! and tiny test checkpoints can override every dimension.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Result, VisionError};

/// Which DeepSeek-OCR family a checkpoint is: the one architecture type of the workspace (the
/// decoder config, the synthetic checkpoints and the benchmarks use it too), chosen from
/// `config.json` by one rule, [`Architecture::detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// DeepSeek-OCR: SAM-B + 16x compressor + CLIP-L, image_newline column layout.
    Ocr1,
    /// DeepSeek-OCR-2: SAM-B + Qwen2-style encoder with learned queries.
    Ocr2,
}

/// OCR-2's `vision_config.model_name`.
const OCR2_MODEL_NAME: &str = "deepencoderv2";
/// OCR-1's `vision_config.model_name` starts with this (`deeplip_b_l`).
const OCR1_MODEL_PREFIX: &str = "deeplip";
/// The `model_type` the released OCR configs carry.
const OCR_MODEL_TYPE: &str = "deepseek_vl_v2";

impl Architecture {
    /// Both architectures.
    pub const ALL: [Architecture; 2] = [Architecture::Ocr1, Architecture::Ocr2];

    /// The one rule that reads the architecture from a full checkpoint `config.json`:
    /// `None` when it has no `vision_config` (a text-only DeepSeek-V2 decoder); OCR-2 when
    /// `vision_config.model_name` is `deepencoderv2`, an `architectures` entry names OCR2, or
    /// the vision widths hold a `qwen2-0-5b` encoder; OCR-1 when the model type is
    /// `deepseek_vl_v2`, the vision model is `deeplip*`, or the widths hold `clip-l-14-224`.
    pub fn detect(config: &Value) -> Result<Option<Architecture>> {
        let Some(vc) = config.get("vision_config") else { return Ok(None) };
        let model_name = vc.get("model_name").and_then(Value::as_str).unwrap_or("");
        let width = |key: &str| vc.get("width").and_then(|w| w.get(key)).is_some();
        let names_ocr2 = config
            .get("architectures")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().filter_map(Value::as_str).any(|a| a.contains("OCR2")));
        if model_name == OCR2_MODEL_NAME || names_ocr2 || width("qwen2-0-5b") {
            return Ok(Some(Architecture::Ocr2));
        }
        let model_type = config.get("model_type").and_then(Value::as_str).unwrap_or("");
        if model_type == OCR_MODEL_TYPE || model_name.starts_with(OCR1_MODEL_PREFIX) || width("clip-l-14-224") {
            return Ok(Some(Architecture::Ocr1));
        }
        Err(VisionError::Config(format!("unknown vision tower '{model_name}' (model_type '{model_type}')")))
    }

    /// The family's name in engine info and logs (`deepseek-ocr`, `deepseek-ocr-2`).
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Ocr1 => "deepseek-ocr",
            Architecture::Ocr2 => "deepseek-ocr-2",
        }
    }

    /// The short name users type (`ocr1`, `ocr2`).
    pub fn short_name(self) -> &'static str {
        match self {
            Architecture::Ocr1 => "ocr1",
            Architecture::Ocr2 => "ocr2",
        }
    }

    /// The side of one local tile in crop modes (`dynamic_preprocess` default of each model).
    pub fn tile_size(self) -> u32 {
        match self {
            Architecture::Ocr1 => 640,
            Architecture::Ocr2 => 768,
        }
    }

    /// Largest non-crop view that is stretched (not padded) to a square (`image_size <= N`).
    pub fn stretch_max(self) -> u32 {
        self.tile_size()
    }

    /// Default most tiles per image (HF `dynamic_preprocess`: 9 for OCR-1, 6 for OCR-2).
    pub fn default_max_tiles(self) -> u32 {
        match self {
            Architecture::Ocr1 => 9,
            Architecture::Ocr2 => 6,
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short_name())
    }
}

impl std::str::FromStr for Architecture {
    type Err = String;

    /// `ocr1` / `ocr2`, or the family names `deepseek-ocr` / `deepseek-ocr-2`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        Architecture::ALL
            .into_iter()
            .find(|a| s == a.short_name() || s == a.name())
            .ok_or_else(|| format!("unknown architecture '{s}' (ocr1, ocr2)"))
    }
}

fn d_sam_width() -> usize {
    768
}
fn d_sam_layers() -> usize {
    12
}
fn d_sam_heads() -> usize {
    12
}
fn d_sam_global() -> Vec<usize> {
    vec![2, 5, 8, 11]
}
fn d_sam_down() -> Vec<usize> {
    vec![512, 1024]
}
fn d_neck() -> usize {
    256
}
fn d_patch() -> usize {
    16
}
fn d_sam_image() -> usize {
    1024
}
fn d_window() -> usize {
    14
}
fn d_mlp_ratio() -> f64 {
    4.0
}

/// SAM-ViT-B (`vision_config.width.sam_vit_b`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SamConfig {
    /// Embedding width (768).
    #[serde(default = "d_sam_width")]
    pub width: usize,
    /// Transformer blocks (12).
    #[serde(default = "d_sam_layers")]
    pub layers: usize,
    /// Attention heads (12).
    #[serde(default = "d_sam_heads")]
    pub heads: usize,
    /// Blocks with global (not windowed) attention ([2, 5, 8, 11]).
    #[serde(default = "d_sam_global")]
    pub global_attn_indexes: Vec<usize>,
    /// Output channels of `net_2` and `net_3` ([512, 1024]; OCR-2: [512, 896]).
    #[serde(default = "d_sam_down")]
    pub downsample_channels: Vec<usize>,
    /// Neck channels (256).
    #[serde(default = "d_neck")]
    pub neck_channels: usize,
    /// Patch size (16).
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    /// Image size the position table was trained for (1024 → 64×64 grid).
    #[serde(default = "d_sam_image")]
    pub image_size: usize,
    /// Attention window of the windowed blocks (14).
    #[serde(default = "d_window")]
    pub window_size: usize,
    /// MLP hidden ratio (4.0).
    #[serde(default = "d_mlp_ratio")]
    pub mlp_ratio: f64,
}

impl Default for SamConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults")
    }
}

impl SamConfig {
    /// Head dimension.
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }
    /// MLP hidden width.
    pub fn mlp_dim(&self) -> usize {
        (self.width as f64 * self.mlp_ratio) as usize
    }
    /// Side of the trained position grid (64).
    pub fn pos_grid(&self) -> usize {
        self.image_size / self.patch_size
    }
    /// Output channels of the whole SAM stack (`net_3`).
    pub fn out_channels(&self) -> usize {
        *self.downsample_channels.last().unwrap_or(&self.neck_channels)
    }
    /// Token grid side SAM produces for a square view of `side` pixels.
    pub fn out_grid(&self, side: usize) -> usize {
        let mut g = side / self.patch_size;
        for _ in &self.downsample_channels {
            g = g.div_ceil(2); // 3x3, stride 2, padding 1
        }
        g
    }
}

fn d_clip_width() -> usize {
    1024
}
fn d_clip_layers() -> usize {
    24
}
fn d_clip_heads() -> usize {
    16
}
fn d_clip_ffn() -> usize {
    4096
}
fn d_clip_image() -> usize {
    224
}
fn d_clip_patch() -> usize {
    14
}
fn d_clip_eps() -> f64 {
    1e-5
}

/// CLIP-L/14-224 (`vision_config.width.clip-l-14-224`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClipConfig {
    /// Hidden width (1024).
    #[serde(default = "d_clip_width")]
    pub width: usize,
    /// Transformer layers (24).
    #[serde(default = "d_clip_layers")]
    pub layers: usize,
    /// Attention heads (16).
    #[serde(default = "d_clip_heads")]
    pub heads: usize,
    /// MLP width (4096).
    #[serde(default = "d_clip_ffn")]
    pub ffn_hidden_size: usize,
    /// Image size of the position table (224 → 16×16 + CLS).
    #[serde(default = "d_clip_image")]
    pub image_size: usize,
    /// Patch size (14).
    #[serde(default = "d_clip_patch")]
    pub patch_size: usize,
    /// LayerNorm epsilon (1e-5).
    #[serde(default = "d_clip_eps")]
    pub layernorm_epsilon: f64,
}

impl Default for ClipConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults")
    }
}

impl ClipConfig {
    /// Side of the trained position grid (16).
    pub fn pos_grid(&self) -> usize {
        self.image_size / self.patch_size
    }
    /// Rows of the position table (257).
    pub fn num_positions(&self) -> usize {
        self.pos_grid() * self.pos_grid() + 1
    }
}

fn d_q_dim() -> usize {
    896
}
fn d_q_layers() -> usize {
    24
}
fn d_q_heads() -> usize {
    14
}
fn d_q_kv() -> usize {
    2
}
fn d_q_inter() -> usize {
    4864
}
fn d_q_theta() -> f64 {
    1e6
}
fn d_q_eps() -> f64 {
    1e-6
}

/// Qwen2-0.5B-style encoder of DeepSeek-OCR-2 (`vision_config.width.qwen2-0-5b`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Qwen2EncoderConfig {
    /// Hidden width (896).
    #[serde(default = "d_q_dim")]
    pub dim: usize,
    /// Decoder layers (24).
    #[serde(default = "d_q_layers")]
    pub layers: usize,
    /// Query heads (14).
    #[serde(default = "d_q_heads")]
    pub heads: usize,
    /// Key/value heads (2).
    #[serde(default = "d_q_kv")]
    pub kv_heads: usize,
    /// SwiGLU width (4864).
    #[serde(default = "d_q_inter")]
    pub intermediate_size: usize,
    /// RoPE base (1e6).
    #[serde(default = "d_q_theta")]
    pub rope_theta: f64,
    /// RMSNorm epsilon (1e-6).
    #[serde(default = "d_q_eps")]
    pub rms_norm_eps: f64,
}

impl Default for Qwen2EncoderConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults")
    }
}

impl Qwen2EncoderConfig {
    /// Head dimension.
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }
}

/// The projector (`projector_config`): a single linear layer into the LLM width.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectorConfig {
    /// Input width (CLIP + SAM channels, or the Qwen2 encoder width).
    pub input_dim: usize,
    /// Output width = decoder `hidden_size`.
    pub n_embed: usize,
}

/// The vision side of a checkpoint config.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    /// Which encoder.
    pub arch: Architecture,
    /// SAM-B settings (both architectures).
    pub sam: SamConfig,
    /// CLIP-L settings (OCR-1 only).
    pub clip: Option<ClipConfig>,
    /// Qwen2 encoder settings (OCR-2 only).
    pub qwen2: Option<Qwen2EncoderConfig>,
    /// Projector.
    pub projector: ProjectorConfig,
}

/// Real model's decoder width, used when neither `projector_config.n_embed` nor `hidden_size` is given.
const DEFAULT_LLM_WIDTH: usize = 1280;

impl VisionConfig {
    /// Parses the vision part of a full checkpoint `config.json` text.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| VisionError::Config(format!("config.json is not valid JSON: {e}")))?;
        Self::from_value(&v)
    }

    /// Parses the vision part of a full checkpoint config.
    pub fn from_value(v: &Value) -> Result<Self> {
        let arch = Architecture::detect(v)?.ok_or_else(|| {
            VisionError::Config("config.json has no vision_config: a text-only checkpoint, not DeepSeek-OCR".into())
        })?;
        let width = v.pointer("/vision_config/width").cloned().unwrap_or(Value::Null);
        let parse = |key: &str| -> Result<Value> {
            Ok(width.get(key).cloned().unwrap_or_else(|| Value::Object(Default::default())))
        };
        let mut sam: SamConfig = serde_json::from_value(parse("sam_vit_b")?)
            .map_err(|e| VisionError::Config(format!("vision_config.width.sam_vit_b: {e}")))?;
        let (clip, qwen2) = match arch {
            Architecture::Ocr1 => {
                let c: ClipConfig = serde_json::from_value(parse("clip-l-14-224")?)
                    .map_err(|e| VisionError::Config(format!("vision_config.width.clip-l-14-224: {e}")))?;
                (Some(c), None)
            }
            Architecture::Ocr2 => {
                let q: Qwen2EncoderConfig = serde_json::from_value(parse("qwen2-0-5b")?)
                    .map_err(|e| VisionError::Config(format!("vision_config.width.qwen2-0-5b: {e}")))?;
                // The real OCR-2 config leaves downsample_channels at the OCR-1 value while net_3
                // outputs the encoder width; the checkpoint is what counts.
                if sam.downsample_channels.len() == 2 && width.pointer("/sam_vit_b/downsample_channels").is_none() {
                    sam.downsample_channels[1] = q.dim;
                }
                (None, Some(q))
            }
        };
        let pc = v.get("projector_config");
        let hidden = v
            .get("hidden_size")
            .or_else(|| v.pointer("/language_config/hidden_size"))
            .and_then(Value::as_u64)
            .map(|x| x as usize);
        let n_embed = pc
            .and_then(|p| p.get("n_embed"))
            .and_then(Value::as_u64)
            .map(|x| x as usize)
            .or(hidden)
            .unwrap_or(DEFAULT_LLM_WIDTH);
        let default_input = match (&clip, &qwen2) {
            (Some(c), _) => c.width + sam.out_channels(),
            (_, Some(q)) => q.dim,
            _ => unreachable!("one encoder is always set"),
        };
        let input_dim =
            pc.and_then(|p| p.get("input_dim")).and_then(Value::as_u64).map(|x| x as usize).unwrap_or(default_input);
        if let Some(t) = pc.and_then(|p| p.get("projector_type")).and_then(Value::as_str) {
            if t != "linear" {
                return Err(VisionError::Config(format!(
                    "projector_type '{t}' is not supported (the released checkpoints use 'linear')"
                )));
            }
        }
        let cfg = VisionConfig { arch, sam, clip, qwen2, projector: ProjectorConfig { input_dim, n_embed } };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The real DeepSeek-OCR vision config (all defaults).
    pub fn deepseek_ocr() -> Self {
        Self::from_json_str(
            r#"{"vision_config":{"model_name":"deeplip_b_l"},"projector_config":{"input_dim":2048,"n_embed":1280}}"#,
        )
        .expect("built-in config")
    }

    /// The real DeepSeek-OCR-2 vision config (all defaults).
    pub fn deepseek_ocr2() -> Self {
        Self::from_json_str(
            r#"{"vision_config":{"model_name":"deepencoderv2","width":{"qwen2-0-5b":{"dim":896}}},
                "projector_config":{"input_dim":896,"n_embed":1280}}"#,
        )
        .expect("built-in config")
    }

    /// Width of the vectors this encoder emits (the decoder hidden size).
    pub fn llm_dim(&self) -> usize {
        self.projector.n_embed
    }

    fn validate(&self) -> Result<()> {
        let s = &self.sam;
        let bad = |m: String| Err(VisionError::Config(m));
        if s.heads == 0 || !s.width.is_multiple_of(s.heads) {
            return bad(format!("sam width {} not divisible by heads {}", s.width, s.heads));
        }
        if s.downsample_channels.len() != 2 {
            return bad(format!(
                "sam downsample_channels must have 2 entries (net_2, net_3), got {:?}",
                s.downsample_channels
            ));
        }
        if let Some(i) = s.global_attn_indexes.iter().find(|&&i| i >= s.layers) {
            return bad(format!("global_attn_indexes entry {i} >= layers {}", s.layers));
        }
        if let Some(c) = &self.clip {
            if c.heads == 0 || c.width % c.heads != 0 {
                return bad(format!("clip width {} not divisible by heads {}", c.width, c.heads));
            }
            if c.width != s.out_channels() {
                return bad(format!(
                    "CLIP consumes SAM features: clip width {} != net_3 channels {}",
                    c.width,
                    s.out_channels()
                ));
            }
            if self.projector.input_dim != c.width + s.out_channels() {
                return bad(format!(
                    "projector input_dim {} != clip {} + sam {}",
                    self.projector.input_dim,
                    c.width,
                    s.out_channels()
                ));
            }
        }
        if let Some(q) = &self.qwen2 {
            if q.heads == 0 || q.dim % q.heads != 0 || q.kv_heads == 0 || q.heads % q.kv_heads != 0 {
                return bad(format!("qwen2 encoder dim {} heads {} kv_heads {}", q.dim, q.heads, q.kv_heads));
            }
            if q.dim != s.out_channels() {
                return bad(format!("qwen2 encoder dim {} != net_3 channels {}", q.dim, s.out_channels()));
            }
            if self.projector.input_dim != q.dim {
                return bad(format!("projector input_dim {} != encoder dim {}", self.projector.input_dim, q.dim));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_defaults() {
        let c = VisionConfig::deepseek_ocr();
        assert_eq!(c.arch, Architecture::Ocr1);
        assert_eq!(c.sam.width, 768);
        assert_eq!(c.sam.mlp_dim(), 3072);
        assert_eq!(c.sam.out_grid(1024), 16);
        assert_eq!(c.sam.out_grid(640), 10);
        assert_eq!(c.clip.as_ref().unwrap().num_positions(), 257);
        assert_eq!(c.projector.input_dim, 2048);
        let c2 = VisionConfig::deepseek_ocr2();
        assert_eq!(c2.arch, Architecture::Ocr2);
        assert_eq!(c2.sam.out_channels(), 896);
        assert_eq!(c2.qwen2.as_ref().unwrap().head_dim(), 64);
    }

    #[test]
    fn rejects_inconsistent_widths() {
        let e = VisionConfig::from_json_str(
            r#"{"vision_config":{"model_name":"deeplip_b_l"},"projector_config":{"input_dim":100,"n_embed":8}}"#,
        );
        assert!(e.unwrap_err().to_string().contains("projector input_dim 100"));
    }

    #[test]
    fn one_detection_rule() {
        let detect = |t: &str| Architecture::detect(&serde_json::from_str(t).unwrap());
        assert_eq!(detect(r#"{"model_type":"deepseek_v2"}"#).unwrap(), None);
        let ocr1 = r#"{"model_type":"deepseek_vl_v2","vision_config":{"model_name":"deeplip_b_l"}}"#;
        assert_eq!(detect(ocr1).unwrap(), Some(Architecture::Ocr1));
        let ocr2 = r#"{"model_type":"deepseek_vl_v2","architectures":["DeepseekOCR2ForCausalLM"],"vision_config":{}}"#;
        assert_eq!(detect(ocr2).unwrap(), Some(Architecture::Ocr2));
        assert_eq!(detect(r#"{"vision_config":{"width":{"qwen2-0-5b":{}}}}"#).unwrap(), Some(Architecture::Ocr2));
        assert_eq!(detect(r#"{"vision_config":{"width":{"clip-l-14-224":{}}}}"#).unwrap(), Some(Architecture::Ocr1));
        assert!(detect(r#"{"model_type":"llava","vision_config":{"model_name":"siglip"}}"#).is_err());
        for a in Architecture::ALL {
            assert_eq!(a.short_name().parse::<Architecture>().unwrap(), a);
            assert_eq!(a.name().parse::<Architecture>().unwrap(), a);
        }
    }
}
