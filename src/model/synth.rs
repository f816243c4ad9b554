//! Synthetic checkpoints for tests and benchmarks: DeepSeek-OCR / OCR-2 shaped folders
//! (`config.json`, `model.safetensors` with the official names, `tokenizer.json`) filled with
//! seeded random weights.
//!
//! - tiny: the fixtures' tiny dimensions (hidden 64, 3 layers, 8 experts top-2, tiny SAM and
//!   CLIP / Qwen2) but the **real vocabulary size and special-token ids** (BOS 0, EOS 1, pad 2,
//!   `<image>` 128815, `<|ref|>` 128816 ... `</tr>` 128824), so prompts, the `<td>` whitelist and
//!   raw output parsing behave as with the real model. A few MB on disk; loads in well under a
//!   second.
//! - full: the released models' dimensions (3.3 B parameters), for benchmarks.
//!
//! Weights: matrices `N(0, 1 / sqrt(fan_in))`, norm scales `1 + N(0, 0.1)`, biases
//! `N(0, 0.02)`, embeddings and learned vectors `N(0, 1)`. Values come from a seeded pool of
//! normals read cyclically from a per-tensor offset derived from (seed, name): reproducible,
//! fast even in debug builds, and written one tensor at a time (memory stays at one tensor,
//! even for the 6.7 GB full checkpoint).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};

use super::config::DeepseekV2Config;
use super::ModelError;

/// Which OCR family to imitate: the workspace's one architecture type (this name stays for
/// the callers that used it).
pub use docseek_vision::Architecture as SynthArch;

/// Weight file dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthDtype {
    /// 4-byte floats.
    F32,
    /// bfloat16, as the released checkpoints.
    Bf16,
}

/// Vocabulary size of the released models (the tokenizer uses 128827 ids; the rest is padding).
pub const REAL_VOCAB_SIZE: usize = 129280;

/// The special tokens of the DeepSeek-OCR tokenizer with their real ids.
pub use super::tokens::SPECIAL_TOKENS;

/// First id of the byte tokens of the tiny tokenizer (after BOS, EOS, pad).
const FIRST_BYTE_ID: u32 = 3;

fn decoder_json(
    hidden: usize,
    layers: usize,
    heads: usize,
    inter: usize,
    moe_inter: usize,
    experts: usize,
    top_k: usize,
) -> Value {
    json!({
        "bos_token_id": 0, "eos_token_id": 1, "first_k_dense_replace": 1,
        "hidden_size": hidden, "intermediate_size": inter, "kv_lora_rank": null, "lm_head": true,
        "max_position_embeddings": 8192, "moe_intermediate_size": moe_inter, "n_group": 1,
        "n_routed_experts": experts, "n_shared_experts": 2, "num_attention_heads": heads,
        "num_experts_per_tok": top_k, "num_hidden_layers": layers, "num_key_value_heads": heads,
        "q_lora_rank": null, "qk_nope_head_dim": 0, "qk_rope_head_dim": 0, "rm_head": false,
        "topk_group": 1, "topk_method": "greedy", "use_mla": false, "v_head_dim": 0,
        "vocab_size": REAL_VOCAB_SIZE
    })
}

