//! Batched decoding over the paged KV cache against the single-sequence path.
//!
//! - `forward_batch` logits equal the single-sequence `forward` for ragged chunks (prefill
//!   chunks, decode rows, sequences joining), MHA and MLA, kernel and gather attention.
//! - Parity: on every shared fixture (ocr1-tiny, ocr2-tiny, mla-tiny, mla-tiny/noqlora),
//!   sequences of different lengths, guards and budgets decode together, joining and leaving
//!   mid-run with chunked prefill, and give exactly the greedy ids of unbatched decoding and
//!   of the reference.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use docseek::model::batch::AttentionPath;
use docseek::model::generation::{generate, GenerationConfig, Next, Silent, TokenPicker};
use docseek::model::loader::open_weights;
use docseek::model::prompt::embed_with_image;
use docseek::model::synth::{decoder_tensor_specs, write_weights, SynthDtype};
use docseek::model::{DeepseekDecoder, DeepseekV2Config, LogitsFor, NgramGuard, PagedKvCache, SeqChunk};
use docseek::parity::decoder::load_decoder;
use docseek::parity::fixture::Fixture;
use serde_json::Value;

/// A small MLA config (q-LoRA, YaRN).
const MLA_CONFIG: &str = r#"{"vocab_size": 300, "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
  "num_hidden_layers": 3, "num_attention_heads": 4, "n_shared_experts": 1, "n_routed_experts": 8,
  "num_experts_per_tok": 2, "first_k_dense_replace": 1, "kv_lora_rank": 16, "q_lora_rank": 24,
  "qk_rope_head_dim": 8, "qk_nope_head_dim": 16, "v_head_dim": 16, "topk_method": "greedy",
  "max_position_embeddings": 4096, "bos_token_id": 0, "eos_token_id": 1,
  "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                   "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707}}"#;

/// MHA with grouped KV heads (4 query heads over 2 KV heads).
const GQA_CONFIG: &str = r#"{"vocab_size": 300, "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
  "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "n_shared_experts": 2,
  "n_routed_experts": 8, "num_experts_per_tok": 2, "first_k_dense_replace": 1, "use_mla": false,
  "kv_lora_rank": null, "q_lora_rank": null, "topk_method": "greedy", "max_position_embeddings": 4096,
  "bos_token_id": 0, "eos_token_id": 1}"#;

fn build(config: &str, seed: u64) -> (tempfile::TempDir, DeepseekDecoder) {
    let cfg = DeepseekV2Config::from_json(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_weights(&dir.path().join("model.safetensors"), &decoder_tensor_specs(&cfg), SynthDtype::F32, seed, None)
        .unwrap();
    let vb = open_weights(dir.path(), DType::F32, &Device::Cpu).unwrap();
    (dir, DeepseekDecoder::load(&cfg, vb).unwrap())
}

fn ids(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32).map(|i| 2 + (i * 37 + salt * 11) % 290).collect()
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2().unwrap()
}

