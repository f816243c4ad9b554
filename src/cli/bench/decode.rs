//! `docseek bench decode`: decoder prefill and decode speed at batch 1, and peak memory.
//!
//! Loads only the decoder of `--model` (a folder; e.g. `docseek dev random-checkpoint`), runs
//! a prefill of `--prompt-tokens` ids, then `--new-tokens` greedy steps with the KV cache, and
//! reports tokens/s, the median step time, peak RSS (VmHWM) against the weight bytes, and the
//! decode roofline of this machine measured in the same run (active weight bytes per token
//! over the read bandwidth of a 1 GiB sum), beside the PyTorch figures of perf-anchors.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use candle_core::{DType, Device, Tensor};

use crate::model::config::AttentionKind;
use crate::model::loader::open_weights;
use crate::model::{DeviceSpec, Dtype};
use crate::model::{DeepseekDecoder, DeepseekV2Config, LogitsFor, ModelConfig};

/// PyTorch 2.6 on the 2-core dev machine (perf-anchors.md): prefill trunk tok/s, decode tok/s.
const TORCH_F32: (f64, f64) = (195.0, 8.66);
/// Same, bf16.
const TORCH_BF16: (f64, f64) = (283.0, 9.03);
/// Bytes read by the bandwidth probe.
const PROBE_BYTES: usize = 1 << 30;

/// Arguments of `docseek bench decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeBenchArgs {
    /// Model folder (full-size random checkpoints come from `docseek dev random-checkpoint`).
    #[arg(long)]
    pub model: PathBuf,
    /// Weight dtype: f32, bf16 or f16 (default: the engine's default for the device).
    #[arg(long)]
    pub dtype: Option<Dtype>,
    /// Device: cpu or cuda[:N].
    #[arg(long, default_value_t = DeviceSpec::Cpu)]
    pub device: DeviceSpec,
    /// Prompt length of the prefill (903 = a Gundam A4 page's image slots).
    #[arg(long, default_value_t = 903)]
    pub prompt_tokens: usize,
    /// Greedy decode steps after the prefill.
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Batch sizes, e.g. `1,4,8,16`: sequences decoding together over the paged KV cache
    /// (see `decode_batch`); without it, the single-sequence bench.
    #[arg(long, value_delimiter = ',')]
    pub batch: Vec<usize>,
    /// KV cache budget in MiB for `--batch` [default: what the largest batch needs].
    #[arg(long)]
    pub kv_cache_mb: Option<usize>,
}

/// `VmHWM` and `VmRSS` of this process in bytes (Linux), or zeros.
pub fn peak_and_current_rss() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Decoder parameters one decode step reads: attention, the dense MLP or k routed experts +
/// shared experts + gate per layer, final norm, and the lm_head row block (not the embeddings).
pub fn active_params_per_token(c: &DeepseekV2Config) -> usize {
    let h = c.hidden_size;
    let attn = match c.attention_kind() {
        AttentionKind::Mha => {
            let hd = c.mha_head_dim();
            h * c.num_attention_heads * hd * 2 + h * c.kv_heads() * hd * 2
        }
        AttentionKind::Mla => {
            let heads = c.num_attention_heads;
            let rank = c.kv_lora_rank.unwrap_or(0);
            let q = match c.q_lora_rank {
                None => h * heads * c.q_head_dim(),
                Some(r) => h * r + r * heads * c.q_head_dim(),
            };
            q + h * (rank + c.qk_rope_head_dim) + rank * heads * (c.qk_nope_head_dim + c.v_head_dim) + heads * c.v_head_dim * h
        }
    };
    let mut total = c.vocab_size * h;
    for i in 0..c.num_hidden_layers {
        total += attn + 2 * h;
        total += if c.is_moe_layer(i) {
            let k = c.num_experts_per_tok.unwrap_or(0);
            let shared = c.n_shared_experts.unwrap_or(0);
            3 * h * c.moe_intermediate_size * (k + shared) + c.n_routed_experts.unwrap_or(0) * h
        } else {
            3 * h * c.intermediate_size
        };
    }
    total
}

/// Read bandwidth (bytes/s) of a sum over a 1 GiB f32 tensor, best of 3.
fn read_bandwidth(device: &Device) -> anyhow::Result<f64> {
    let t = Tensor::ones(PROBE_BYTES / 4, DType::F32, device)?;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let s = Instant::now();
        let v: f32 = t.sum_all()?.to_scalar()?;
        anyhow::ensure!(v > 0.0, "bandwidth probe returned {v}");
        best = best.min(s.elapsed().as_secs_f64());
    }
    Ok(PROBE_BYTES as f64 / best)
}

fn gb(b: f64) -> String {
    format!("{:.2} GB", b / 1e9)
}