/// A `config.json` in the official layout (language keys both top-level and under
/// `language_config`, as the released files have them).
pub fn config_json(arch: SynthArch, full: bool) -> Value {
    let lang = if full { decoder_json(1280, 12, 10, 6848, 896, 64, 6) } else { decoder_json(64, 3, 4, 128, 32, 8, 2) };
    let sam = if full {
        let down = if arch == SynthArch::Ocr1 { json!([512, 1024]) } else { json!([512, 896]) };
        json!({"downsample_channels": down, "global_attn_indexes": [2, 5, 8, 11], "heads": 12, "layers": 12, "width": 768})
    } else {
        let down = if arch == SynthArch::Ocr1 { json!([32, 48]) } else { json!([32, 64]) };
        json!({"downsample_channels": down, "global_attn_indexes": [1, 3], "heads": 2, "layers": 4, "width": 32,
               "neck_channels": 16, "patch_size": 16, "image_size": 1024, "window_size": 14, "mlp_ratio": 4.0})
    };
    let hidden = lang["hidden_size"].clone();
    let (model_name, arch_name, width, input_dim) = match (arch, full) {
        (SynthArch::Ocr1, true) => (
            "deeplip_b_l",
            "DeepseekOCRForCausalLM",
            json!({"clip-l-14-224": {"heads": 16, "image_size": 224, "layers": 24, "patch_size": 14, "width": 1024}, "sam_vit_b": sam}),
            2048,
        ),
        (SynthArch::Ocr1, false) => (
            "deeplip_b_l",
            "DeepseekOCRForCausalLM",
            json!({"clip-l-14-224": {"heads": 4, "image_size": 224, "layers": 2, "patch_size": 14, "width": 48, "ffn_hidden_size": 192}, "sam_vit_b": sam}),
            96,
        ),
        (SynthArch::Ocr2, true) => {
            ("deepencoderv2", "DeepseekOCR2ForCausalLM", json!({"qwen2-0-5b": {"dim": 896}, "sam_vit_b": sam}), 896)
        }
        (SynthArch::Ocr2, false) => (
            "deepencoderv2",
            "DeepseekOCR2ForCausalLM",
            json!({"qwen2-0-5b": {"dim": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate_size": 128,
                                  "rope_theta": 1000000.0, "rms_norm_eps": 1e-6}, "sam_vit_b": sam}),
            64,
        ),
    };
    let mut cfg = json!({
        "_name_or_path": format!("docseek-synthetic/{}-{}", arch.short_name(), if full { "full" } else { "tiny" }),
        "architectures": [arch_name],
        "candidate_resolutions": [[1024, 1024]],
        "global_view_pos": "head",
        "language_config": lang.clone(),
        "model_type": "deepseek_vl_v2",
        "projector_config": {"input_dim": input_dim, "model_type": "mlp_projector", "n_embed": hidden, "projector_type": "linear"},
        "tile_tag": "2D",
        "torch_dtype": "bfloat16",
        "vision_config": {"image_size": 1024, "mlp_ratio": 3.7362, "model_name": model_name, "model_type": "vision", "width": width},
        "image_token_id": super::tokens::IMAGE_ID
    });
    if let (Some(obj), Some(l)) = (cfg.as_object_mut(), lang.as_object()) {
        for (k, v) in l {
            obj.insert(k.clone(), v.clone());
        }
    }
    cfg
}

