//! `docseek bench decode`: decoder prefill and decode speed at batch 1, and peak memory.
//!
//! Loads only the decoder of `--model` (a folder; e.g. `docseek dev random-checkpoint`) with
//! its weights stored per `--dtype` / `--quant`, runs a prefill of `--prompt-tokens` ids, then
//! `--new-tokens` greedy steps with the KV cache, and reports tokens/s, the median step time,
//! the load time, peak RSS (VmHWM) against the weight bytes, and the decode roofline of this
//! machine measured in the same run (active weight bytes per token in the chosen format plus
//! the KV cache read, over the read bandwidth), beside the PyTorch reference when
//! `--reference` names refbench's JSONL results of the same session.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use candle_core::DType;
use docseek_kernels::linear::Quant;

use super::roofline::{bytes_per_param, load_line, machine_line, process_cpu_seconds, read_bandwidth, reference};
use crate::model::config::AttentionKind;
use crate::model::loader::{check_quant, load_decoder};
use crate::model::{DeepseekDecoder, DeepseekV2Config, LogitsFor, ModelConfig};
use crate::model::{DeviceSpec, Dtype};

/// Arguments of `docseek bench decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeBenchArgs {
    /// Model folder (full-size random checkpoints come from `docseek dev random-checkpoint`).
    #[arg(long)]
    pub model: PathBuf,
    /// Weight dtype: f32, bf16 or f16 (default: the engine's default for the device).
    #[arg(long)]
    pub dtype: Option<Dtype>,
    /// Decoder weight storage: none, q8, q4 (CPU).
    #[arg(long)]
    pub quant: Option<Quant>,
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
    /// refbench results (JSONL) of this session: prefill and decode are also given as ratios
    /// to its `decode` line of the same prompt length (bf16 for bf16 and quantized runs).
    #[arg(long)]
    pub reference: Option<PathBuf>,
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
    let p = ActiveParams::of(c);
    p.linear + p.lm_head + p.other
}

/// One decode step's parameters by how they are stored.
#[derive(Debug, Clone, Copy)]
struct ActiveParams {
    /// Linear weights `--quant` applies to (attention projections, MLPs, experts).
    linear: usize,
    /// The output layer.
    lm_head: usize,
    /// Norms, the MoE gates (kept in f32) and MLA's absorbed `kv_b_proj` (model dtype).
    other: usize,
    /// The gates' share of `other`.
    gates: usize,
}

impl ActiveParams {
    fn of(c: &DeepseekV2Config) -> Self {
        let h = c.hidden_size;
        let (attn, attn_other) = match c.attention_kind() {
            AttentionKind::Mha => {
                let hd = c.mha_head_dim();
                (h * c.num_attention_heads * hd * 2 + h * c.kv_heads() * hd * 2, 0)
            }
            AttentionKind::Mla => {
                let heads = c.num_attention_heads;
                let rank = c.kv_lora_rank.unwrap_or(0);
                let q = match c.q_lora_rank {
                    None => h * heads * c.q_head_dim(),
                    Some(r) => h * r + r * heads * c.q_head_dim(),
                };
                (
                    q + h * (rank + c.qk_rope_head_dim) + heads * c.v_head_dim * h,
                    rank * heads * (c.qk_nope_head_dim + c.v_head_dim),
                )
            }
        };
        let (mut linear, mut other, mut gates) = (0, h, 0);
        for i in 0..c.num_hidden_layers {
            linear += attn;
            other += attn_other + 2 * h;
            if c.is_moe_layer(i) {
                let k = c.num_experts_per_tok.unwrap_or(0);
                let shared = c.n_shared_experts.unwrap_or(0);
                linear += 3 * h * c.moe_intermediate_size * (k + shared);
                gates += c.n_routed_experts.unwrap_or(0) * h;
            } else {
                linear += 3 * h * c.intermediate_size;
            }
        }
        ActiveParams { linear, lm_head: c.vocab_size * h, other: other + gates, gates }
    }

    /// Bytes read per token with weights stored per `quant` in `dtype`.
    fn bytes(&self, quant: Quant, dtype: DType) -> f64 {
        let lm_quant = if quant == Quant::Q4 { Quant::Q8 } else { quant };
        self.linear as f64 * bytes_per_param(quant, dtype)
            + self.lm_head as f64 * bytes_per_param(lm_quant, dtype)
            + self.gates as f64 * 4.0
            + (self.other - self.gates) as f64 * dtype.size_in_bytes() as f64
    }
}

