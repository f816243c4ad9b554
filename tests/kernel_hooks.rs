//! The decoder's kernel hooks (`src/model/cuda.rs`) run on the CPU through the kernels' plain
//! references: the fused path must compute what the generic candle path computes (same routing,
//! same logits within float noise, same greedy ids), for every MoE routing rule; and the FP8
//! experts' accuracy delta against bf16 is measured on the fixtures.
//!
//! One test per process-wide switch setting, run in sequence inside each test (the switches
//! are global).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use docseek::model::cuda::{force_fp8, force_kernels};
use docseek::model::cuda_moe::FusedMoe;
use docseek::model::generation::{generate, GenerationConfig, Silent};
use docseek::model::loader::open_weights;
use docseek::model::moe::{Moe, MoeGate};
use docseek::model::{DeepseekDecoder, DeepseekV2Config, LogitsFor, ModelConfig, NgramGuard};

/// The hooks' switches are process-wide: tests that flip them take turns.
static SWITCHES: Mutex<()> = Mutex::new(());

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

fn load(dir: &std::path::Path, dtype: DType) -> DeepseekDecoder {
    let cfg = ModelConfig::from_dir(dir).unwrap();
    DeepseekDecoder::load(&cfg.decoder, open_weights(dir, dtype, &Device::Cpu).unwrap()).unwrap()
}

fn prompt(vocab: usize) -> Vec<u32> {
    (0..24u32).map(|i| 3 + (i * 131) % (vocab as u32 - 3)).collect()
}

fn all_logits(dec: &DeepseekDecoder, ids: &[u32]) -> Vec<f32> {
    let mut cache = dec.new_cache(ids.len()).unwrap();
    let l = dec.forward(&dec.embed(ids).unwrap(), &mut cache, LogitsFor::All).unwrap();
    l.flatten_all().unwrap().to_vec1().unwrap()
}

fn greedy(dec: &DeepseekDecoder, ids: &[u32], n: usize) -> Vec<u32> {
    let cfg = GenerationConfig { max_new_tokens: n, ngram: NgramGuard::Off, loop_guard: None, ..Default::default() };
    generate(dec, &dec.embed(ids).unwrap(), ids, None, &cfg, &mut Silent).unwrap().unwrap().ids
}

/// `max |a - b| / max |b|`.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn fused_decoder_matches_the_generic_path_on_the_fixtures() {
    let _g = SWITCHES.lock().unwrap();
    for name in ["ocr1-tiny", "ocr2-tiny", "mla-tiny", "mla-tiny/noqlora"] {
        let dir = fixtures().join(name);
        assert!(dir.join("config.json").is_file(), "fixture {} missing", dir.display());
        force_kernels(Some(false));
        let base = load(&dir, DType::F32);
        force_kernels(Some(true));
        let fused = load(&dir, DType::F32);
        let ids = prompt(base.config().vocab_size);
        let (a, b) = (all_logits(&fused, &ids), all_logits(&base, &ids));
        let err = rel_err(&a, &b);
        eprintln!("{name} f32: fused vs generic logits rel err {err:.2e}");
        assert!(err < 1e-5, "{name}: {err}");
        assert_eq!(greedy(&fused, &ids, 12), greedy(&base, &ids, 12), "{name} greedy ids");
    }
    force_kernels(None);
}

#[test]
fn fp8_experts_accuracy_delta_against_bf16() {
    let _g = SWITCHES.lock().unwrap();
    force_kernels(Some(true));
    let mut report = Vec::new();
    for name in ["ocr1-tiny", "ocr2-tiny", "mla-tiny"] {
        let dir = fixtures().join(name);
        force_fp8(Some(false));
        let bf16 = load(&dir, DType::BF16);
        force_fp8(Some(true));
        let fp8 = load(&dir, DType::BF16);
        force_fp8(None);
        let f32 = load(&dir, DType::F32);
        let ids = prompt(bf16.config().vocab_size);
        let base = all_logits(&bf16, &ids);
        let err = rel_err(&all_logits(&fp8, &ids), &base);
        // For scale: bf16's own distance from f32.
        let bf16_err = rel_err(&base, &all_logits(&f32, &ids));
        let steps = 32;
        let (g8, g16) = (greedy(&fp8, &ids, steps), greedy(&bf16, &ids, steps));
        // Share of steps before the first divergence, and of equal ids overall.
        let prefix = g8.iter().zip(&g16).take_while(|(a, b)| a == b).count();
        let same = g8.iter().zip(&g16).filter(|(a, b)| a == b).count();
        report.push(format!(
            "{name}: FP8 experts vs bf16: logits max rel err {err:.3e} (bf16 vs f32: {bf16_err:.3e}); \
             greedy ids identical {same}/{steps}, first {prefix} in a row"
        ));
        assert!(err < 0.2, "{name}: FP8 logits error {err}");
    }
    force_kernels(None);
    for line in &report {
        eprintln!("{line}");
    }
}