/// Official names and shapes of the decoder tensors of `cfg`.
pub fn decoder_tensor_specs(cfg: &DeepseekV2Config) -> Vec<(String, Vec<usize>)> {
    let h = cfg.hidden_size;
    let mut v = vec![
        ("model.embed_tokens.weight".to_string(), vec![cfg.vocab_size, h]),
        ("model.norm.weight".to_string(), vec![h]),
        ("lm_head.weight".to_string(), vec![cfg.vocab_size, h]),
    ];
    let mlp = |v: &mut Vec<(String, Vec<usize>)>, p: String, inter: usize| {
        v.push((format!("{p}.gate_proj.weight"), vec![inter, h]));
        v.push((format!("{p}.up_proj.weight"), vec![inter, h]));
        v.push((format!("{p}.down_proj.weight"), vec![h, inter]));
    };
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        v.push((format!("{p}.input_layernorm.weight"), vec![h]));
        v.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
        let a = format!("{p}.self_attn");
        match cfg.attention_kind() {
            super::config::AttentionKind::Mha => {
                let (hd, heads, kvh) = (cfg.mha_head_dim(), cfg.num_attention_heads, cfg.kv_heads());
                v.push((format!("{a}.q_proj.weight"), vec![heads * hd, h]));
                v.push((format!("{a}.k_proj.weight"), vec![kvh * hd, h]));
                v.push((format!("{a}.v_proj.weight"), vec![kvh * hd, h]));
                v.push((format!("{a}.o_proj.weight"), vec![h, heads * hd]));
            }
            super::config::AttentionKind::Mla => {
                let heads = cfg.num_attention_heads;
                let rank = cfg.kv_lora_rank.unwrap_or(0);
                let qhd = cfg.q_head_dim();
                match cfg.q_lora_rank {
                    None => v.push((format!("{a}.q_proj.weight"), vec![heads * qhd, h])),
                    Some(r) => {
                        v.push((format!("{a}.q_a_proj.weight"), vec![r, h]));
                        v.push((format!("{a}.q_a_layernorm.weight"), vec![r]));
                        v.push((format!("{a}.q_b_proj.weight"), vec![heads * qhd, r]));
                    }
                }
                v.push((format!("{a}.kv_a_proj_with_mqa.weight"), vec![rank + cfg.qk_rope_head_dim, h]));
                v.push((format!("{a}.kv_a_layernorm.weight"), vec![rank]));
                v.push((format!("{a}.kv_b_proj.weight"), vec![heads * (cfg.qk_nope_head_dim + cfg.v_head_dim), rank]));
                v.push((format!("{a}.o_proj.weight"), vec![h, heads * cfg.v_head_dim]));
            }
        }
        if cfg.is_moe_layer(i) {
            let e = cfg.n_routed_experts.unwrap_or(0);
            v.push((format!("{p}.mlp.gate.weight"), vec![e, h]));
            for x in 0..e {
                mlp(&mut v, format!("{p}.mlp.experts.{x}"), cfg.moe_intermediate_size);
            }
            if let Some(s) = cfg.n_shared_experts.filter(|&s| s > 0) {
                mlp(&mut v, format!("{p}.mlp.shared_experts"), cfg.moe_intermediate_size * s);
            }
        } else {
            mlp(&mut v, format!("{p}.mlp"), cfg.intermediate_size);
        }
    }
    v
}

/// SplitMix64 stream with Box-Muller normals.
struct Normals {
    state: u64,
    spare: Option<f64>,
}

impl Normals {
    fn new(seed: u64, name: &str) -> Self {
        // FNV-1a of the name, mixed with the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Normals { state: h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), spare: None }
    }

    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn next(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }
}

/// `(mean, std)` of a tensor's init, chosen from its name and shape.
fn init_for(name: &str, shape: &[usize]) -> (f64, f64) {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    let is_norm = name.contains("norm") || name.contains("neck.1") || name.contains("neck.3");
    if is_norm && leaf == "weight" {
        (1.0, 0.1)
    } else if leaf == "bias" || is_norm {
        (0.0, 0.02)
    } else if name.contains("pos_embed") || name.contains("rel_pos") {
        (0.0, 0.3)
    } else if shape.len() <= 1 || name.contains("embed_tokens") || name.contains("embedding") || name.contains("query_")
    {
        (0.0, 1.0)
    } else {
        let fan_in: usize = shape[1..].iter().product();
        (0.0, 1.0 / (fan_in.max(1) as f64).sqrt())
    }
}

/// Normals per pool. Tensors read the pool cyclically from a per-tensor offset: a prime
/// length, so consecutive rows of a matrix never line up with the same values.
const POOL_LEN: usize = 65_537;

/// A tensor whose bytes are generated when the writer asks for them.
struct LazyTensor {
    name: String,
    shape: Vec<usize>,
    dtype: SynthDtype,
    seed: u64,
    pool: std::sync::Arc<Vec<f32>>,
    /// Per-row factors (for `lm_head.weight`), see [`lm_head_row_scale`].
    row_scale: Option<std::sync::Arc<Vec<f32>>>,
}