/// Bytes of every decoder weight stored per `quant` in `dtype` (gates in f32).
fn weight_bytes(c: &DeepseekV2Config, quant: Quant, dtype: DType) -> f64 {
    let lm_quant = if quant == Quant::Q4 { Quant::Q8 } else { quant };
    crate::model::synth::decoder_tensor_specs(c)
        .iter()
        .map(|(name, shape)| {
            let n = shape.iter().product::<usize>() as f64;
            let per = if name.ends_with("mlp.gate.weight") {
                4.0
            } else if name == "lm_head.weight" {
                bytes_per_param(lm_quant, dtype)
            } else if shape.len() == 2 && !name.contains("embed_tokens") && !name.contains("kv_b_proj") {
                bytes_per_param(quant, dtype)
            } else {
                dtype.size_in_bytes() as f64
            };
            n * per
        })
        .sum()
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
    let quant = check_quant(args.quant, &device)?;
    let cfg = ModelConfig::from_dir(&args.model).context("reading the model config")?;
    let dcfg = cfg.decoder.clone();
    anyhow::ensure!(args.prompt_tokens >= 1, "--prompt-tokens must be >= 1");
    anyhow::ensure!(
        args.prompt_tokens + args.new_tokens <= dcfg.max_position_embeddings,
        "prompt + new tokens exceed the model's {} positions",
        dcfg.max_position_embeddings
    );
    let load_before = load_line();
    let (warm_bytes, warm_s) = super::roofline::warm_page_cache(&args.model)?;
    let (bw_candle, bw_threads) = read_bandwidth(&device)?;
    // The threaded probe reads host memory: on a GPU only the device probe (a candle sum, a
    // lower bound of the device's bandwidth) says anything about the weights' memory.
    let bw = if device.is_cpu() { bw_candle.max(bw_threads) } else { bw_candle };

    let t = Instant::now();
    let dec = load_decoder(&args.model, &dcfg, dtype, &device, quant)?;
    let load = t.elapsed();
    let (hwm_load, rss_load) = peak_and_current_rss();

    let params = crate::model::synth::decoder_tensor_specs(&dcfg)
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum::<usize>();
    let wbytes = weight_bytes(&dcfg, quant, dtype);
    let active = ActiveParams::of(&dcfg).bytes(quant, dtype);

    // Prompt ids spread over the vocabulary (the cost does not depend on the values).
    let ids: Vec<u32> =
        (0..args.prompt_tokens as u64).map(|i| ((i * 7919 + 13) % dcfg.vocab_size as u64) as u32).collect();
    let warm = dec.embed(&ids[..ids.len().min(16)])?;
    dec.forward(&warm, &mut dec.new_cache(16)?, LogitsFor::Last)?;

    let mut cache = dec.new_cache(args.prompt_tokens + args.new_tokens)?;
    let cpu0 = process_cpu_seconds();
    let t = Instant::now();
    let logits = dec.forward(&dec.embed(&ids)?, &mut cache, LogitsFor::Last)?;
    let mut next = DeepseekDecoder::argmax(&logits)?;
    let prefill = t.elapsed();
    let (hwm_prefill, _) = peak_and_current_rss();
    let cpu1 = process_cpu_seconds();

    let mut steps: Vec<Duration> = Vec::with_capacity(args.new_tokens);
    for _ in 0..args.new_tokens {
        let s = Instant::now();
        let logits = dec.forward(&dec.embed(&[next])?, &mut cache, LogitsFor::Last)?;
        next = DeepseekDecoder::argmax(&logits)?;
        steps.push(s.elapsed());
    }
    let (hwm, rss) = peak_and_current_rss();
    let cpu2 = process_cpu_seconds();
    let decode_total: f64 = steps.iter().map(Duration::as_secs_f64).sum();
    let mut sorted = steps.clone();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).map_or(0.0, |d| d.as_secs_f64());
    let prefill_tps = args.prompt_tokens as f64 / prefill.as_secs_f64();
    let decode_tps = if decode_total > 0.0 { args.new_tokens as f64 / decode_total } else { 0.0 };
    let kv = cache.used_bytes() as f64;
    let roof_tps = bw / (active + kv);

    let label = match quant {
        Quant::None => format!("{dtype:?}"),
        q => format!("{dtype:?} activations, {q} weights"),
    };
    println!(
        "decoder bench: {} ({label}, {:?}, {} layers, hidden {})",
        args.model.display(),
        device,
        dcfg.num_hidden_layers,
        dcfg.hidden_size
    );
    println!("  machine            {}; {load_before} before, {} after", machine_line(), load_line());
    println!("  weights            {} ({params} params), active per decode token {}", gb(wbytes), gb(active));
    println!("  page cache         warmed: {} read in {warm_s:.1}s before the load", gb(warm_bytes as f64));
    println!(
        "  load               {:.2}s, RSS after load {} (peak {})",
        load.as_secs_f64(),
        gb(rss_load as f64),
        gb(hwm_load as f64)
    );
    println!(
        "  prefill            {} tokens in {:.2}s = {:.1} tok/s",
        args.prompt_tokens,
        prefill.as_secs_f64(),
        prefill_tps
    );
    println!(
        "  decode             {} tokens = {:.2} tok/s, median {:.1} ms/token",
        args.new_tokens,
        decode_tps,
        median * 1e3
    );
    if device.is_cpu() {
        println!(
            "  decode roofline    {:.2} tok/s at {:.1} GB/s (probes: candle sum {:.1}, threaded read {:.1} GB/s): {:.0}% of roofline",
            roof_tps,
            bw / 1e9,
            bw_candle / 1e9,
            bw_threads / 1e9,
            100.0 * decode_tps / roof_tps
        );
    } else {
        println!(
            "  decode roofline    not measured on {device:?}: a candle sum reads {:.0} GB/s there (a lower bound); \
             state the share of the device's nominal bandwidth (bench-gpu.sh: H200, 4.8 TB/s)",
            bw / 1e9
        );
    }
    // On a loaded machine the wall time includes waiting for a CPU; the CPU time does not
    // (it does include the kernel workers' short spin between calls).
    println!(
        "  CPU time           prefill {:.2} CPU-s, decode {:.1} CPU-ms/token (all threads)",
        cpu1 - cpu0,
        (cpu2 - cpu1) * 1e3 / args.new_tokens.max(1) as f64
    );
    println!("  KV cache           {} bytes/token, {} in use", dec.cache_bytes_per_token(), gb(kv));
    println!(
        "  peak RSS (VmHWM)   {} after prefill, {} at end ({:.2}x weight bytes); RSS now {}",
        gb(hwm_prefill as f64),
        gb(hwm as f64),
        hwm as f64 / wbytes,
        gb(rss as f64)
    );
    if let Some(file) = &args.reference {
        let rdtype = if dtype == DType::F32 && quant == Quant::None { "f32" } else { "bf16" };
        match reference(file, "decode", &[("dtype", rdtype.into()), ("prompt_len", args.prompt_tokens.into())])? {
            Some(r) => {
                let (rp, rd) = (r["prefill_tok_s"].as_f64().unwrap_or(0.0), r["decode_tok_s"].as_f64().unwrap_or(0.0));
                println!(
                    "  PyTorch {rdtype}       prefill {rp:.1} tok/s (docseek x{:.2}), decode {rd:.2} tok/s (docseek x{:.2}); {}",
                    prefill_tps / rp,
                    decode_tps / rd,
                    file.display()
                );
            }
            None => println!(
                "  PyTorch            no {rdtype} decode line with prompt_len {} in {}",
                args.prompt_tokens,
                file.display()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ocr1() -> DeepseekV2Config {
        let cfg = crate::model::synth::config_json(crate::model::synth::SynthArch::Ocr1, true);
        serde_json::from_value(cfg["language_config"].clone()).unwrap()
    }

    #[test]
    fn active_params_match_the_perf_anchor_count() {
        // perf-anchors.md: 303.7 M trunk + 165.5 M lm_head = 574 M (norms and gates included here).
        let a = active_params_per_token(&ocr1()) as f64 / 1e6;
        assert!((a - 574.0).abs() < 2.0, "{a}");
    }

    #[test]
    fn quantized_formats_read_fewer_bytes() {
        let p = ActiveParams::of(&ocr1());
        let bf16 = p.bytes(Quant::None, DType::BF16);
        let q8 = p.bytes(Quant::Q8, DType::BF16);
        let q4 = p.bytes(Quant::Q4, DType::BF16);
        assert!((bf16 / 1e9 - 1.15).abs() < 0.02, "{bf16}");
        assert!(q8 < 0.56 * bf16 && q4 < q8 && q4 > 0.3 * bf16, "{bf16} {q8} {q4}");
    }
}