fn max_rel(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

#[test]
fn forward_batch_matches_single_sequence_forward() {
    for config in [GQA_CONFIG, MLA_CONFIG] {
        let (_d, dec) = build(config, 5);
        let seqs = [ids(30, 0), ids(23, 1), ids(4, 2)];
        // Reference: each sequence alone, logits of every position.
        let full: Vec<Vec<Vec<f32>>> = seqs
            .iter()
            .map(|s| {
                let mut cache = dec.new_cache(s.len()).unwrap();
                rows(&dec.forward(&dec.embed(s).unwrap(), &mut cache, LogitsFor::All).unwrap())
            })
            .collect();
        for path in [AttentionPath::Auto, AttentionPath::Gather] {
            // A budget of 9 blocks: 30 + 23 + 4 tokens need 2 + 2 + 1.
            let mut cache =
                dec.new_paged_cache(9 * PagedKvCache::block_bytes(dec.cache_layout(), 3, DType::F32)).unwrap();
            assert_eq!(cache.num_blocks(), 9);
            // Steps: (sequence, start, len); sequence 2 joins in the third step.
            let steps: Vec<Vec<(u64, usize, usize)>> = vec![
                vec![(0, 0, 10), (1, 0, 5)],
                vec![(1, 5, 12), (0, 10, 1)],
                vec![(0, 11, 1), (2, 0, 3), (1, 17, 1)],
                vec![(2, 3, 1), (0, 12, 18), (1, 18, 5)],
            ];
            for step in steps {
                let chunks: Vec<SeqChunk> =
                    step.iter().map(|&(seq, start, len)| SeqChunk { seq, start, len }).collect();
                let all: Vec<u32> = step.iter().flat_map(|&(s, st, l)| seqs[s as usize][st..st + l].to_vec()).collect();
                let logits = dec.forward_batch_with(&dec.embed(&all).unwrap(), &chunks, &mut cache, path).unwrap();
                let got = rows(&logits);
                assert_eq!(got.len(), chunks.len());
                for (c, row) in chunks.iter().zip(&got) {
                    let want = &full[c.seq as usize][c.start + c.len - 1];
                    let err = max_rel(row, want);
                    assert!(err < 1e-4, "{path:?} seq {} at {}: relative error {err}", c.seq, c.start + c.len - 1);
                }
            }
            assert_eq!(cache.len(0), Some(30));
            // Every sequence leaving frees its blocks.
            for s in 0..3 {
                cache.release(s);
            }
            assert_eq!(cache.free_blocks(), 9);
        }
    }
}

#[test]
fn forward_batch_refuses_bad_chunks_and_a_full_cache() {
    let (_d, dec) = build(GQA_CONFIG, 6);
    let mut cache = dec.new_paged_cache(2 * PagedKvCache::block_bytes(dec.cache_layout(), 3, DType::F32)).unwrap();
    let e = dec.embed(&ids(20, 0)).unwrap();
    // Rows and chunks disagree.
    assert!(dec.forward_batch(&e, &[SeqChunk { seq: 0, start: 0, len: 19 }], &mut cache).is_err());
    // A chunk must start where the sequence's cache ends.
    assert!(dec.forward_batch(&e, &[SeqChunk { seq: 0, start: 3, len: 20 }], &mut cache).is_err());
    assert!(dec.forward_batch(&e, &[SeqChunk { seq: 0, start: 0, len: 20 }], &mut cache).is_ok());
    // 20 + 20 tokens need 3 blocks of 16; the cache has 2.
    assert!(dec.forward_batch(&e, &[SeqChunk { seq: 1, start: 0, len: 20 }], &mut cache).is_err());
}

fn fixtures_root() -> PathBuf {
    let root = match std::env::var_os("DOCSEEK_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => ["../shared/fixtures", "../../shared/fixtures"]
            .iter()
            .map(|c| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(c))
            .find(|c| c.is_dir())
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")),
    };
    assert!(root.is_dir(), "parity fixtures not found at {} (or set DOCSEEK_FIXTURES)", root.display());
    root
}

fn id_list(v: &Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// One sequence of the batched run.
struct Request {
    name: String,
    embeds: Tensor,
    prompt: Vec<u32>,
    cfg: GenerationConfig,
    /// The reference's ids (the first `cfg.max_new_tokens` of them are expected), when the
    /// fixture has them for this prompt.
    want: Option<Vec<u32>>,
    /// Step at which the sequence joins.
    join: usize,
}

fn greedy(max_new: usize, ngram: NgramGuard) -> GenerationConfig {
    GenerationConfig { max_new_tokens: max_new, ngram, loop_guard: None, ..Default::default() }
}

/// Requests of one fixture: every mode (OCR) or the prompt (decoder-only), each with the
/// guards the fixture has ids for, with budgets and join steps that differ.
fn requests(fx: &Fixture, dec: &DeepseekDecoder) -> Vec<Request> {
    let j = &fx.expected_json;
    let mut out = Vec::new();
    let mut add = |name: String, embeds: Tensor, prompt: Vec<u32>, ngram: NgramGuard, want: Option<Vec<u32>>| {
        let k = out.len();
        // Budgets from 9 to the full 32 and joins every few steps: sequences leave while
        // others are still prefilling.
        let max_new = [32, 9, 21, 14, 27, 17][k % 6].min(want.as_ref().map_or(32, Vec::len));
        out.push(Request { name, embeds, prompt, cfg: greedy(max_new, ngram), want, join: (k * 3) % 11 });
    };
    if let Some(modes) = j["modes"].as_object() {
        let image_token = fx.config["image_token_id"].as_u64().unwrap_or(128815) as u32;
        for (mode, m) in modes {
            let prompt = id_list(&m["input_ids"]);
            let image = fx.expected[&format!("{mode}.image_embeds")].clone();
            let embeds = embed_with_image(dec, &prompt, image_token, Some(&image)).unwrap();
            add(
                format!("{mode}/greedy"),
                embeds.clone(),
                prompt.clone(),
                NgramGuard::Off,
                Some(id_list(&m["greedy"]["ids"])),
            );
            let v = &m["ngram_vllm"];
            let guard = NgramGuard::Vllm {
                size: v["ngram_size"].as_u64().unwrap() as usize,
                window: v["window_size"].as_u64().unwrap() as usize,
                whitelist: id_list(&v["whitelist_token_ids"]),
            };
            add(format!("{mode}/ngram_vllm"), embeds.clone(), prompt.clone(), guard, Some(id_list(&v["ids"])));
            let h = &m["ngram_hf"];
            let guard = NgramGuard::Hf { size: h["no_repeat_ngram_size"].as_u64().unwrap() as usize };
            add(format!("{mode}/ngram_hf"), embeds, prompt, guard, Some(id_list(&h["ids"])));
        }
    } else {
        let prompt = id_list(&j["input_ids"]);
        let embeds = dec.embed(&prompt).unwrap();
        let want = id_list(&j["greedy"]["ids"]);
        for k in 0..3 {
            add(format!("prompt/{k}"), embeds.clone(), prompt.clone(), NgramGuard::Off, Some(want.clone()));
        }
        // Shorter prompts (checked against unbatched decoding only): lengths differ.
        for cut in [17, 29, 33] {
            let p = prompt[..cut].to_vec();
            add(format!("prefix{cut}"), embeds.narrow(0, 0, cut).unwrap(), p, NgramGuard::Off, None);
        }
    }
    out
}

/// Runs `reqs` together: each step decodes one token for every sequence past its prompt and
/// feeds a prefill chunk of at most `chunk` rows to the others. Returns each request's ids.
fn run_batched(dec: &DeepseekDecoder, reqs: &[Request], chunk: usize, cache: &mut PagedKvCache) -> Vec<Vec<u32>> {
    struct Live {
        fed: usize,
        next: Option<u32>,
        picker: TokenPicker,
        done: bool,
    }
    let eos = dec.config().eos_token_id;
    let max_pos = dec.config().max_position_embeddings;
    let mut live: Vec<Option<Live>> = reqs.iter().map(|_| None).collect();
    let mut step = 0;
    let mut max_running = 0;
    while live.iter().zip(reqs).any(|(l, _)| l.as_ref().is_none_or(|l| !l.done)) {
        for (k, r) in reqs.iter().enumerate() {
            if live[k].is_none() && r.join <= step {
                let budget = TokenPicker::budget_for(&r.cfg, r.prompt.len(), max_pos);
                live[k] = Some(Live {
                    fed: 0,
                    next: None,
                    picker: TokenPicker::new(&r.cfg, &r.prompt, eos, budget),
                    done: false,
                });
            }
        }
        let mut chunks = Vec::new();
        let mut embeds = Vec::new();
        for (k, l) in live.iter().enumerate() {
            let Some(l) = l.as_ref().filter(|l| !l.done) else { continue };
            let n = reqs[k].prompt.len();
            if l.fed < n {
                let len = chunk.min(n - l.fed);
                chunks.push(SeqChunk { seq: k as u64, start: l.fed, len });
                embeds.push(reqs[k].embeds.narrow(0, l.fed, len).unwrap());
            } else {
                chunks.push(SeqChunk { seq: k as u64, start: l.fed, len: 1 });
                embeds.push(dec.embed(&[l.next.expect("a pending token")]).unwrap());
            }
        }
        step += 1;
        if chunks.is_empty() {
            continue;
        }
        max_running = max_running.max(chunks.len());
        let logits = rows(&dec.forward_batch(&Tensor::cat(&embeds, 0).unwrap(), &chunks, cache).unwrap());
        for (c, mut row) in chunks.iter().zip(logits) {
            let k = c.seq as usize;
            let l = live[k].as_mut().unwrap();
            l.fed += c.len;
            if l.fed < reqs[k].prompt.len() {
                continue;
            }
            let finished = match l.picker.next(&mut row) {
                Next::Eos => true,
                Next::Token { id, stop } => {
                    l.next = Some(id);
                    stop.is_some()
                }
            };
            if finished {
                l.done = true;
                cache.release(c.seq);
            }
        }
    }
    assert!(max_running >= 4, "at most {max_running} sequences ran together");
    live.into_iter().map(|l| l.unwrap().picker.ids().to_vec()).collect()
}

#[test]
fn batched_greedy_ids_match_unbatched_and_the_reference_on_every_fixture() {
    let root = fixtures_root();
    for name in ["ocr1-tiny", "ocr2-tiny", "mla-tiny", "mla-tiny/noqlora"] {
        let dir = root.join(name);
        let fx = Fixture::load(&dir, name.to_string()).unwrap();
        let (_, dec) = load_decoder(&dir, DType::F32, &candle_core::Device::Cpu).unwrap();
        let reqs = requests(&fx, &dec);
        assert!(reqs.len() >= 3, "{name}: {} requests", reqs.len());
        let lens: std::collections::BTreeSet<usize> = reqs.iter().map(|r| r.prompt.len()).collect();
        // A cache just big enough for the run: blocks are reused as sequences leave.
        let budget = 512 * PagedKvCache::block_bytes(dec.cache_layout(), dec.config().num_hidden_layers, DType::F32);
        let mut cache = dec.new_paged_cache(budget).unwrap();
        for chunk in [64, 1000] {
            let got = run_batched(&dec, &reqs, chunk, &mut cache);
            assert_eq!(cache.free_blocks(), cache.num_blocks(), "{name}: blocks leaked");
            for (r, ids) in reqs.iter().zip(&got) {
                let single = generate(&dec, &r.embeds, &r.prompt, dec.config().eos_token_id, &r.cfg, &mut Silent)
                    .unwrap()
                    .unwrap();
                assert_eq!(ids, &single.ids, "{name} {} (chunk {chunk}): batched vs unbatched", r.name);
                if let Some(want) = &r.want {
                    assert_eq!(ids[..], want[..r.cfg.max_new_tokens], "{name} {}: batched vs reference", r.name);
                }
            }
        }
        println!("{name}: {} sequences, prompt lengths {lens:?}: batched ids = unbatched = reference", reqs.len());
    }
}