impl LazyTensor {
    fn values(&self) -> candle_core::Result<candle_core::Tensor> {
        let n: usize = self.shape.iter().product();
        let (mean, std) = init_for(&self.name, &self.shape);
        let start = (Normals::new(self.seed, &self.name).uniform() * POOL_LEN as f64) as usize % POOL_LEN;
        let mut v = Vec::with_capacity(n);
        let mut pos = start;
        while v.len() < n {
            let take = (POOL_LEN - pos).min(n - v.len());
            v.extend_from_slice(&self.pool[pos..pos + take]);
            pos = 0;
        }
        let dtype = match self.dtype {
            SynthDtype::F32 => candle_core::DType::F32,
            SynthDtype::Bf16 => candle_core::DType::BF16,
        };
        let mut t =
            candle_core::Tensor::from_vec(v, self.shape.clone(), &candle_core::Device::Cpu)?.affine(std, mean)?;
        if let Some(scale) = &self.row_scale {
            let rows = self.shape[0];
            t = t.broadcast_mul(&candle_core::Tensor::from_slice(
                &scale[..rows],
                (rows, 1),
                &candle_core::Device::Cpu,
            )?)?;
        }
        t.to_dtype(dtype)
    }
}

impl safetensors::View for LazyTensor {
    fn dtype(&self) -> safetensors::Dtype {
        match self.dtype {
            SynthDtype::F32 => safetensors::Dtype::F32,
            SynthDtype::Bf16 => safetensors::Dtype::BF16,
        }
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        // Building the values only fails on allocation; the writer then sees a short buffer.
        match self.values() {
            Ok(t) => Cow::Owned(safetensors::View::data(&t).into_owned()),
            Err(_) => Cow::Owned(Vec::new()),
        }
    }

    fn data_len(&self) -> usize {
        let per = match self.dtype {
            SynthDtype::F32 => 4,
            SynthDtype::Bf16 => 2,
        };
        self.shape.iter().product::<usize>() * per
    }
}

/// Row factors of a tiny checkpoint's `lm_head`: 1 for the ids its tokenizer defines (bytes
/// and special tokens), 0 for the padding ids it does not (so generated ids decode to text),
/// 0.1 for EOS (as in the reference fixtures: random weights should not stop at once).
pub fn lm_head_row_scale(vocab: usize) -> Vec<f32> {
    let mut scale = vec![0f32; vocab];
    let bytes = FIRST_BYTE_ID as usize..FIRST_BYTE_ID as usize + 256;
    for id in bytes.chain(SPECIAL_TOKENS.iter().map(|&(_, id)| id as usize)) {
        if id < vocab {
            scale[id] = 1.0;
        }
    }
    if let Some(eos) = SPECIAL_TOKENS.iter().find(|(t, _)| t.contains("end▁of▁sentence")).map(|&(_, id)| id as usize)
    {
        scale[eos] = 0.1;
    }
    scale
}

/// Writes `specs` as `path` (one safetensors file), generating each tensor on demand;
/// `lm_head_scale` multiplies the rows of `lm_head.weight`.
pub fn write_weights(
    path: &Path,
    specs: &[(String, Vec<usize>)],
    dtype: SynthDtype,
    seed: u64,
    lm_head_scale: Option<Vec<f32>>,
) -> Result<(), ModelError> {
    let mut rng = Normals::new(seed, "pool");
    let pool = std::sync::Arc::new((0..POOL_LEN).map(|_| rng.next() as f32).collect::<Vec<f32>>());
    let lm_head_scale = lm_head_scale.map(std::sync::Arc::new);
    let tensors = specs.iter().map(|(name, shape)| {
        let row_scale = if name == "lm_head.weight" { lm_head_scale.clone() } else { None };
        (
            name.clone(),
            LazyTensor { name: name.clone(), shape: shape.clone(), dtype, seed, pool: pool.clone(), row_scale },
        )
    });
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    safetensors::serialize_to_file(tensors, Some(meta), path)
        .map_err(|e| ModelError::Fetch(format!("writing {}: {e}", path.display())))
}

/// The GPT-2 byte-to-unicode table used by byte-level BPE.
fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    let mut table = vec!['\0'; 256];
    for (b, c) in printable.iter().zip(chars) {
        table[*b as usize] = char::from_u32(c).unwrap_or('?');
    }
    table
}