/// Runs `docseek bench decode`.
pub fn run(args: DecodeBenchArgs) -> anyhow::Result<ExitCode> {
    if !args.batch.is_empty() {
        return super::decode_batch::run(&args);
    }
    let device = args.device.open()?;
    let dtype = args.dtype.unwrap_or_else(|| Dtype::default_for(&device)).candle();
    let cfg = ModelConfig::from_dir(&args.model).context("reading the model config")?;
    let dcfg = cfg.decoder.clone();
    anyhow::ensure!(args.prompt_tokens >= 1, "--prompt-tokens must be >= 1");
    anyhow::ensure!(
        args.prompt_tokens + args.new_tokens <= dcfg.max_position_embeddings,
        "prompt + new tokens exceed the model's {} positions",
        dcfg.max_position_embeddings
    );

    let bw = read_bandwidth(&device)?;
    let t = Instant::now();
    let vb = open_weights(&args.model, dtype, &device)?;
    let dec = DeepseekDecoder::load(&dcfg, vb)?;
    let load = t.elapsed();
    let (hwm_load, rss_load) = peak_and_current_rss();

    let params = crate::model::synth::decoder_tensor_specs(&dcfg).iter().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>();
    let weight_bytes = params * dtype.size_in_bytes();
    let active = active_params_per_token(&dcfg) * dtype.size_in_bytes();

    // Prompt ids spread over the vocabulary (the cost does not depend on the values).
    let ids: Vec<u32> = (0..args.prompt_tokens as u64).map(|i| ((i * 7919 + 13) % dcfg.vocab_size as u64) as u32).collect();
    let warm = dec.embed(&ids[..ids.len().min(16)])?;
    dec.forward(&warm, &mut dec.new_cache(16)?, LogitsFor::Last)?;

    let mut cache = dec.new_cache(args.prompt_tokens + args.new_tokens)?;
    let t = Instant::now();
    let logits = dec.forward(&dec.embed(&ids)?, &mut cache, LogitsFor::Last)?;
    let mut next = DeepseekDecoder::argmax(&logits)?;
    let prefill = t.elapsed();
    let (hwm_prefill, _) = peak_and_current_rss();

    let mut steps: Vec<Duration> = Vec::with_capacity(args.new_tokens);
    for _ in 0..args.new_tokens {
        let s = Instant::now();
        let logits = dec.forward(&dec.embed(&[next])?, &mut cache, LogitsFor::Last)?;
        next = DeepseekDecoder::argmax(&logits)?;
        steps.push(s.elapsed());
    }
    let (hwm, rss) = peak_and_current_rss();
    let decode_total: f64 = steps.iter().map(Duration::as_secs_f64).sum();
    let mut sorted = steps.clone();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).map_or(0.0, |d| d.as_secs_f64());
    let prefill_tps = args.prompt_tokens as f64 / prefill.as_secs_f64();
    let decode_tps = if decode_total > 0.0 { args.new_tokens as f64 / decode_total } else { 0.0 };
    let roof_tps = bw / (active as f64 + (cache.used_bytes() as f64));
    let (torch_prefill, torch_decode) = if dtype == DType::BF16 { TORCH_BF16 } else { TORCH_F32 };

    println!("decoder bench: {} ({:?}, {:?}, {} layers, hidden {})", args.model.display(), dtype, device, dcfg.num_hidden_layers, dcfg.hidden_size);
    println!("  weights            {} ({} params), active per decode token {}", gb(weight_bytes as f64), params, gb(active as f64));
    println!("  load               {:.1}s, RSS after load {} (peak {})", load.as_secs_f64(), gb(rss_load as f64), gb(hwm_load as f64));
    println!("  prefill            {} tokens in {:.2}s = {:.1} tok/s (PyTorch anchor {:.0} tok/s: x{:.2})", args.prompt_tokens, prefill.as_secs_f64(), prefill_tps, torch_prefill, prefill_tps / torch_prefill);
    println!("  decode             {} tokens = {:.2} tok/s, median {:.1} ms/token (PyTorch anchor {:.2} tok/s: x{:.2})", args.new_tokens, decode_tps, median * 1e3, torch_decode, decode_tps / torch_decode);
    println!("  decode roofline    {:.2} tok/s at {:.1} GB/s read bandwidth measured now: {:.0}% of roofline", roof_tps, bw / 1e9, 100.0 * decode_tps / roof_tps);
    println!("  KV cache           {} bytes/token, {} in use", dec.cache_bytes_per_token(), gb(cache.used_bytes() as f64));
    println!("  peak RSS (VmHWM)   {} after prefill, {} at end ({:.2}x weight bytes); RSS now {}", gb(hwm_prefill as f64), gb(hwm as f64), hwm as f64 / weight_bytes as f64, gb(rss as f64));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_params_match_the_perf_anchor_count() {
        let cfg = crate::model::synth::config_json(crate::model::synth::SynthArch::Ocr1, true);
        let c: DeepseekV2Config = serde_json::from_value(cfg["language_config"].clone()).unwrap();
        // perf-anchors.md: 303.7 M trunk + 165.5 M lm_head = 574 M (norms and gates included here).
        let a = active_params_per_token(&c) as f64 / 1e6;
        assert!((a - 574.0).abs() < 2.0, "{a}");
    }
}