/// A one-layer MoE checkpoint's tensors: gate (+ bias), experts, shared experts.
fn moe_tensors(cfg: &DeepseekV2Config, seed: u64) -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let (e, h, i) = (cfg.n_routed_experts.unwrap(), cfg.hidden_size, cfg.moe_intermediate_size);
    let mut m = HashMap::new();
    let mut s = seed;
    let mut rnd = |shape: &[usize], std: f64| {
        s += 1;
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|j| {
                let x = ((j as u64 + 1) * 2654435761 + s * 97).wrapping_mul(0x9E37_79B9) % 10007;
                ((x as f64 / 10007.0 - 0.5) * 3.46 * std) as f32
            })
            .collect();
        Tensor::from_vec(v, shape, &dev).unwrap()
    };
    m.insert("gate.weight".into(), rnd(&[e, h], 1.0));
    m.insert("gate.e_score_correction_bias".into(), rnd(&[e], 0.3));
    for x in 0..e {
        m.insert(format!("experts.{x}.gate_proj.weight"), rnd(&[i, h], 0.2));
        m.insert(format!("experts.{x}.up_proj.weight"), rnd(&[i, h], 0.2));
        m.insert(format!("experts.{x}.down_proj.weight"), rnd(&[h, i], 0.2));
    }
    let si = i * cfg.n_shared_experts.unwrap_or(0);
    m.insert("shared_experts.gate_proj.weight".into(), rnd(&[si, h], 0.2));
    m.insert("shared_experts.up_proj.weight".into(), rnd(&[si, h], 0.2));
    m.insert("shared_experts.down_proj.weight".into(), rnd(&[h, si], 0.2));
    m
}

#[test]
fn device_gate_and_fused_moe_agree_with_the_host_moe_for_every_rule() {
    let _g = SWITCHES.lock().unwrap();
    let configs = [
        r#"{"hidden_size": 48, "moe_intermediate_size": 20, "n_routed_experts": 16, "num_experts_per_tok": 4,
            "n_shared_experts": 1, "topk_method": "greedy", "norm_topk_prob": false, "routed_scaling_factor": 1.0}"#,
        r#"{"hidden_size": 48, "moe_intermediate_size": 20, "n_routed_experts": 16, "num_experts_per_tok": 3,
            "n_shared_experts": 1, "topk_method": "group_limited_greedy", "n_group": 4, "topk_group": 2,
            "norm_topk_prob": true, "routed_scaling_factor": 2.5}"#,
        r#"{"hidden_size": 48, "moe_intermediate_size": 20, "n_routed_experts": 16, "num_experts_per_tok": 4,
            "n_shared_experts": 2, "topk_method": "noaux_tc", "scoring_func": "sigmoid", "n_group": 4,
            "topk_group": 2, "norm_topk_prob": true, "routed_scaling_factor": 2.5}"#,
    ];
    for (n, json) in configs.iter().enumerate() {
        let cfg = DeepseekV2Config::from_json(json).unwrap();
        let tensors = moe_tensors(&cfg, n as u64);
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let host_gate = MoeGate::load(vb.pp("gate"), &cfg).unwrap();
        force_kernels(Some(true));
        let fused = FusedMoe::load(vb.clone(), &cfg, false).unwrap();
        let fused_moe = Moe::load(vb.clone(), &cfg).unwrap();
        force_kernels(Some(false));
        let host_moe = Moe::load(vb.clone(), &cfg).unwrap();
        force_kernels(None);
        let x: Vec<f32> = (0..37 * 48).map(|j| ((j * 7919 % 613) as f32 / 613.0 - 0.5) * 2.0).collect();
        let x = Tensor::from_vec(x, (37, 48), &Device::Cpu).unwrap();
        let want = host_gate.route(&x).unwrap();
        let (ids, w) = fused.route(&x).unwrap();
        assert_eq!(ids.flatten_all().unwrap().to_vec1::<u32>().unwrap(), want.experts, "config {n}: expert ids");
        let w: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        // Scores are summed in another order than candle's softmax: equal up to f32 rounding.
        assert!(rel_err(&w, &want.weights) < 1e-6, "config {n}: routing weights {w:?} vs {:?}", want.weights);
        let a: Vec<f32> = fused_moe.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = host_moe.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let err = rel_err(&a, &b);
        assert!(err < 1e-5, "config {n}: fused MoE output differs by {err}");
    }
}