/// A small byte-level BPE `tokenizer.json`: one token per byte (ids 3..=258, no merges) plus
/// the real special tokens at their real ids. Real text round-trips through it.
pub fn tiny_tokenizer_json() -> Value {
    let chars = byte_chars();
    // Special tokens must also be in the model vocabulary: `tokenizers` gives an added token
    // the model's id for its content, and a fresh id otherwise.
    let vocab: serde_json::Map<String, Value> = chars
        .iter()
        .enumerate()
        .map(|(b, c)| (c.to_string(), json!(FIRST_BYTE_ID + b as u32)))
        .chain(SPECIAL_TOKENS.iter().map(|(t, id)| (t.to_string(), json!(id))))
        .collect();
    let added: Vec<Value> = SPECIAL_TOKENS
        .iter()
        .map(|(t, id)| json!({"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": []}
    })
}

/// Writes `config.json` and `tokenizer.json` into `dir` (created if needed).
pub fn write_config_and_tokenizer(dir: &Path, config: &Value) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir)?;
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    std::fs::write(dir.join("config.json"), pretty(config))?;
    std::fs::write(dir.join("tokenizer.json"), pretty(&tiny_tokenizer_json()))?;
    Ok(())
}

/// What [`write_checkpoint`] wrote.
#[derive(Debug, Clone)]
pub struct CheckpointSummary {
    /// Tensors written.
    pub tensors: usize,
    /// Parameters written.
    pub params: usize,
    /// Size of `model.safetensors`.
    pub bytes: u64,
    /// Whether the vision tower's tensors are included.
    pub with_vision: bool,
}

/// Writes a synthetic checkpoint folder: `config.json`, `tokenizer.json`, `model.safetensors`
/// (decoder tensors, plus `vision` when given: the vision tower's official names and shapes).
pub fn write_checkpoint(
    dir: &Path,
    arch: SynthArch,
    full: bool,
    dtype: SynthDtype,
    seed: u64,
    vision: &[(String, Vec<usize>)],
) -> Result<CheckpointSummary, ModelError> {
    let config = config_json(arch, full);
    write_config_and_tokenizer(dir, &config)?;
    let dec: DeepseekV2Config =
        serde_json::from_value(config["language_config"].clone()).map_err(|e| ModelError::Config(e.to_string()))?;
    let mut specs = decoder_tensor_specs(&dec);
    specs.extend_from_slice(vision);
    let path = dir.join("model.safetensors");
    let scale = (!full).then(|| lm_head_row_scale(dec.vocab_size));
    write_weights(&path, &specs, dtype, seed, scale)?;
    Ok(CheckpointSummary {
        tensors: specs.len(),
        params: specs.iter().map(|(_, s)| s.iter().product::<usize>()).sum(),
        bytes: std::fs::metadata(&path)?.len(),
        with_vision: !vision.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_keeps_special_ids_and_round_trips_text() {
        let tok = tokenizers::Tokenizer::from_bytes(tiny_tokenizer_json().to_string().as_bytes()).unwrap();
        let text = "\n<|grounding|>Convert the document to markdown. é 委 <td>x</td>";
        let enc = tok.encode(text, false).unwrap();
        let ids = enc.get_ids();
        assert!(ids.contains(&128820) && ids.contains(&128821) && ids.contains(&128822), "{ids:?}");
        assert_eq!(tok.decode(ids, false).unwrap(), text);
        assert_eq!(tok.token_to_id("<image>"), Some(128815));
    }

    #[test]
    fn full_config_counts_match_the_released_model() {
        let cfg = config_json(SynthArch::Ocr1, true);
        let dec: DeepseekV2Config = serde_json::from_value(cfg["language_config"].clone()).unwrap();
        let params: usize = decoder_tensor_specs(&dec).iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        // LM parameters of the released DeepSeek-OCR checkpoint.
        assert_eq!(params, 2_934_734_080);
    }
}
