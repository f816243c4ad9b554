//! Decoder behaviour on synthetic checkpoints: KV cache sizes (MHA and MLA latent), cached
//! decode equal to a full recompute, sparse expert dispatch, generation stops (budget, EOS).

use candle_core::{DType, Device};
use docseek::model::cache::LayerCache;
use docseek::model::generation::{generate, GenerationConfig, Silent};
use docseek::model::loader::open_weights;
use docseek::model::synth::{decoder_tensor_specs, write_weights, SynthDtype};
use docseek::model::{DeepseekDecoder, DeepseekV2Config, LogitsFor, NgramGuard, PageOutcome};

/// A small MLA config (q-LoRA, YaRN) in the DeepSeek-V2 layout.
const MLA_CONFIG: &str = r#"{"vocab_size": 300, "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
  "num_hidden_layers": 3, "num_attention_heads": 4, "n_shared_experts": 1, "n_routed_experts": 8,
  "num_experts_per_tok": 2, "first_k_dense_replace": 1, "kv_lora_rank": 16, "q_lora_rank": 24,
  "qk_rope_head_dim": 8, "qk_nope_head_dim": 16, "v_head_dim": 16, "topk_method": "greedy",
  "max_position_embeddings": 4096, "bos_token_id": 0, "eos_token_id": 1,
  "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                   "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707}}"#;

/// The same widths with plain MHA.
const MHA_CONFIG: &str = r#"{"vocab_size": 300, "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
  "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4, "n_shared_experts": 2,
  "n_routed_experts": 8, "num_experts_per_tok": 2, "first_k_dense_replace": 1, "use_mla": false,
  "kv_lora_rank": null, "q_lora_rank": null, "topk_method": "greedy", "max_position_embeddings": 4096,
  "bos_token_id": 0, "eos_token_id": 1}"#;

fn build(config: &str, seed: u64) -> (tempfile::TempDir, DeepseekDecoder) {
    let cfg = DeepseekV2Config::from_json(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_weights(&dir.path().join("model.safetensors"), &decoder_tensor_specs(&cfg), SynthDtype::F32, seed, None)
        .unwrap();
    let vb = open_weights(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let dec = DeepseekDecoder::load(&cfg, vb).unwrap();
    (dir, dec)
}

fn ids(n: usize) -> Vec<u32> {
    (0..n as u32).map(|i| 2 + (i * 37) % 290).collect()
}

#[test]
fn cache_holds_exactly_cache_bytes_per_token() {
    for (config, latent) in [(MLA_CONFIG, true), (MHA_CONFIG, false)] {
        let (_d, dec) = build(config, 1);
        let mut cache = dec.new_cache(8).unwrap();
        let prompt = ids(11);
        dec.forward(&dec.embed(&prompt).unwrap(), &mut cache, LogitsFor::Last).unwrap();
        for t in 0..5u32 {
            dec.forward(&dec.embed(&[3 + t]).unwrap(), &mut cache, LogitsFor::Last).unwrap();
        }
        // 16 tokens, grown past the initial capacity of 8.
        assert_eq!(cache.len(), 16);
        assert_eq!(cache.used_bytes(), 16 * dec.cache_bytes_per_token());
        let cfg = dec.config();
        match cache.layer(0) {
            LayerCache::Mla { latent: l, k_pe } => {
                assert!(latent);
                // Only the latent and the shared rope key per token: no per-head K/V.
                assert_eq!(l.dims()[1], cfg.kv_lora_rank.unwrap());
                assert_eq!(k_pe.dims()[1], cfg.qk_rope_head_dim);
                assert_eq!(dec.cache_bytes_per_token(), 3 * (16 + 8) * 4);
            }
            LayerCache::Mha { k, v } => {
                assert!(!latent);
                assert_eq!((k.dims()[0], k.dims()[2]), (4, 16));
                assert_eq!(v.dims(), k.dims());
                assert_eq!(dec.cache_bytes_per_token(), 3 * 2 * 64 * 4);
            }
        }
    }
}

#[test]
fn cached_decode_matches_full_recompute() {
    for config in [MLA_CONFIG, MHA_CONFIG] {
        let (_d, dec) = build(config, 2);
        let seq = ids(20);
        let mut full_cache = dec.new_cache(20).unwrap();
        let full = dec.forward(&dec.embed(&seq).unwrap(), &mut full_cache, LogitsFor::All).unwrap();
        let mut cache = dec.new_cache(4).unwrap();
        dec.forward(&dec.embed(&seq[..12]).unwrap(), &mut cache, LogitsFor::Last).unwrap();
        let mut last = None;
        for &t in &seq[12..] {
            last = Some(dec.forward(&dec.embed(&[t]).unwrap(), &mut cache, LogitsFor::Last).unwrap());
        }
        let got: Vec<f32> = last.unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let want: Vec<f32> = full.get(19).unwrap().to_vec1().unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 1e-4 * scale, "cached vs full: {err} (scale {scale})");
    }
}

#[test]
fn one_token_runs_only_its_top_k_experts() {
    let (_d, dec) = build(MHA_CONFIG, 3);
    let moe = dec.moe_layers();
    assert_eq!(moe, vec![1, 2]);
    let x = dec.embed(&[42]).unwrap();
    let ran = dec.experts_run_by_layer(1, &x).unwrap();
    assert_eq!(ran.len(), 2, "{ran:?}");
    // A batch of tokens runs each routed expert once.
    let xs = dec.embed(&ids(64)).unwrap();
    let ran = dec.experts_run_by_layer(2, &xs).unwrap();
    let mut dedup = ran.clone();
    dedup.dedup();
    assert_eq!(ran, dedup);
    assert!(ran.len() > 2);
}

#[test]
fn generation_stops_on_budget_and_eos() {
    let (_d, dec) = build(MHA_CONFIG, 4);
    let prompt = ids(9);
    let emb = dec.embed(&prompt).unwrap();
    let cfg = GenerationConfig { max_new_tokens: 7, ngram: NgramGuard::Off, loop_guard: None, ..Default::default() };
    let out = generate(&dec, &emb, &prompt, None, &cfg, &mut Silent).unwrap().unwrap();
    assert_eq!(out.ids.len(), 7);
    assert_eq!(out.outcome, PageOutcome::Length);
    // EOS stops generation without emitting it.
    let first = generate(
        &dec,
        &emb,
        &prompt,
        None,
        &GenerationConfig { max_new_tokens: 1, loop_guard: None, ngram: NgramGuard::Off, ..Default::default() },
        &mut Silent,
    )
    .unwrap()
    .unwrap()
    .ids[0];
    let out = generate(&dec, &emb, &prompt, Some(first), &cfg, &mut Silent).unwrap().unwrap();
    assert!(out.ids.is_empty());
    assert_eq!(out.outcome, PageOutcome::Finished);
}
