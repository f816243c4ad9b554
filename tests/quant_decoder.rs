//! The decoder with bf16 and quantized (q8, q4) weights on the CPU kernels: logits close to
//! the f32 decoder of the same checkpoint, the saved quantized form loading to the same
//! weights as quantizing at load, a stale saved form ignored, and the q8 greedy ids on the
//! public fixtures (see `q8_greedy_ids_on_the_public_fixtures` for what is asserted and why).

use std::path::PathBuf;

use candle_core::{DType, Device};
use docseek::model::loader::{load_decoder, open_weights, quantize_to_file};
use docseek::model::quant_store::{saved_path, SavedQuant};
use docseek::model::synth::{decoder_tensor_specs, write_weights, SynthDtype};
use docseek::model::weights::StreamingSafetensors;
use docseek::model::{DeepseekDecoder, DeepseekV2Config, LogitsFor};
use docseek::parity::{runner, ParityOptions};
use docseek_kernels::linear::Quant;

/// MHA, dense first layer, MoE with shared experts; widths multiples of 64 and not.
const CONFIG: &str = r#"{"vocab_size": 300, "hidden_size": 128, "intermediate_size": 200, "moe_intermediate_size": 96,
  "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4, "n_shared_experts": 2,
  "n_routed_experts": 8, "num_experts_per_tok": 2, "first_k_dense_replace": 1, "use_mla": false,
  "kv_lora_rank": null, "q_lora_rank": null, "topk_method": "greedy", "max_position_embeddings": 4096,
  "bos_token_id": 0, "eos_token_id": 1}"#;

fn checkpoint() -> (tempfile::TempDir, DeepseekV2Config) {
    let cfg = DeepseekV2Config::from_json(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_weights(&dir.path().join("model.safetensors"), &decoder_tensor_specs(&cfg), SynthDtype::Bf16, 7, None)
        .unwrap();
    (dir, cfg)
}

fn logits(dec: &DeepseekDecoder, n: usize) -> Vec<f32> {
    let ids: Vec<u32> = (0..n as u32).map(|i| 2 + (i * 37) % 290).collect();
    let mut cache = dec.new_cache(n).unwrap();
    let l = dec.forward(&dec.embed(&ids).unwrap(), &mut cache, LogitsFor::All).unwrap();
    l.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn every_format_stays_close_to_f32() {
    let (dir, cfg) = checkpoint();
    let f32_dec = DeepseekDecoder::load(&cfg, open_weights(dir.path(), DType::F32, &Device::Cpu).unwrap()).unwrap();
    // 12 tokens: prefill through the GEMM and the grouped MoE; 1 token: the GEMV paths.
    for n in [12, 1] {
        let want = logits(&f32_dec, n);
        for (dtype, quant, tol) in [
            (DType::BF16, Quant::None, 0.05),
            (DType::F32, Quant::Q8, 0.05),
            (DType::BF16, Quant::Q8, 0.08),
            (DType::F32, Quant::Q4, 0.3),
        ] {
            let dec = load_decoder(dir.path(), &cfg, dtype, &Device::Cpu, quant).unwrap();
            let e = rel(&logits(&dec, n), &want);
            assert!(e < tol, "{dtype:?} {quant} n={n}: rel err {e}");
        }
    }
}

#[test]
fn saved_quantized_form_loads_the_same_weights_and_stale_files_are_ignored() {
    let (dir, cfg) = checkpoint();
    for quant in [Quant::Q8, Quant::Q4] {
        let fresh = load_decoder(dir.path(), &cfg, DType::F32, &Device::Cpu, quant).unwrap();
        let (path, bytes) = quantize_to_file(dir.path(), &cfg, quant, None).unwrap();
        assert_eq!(path, saved_path(dir.path(), quant));
        assert!(bytes > 0 && path.is_file());
        let saved = load_decoder(dir.path(), &cfg, DType::F32, &Device::Cpu, quant).unwrap();
        assert_eq!(logits(&saved, 5), logits(&fresh, 5), "{quant}: saved form differs from quantizing at load");
        let store = StreamingSafetensors::open(&[dir.path().join("model.safetensors")]).unwrap();
        assert!(SavedQuant::open(&path, quant, store.fingerprint()).unwrap().is_some());
        assert!(SavedQuant::open(&path, quant, "other weights").unwrap().is_none());
        let other = if quant == Quant::Q8 { Quant::Q4 } else { Quant::Q8 };
        assert!(SavedQuant::open(&path, other, store.fingerprint()).unwrap().is_none());
    }
}

fn fixtures_root() -> PathBuf {
    let root = std::env::var_os("DOCSEEK_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        ["../shared/fixtures", "../../shared/fixtures"]
            .iter()
            .map(|c| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(c))
            .find(|c| c.is_dir())
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"))
    });
    assert!(root.is_dir(), "parity fixtures not found at {} (set DOCSEEK_FIXTURES)", root.display());
    root
}

/// Greedy id sequences of a parity run: (name, length of the prefix equal to the reference).
fn greedy_prefixes(opts: &ParityOptions) -> Vec<(String, usize, usize)> {
    let report = runner::run(&fixtures_root(), opts).expect("parity run");
    report
        .checks
        .iter()
        .filter(|c| c.name.ends_with("/greedy") || c.name.ends_with("greedy.ids"))
        .map(|c| {
            let same =
                c.detail.split("first mismatch at ").nth(1).and_then(|r| r.split(':').next()?.trim().parse().ok());
            let total = c.detail.split(" ids identical").next().and_then(|n| n.trim().parse().ok()).unwrap_or(32);
            (c.name.clone(), same.unwrap_or(total), total)
        })
        .collect()
}

/// The tiny random fixtures amplify any rounding (their bf16 logits are off by 2.5e-2 to 3e-1
/// relative, and bf16 greedy ids diverge on 15 of the 16 sequences, see the fixtures README),
/// so no 8-bit format can keep all their greedy ids identical. What this binds: q8 (f32
/// activations) never changes the first generated token, and the ids it keeps (the prefix
/// equal to the reference, averaged over the sequences) stay at least 30% (measured 38%; bf16
/// 39%, q4 2%; docs/benchmarks.md). A broken kernel keeps none.
#[test]
fn q8_greedy_ids_on_the_public_fixtures() {
    let runs = greedy_prefixes(&ParityOptions { dtype: DType::F32, quant: Quant::Q8, ..Default::default() });
    assert!(runs.len() >= 10, "only {} greedy sequences", runs.len());
    for (name, same, _) in &runs {
        assert!(*same >= 1, "{name}: q8 changed the first generated token");
    }
    let share = runs.iter().map(|(_, s, t)| *s as f64 / *t as f64).sum::<f64>() / runs.len() as f64;
    println!("q8: {:.3} of the greedy ids identical (matching prefix), {} sequences", share, runs.len());
    assert!(share >= 0.30, "q8 keeps only {share:.3} of the greedy ids");
}
