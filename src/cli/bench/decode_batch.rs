//! `docseek bench decode --batch 1,4,8,16`: batched decoding over the paged KV cache.
//!
//! One prompt of `--prompt-tokens` is prefilled once and its cache forked into every
//! sequence of a batch (block copies, so each batch size starts from the same context); each
//! sequence then gets a different first token, and `--new-tokens` greedy steps decode one
//! token for every sequence in one `forward_batch`. Reported per batch size: aggregate
//! tokens/s, the per-sequence latency (median step time: every sequence gains one token per
//! step), the ratio to batch 1, and peak RSS against weights + KV cache.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use candle_core::Tensor;

use super::decode::{peak_and_current_rss, DecodeBenchArgs};
use crate::model::loader::open_weights;
use crate::model::paged_cache::blocks_for;
use crate::model::Dtype;
use crate::model::{DeepseekDecoder, ModelConfig, PagedKvCache, SeqChunk, SeqId};

/// Sequence id of the shared prefill.
const BASE_SEQ: SeqId = 0;

fn gb(b: f64) -> String {
    format!("{:.2} GB", b / 1e9)
}

/// One batch size's figures.
struct Row {
    batch: usize,
    tok_s: f64,
    median_ms: f64,
    p90_ms: f64,
}

/// Runs the batched decode benchmark for `args.batch`.
pub fn run(args: &DecodeBenchArgs) -> anyhow::Result<ExitCode> {
    let device = args.device.open()?;
    let dtype = args.dtype.unwrap_or_else(|| Dtype::default_for(&device)).candle();
    let cfg = ModelConfig::from_dir(&args.model).context("reading the model config")?;
    let dcfg = cfg.decoder.clone();
    let max_batch = args.batch.iter().copied().max().unwrap_or(1);
    anyhow::ensure!(args.batch.iter().all(|&b| b >= 1), "--batch sizes must be >= 1");
    anyhow::ensure!(args.prompt_tokens >= 1 && args.new_tokens >= 1, "--prompt-tokens and --new-tokens must be >= 1");
    anyhow::ensure!(
        args.prompt_tokens + args.new_tokens <= dcfg.max_position_embeddings,
        "prompt + new tokens exceed the model's {} positions",
        dcfg.max_position_embeddings
    );

    let t = Instant::now();
    let vb = open_weights(&args.model, dtype, &device)?;
    let dec = DeepseekDecoder::load(&dcfg, vb)?;
    let load = t.elapsed();
    let (_, rss_load) = peak_and_current_rss();
    let params = crate::model::synth::decoder_tensor_specs(&dcfg)
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum::<usize>();
    let weight_bytes = params * dtype.size_in_bytes();

    // Room for the shared prefill and every sequence of the largest batch.
    let per_seq = blocks_for(args.prompt_tokens + args.new_tokens);
    let block_bytes = PagedKvCache::block_bytes(dec.cache_layout(), dcfg.num_hidden_layers, dtype);
    let budget = args.kv_cache_mb.map_or((max_batch + 1) * per_seq * block_bytes, |mb| mb << 20);
    let mut cache = dec.new_paged_cache(budget)?;
    anyhow::ensure!(
        cache.num_blocks() >= (max_batch + 1) * per_seq,
        "a KV cache of {} MiB holds {} blocks; batch {max_batch} needs {}",
        budget >> 20,
        cache.num_blocks(),
        (max_batch + 1) * per_seq
    );

    let vocab = dcfg.vocab_size as u64;
    let ids: Vec<u32> = (0..args.prompt_tokens as u64).map(|i| ((i * 7919 + 13) % vocab) as u32).collect();
    let t = Instant::now();
    let chunk = [SeqChunk { seq: BASE_SEQ, start: 0, len: ids.len() }];
    let logits = dec.forward_batch(&dec.embed(&ids)?, &chunk, &mut cache)?;
    let first = DeepseekDecoder::argmax(&logits)?;
    let prefill = t.elapsed();

    println!(
        "batched decode bench: {} ({:?}, {:?}, {} layers, hidden {})",
        args.model.display(),
        dtype,
        device,
        dcfg.num_hidden_layers,
        dcfg.hidden_size
    );
    println!(
        "  weights            {} ({params} params); load {:.1}s, RSS after load {}",
        gb(weight_bytes as f64),
        load.as_secs_f64(),
        gb(rss_load as f64)
    );
    println!(
        "  KV cache           {} blocks of 16 tokens ({} budget, {} B/token); context {} tokens per sequence",
        cache.num_blocks(),
        gb(cache.capacity_bytes() as f64),
        dec.cache_bytes_per_token(),
        args.prompt_tokens
    );
    println!(
        "  prefill            {} tokens in {:.2}s (once, forked into every sequence)",
        args.prompt_tokens,
        prefill.as_secs_f64()
    );
    let mut rows = Vec::new();
    // Sequence 1 has the same context and first token at every batch size: its greedy ids are
    // a cheap check that batching does not change the computation (bf16 products of other
    // shapes may round differently, so a late divergence on a random model is not an error).
    let mut first_seq_ids: Option<Vec<u32>> = None;
    for &batch in &args.batch {
        let seqs: Vec<SeqId> = (1..=batch as SeqId).collect();
        for &s in &seqs {
            anyhow::ensure!(cache.fork(BASE_SEQ, s)?, "the KV cache is full");
        }
        // Distinct first tokens, so the sequences route to different experts as real pages do.
        let mut next: Vec<u32> = seqs.iter().map(|&s| ((first as u64 + s * 7919) % vocab) as u32).collect();
        let mut steps = Vec::with_capacity(args.new_tokens);
        let mut seq1 = Vec::with_capacity(args.new_tokens);
        for step in 0..args.new_tokens {
            let chunks: Vec<SeqChunk> =
                seqs.iter().map(|&seq| SeqChunk { seq, start: args.prompt_tokens + step, len: 1 }).collect();
            let s = Instant::now();
            let logits = dec.forward_batch(&dec.embed(&next)?, &chunks, &mut cache)?;
            next = argmax_rows(&logits)?;
            steps.push(s.elapsed());
            seq1.push(next[0]);
        }
        for &s in &seqs {
            cache.release(s);
        }
        let total: f64 = steps.iter().map(Duration::as_secs_f64).sum();
        let mut sorted = steps.clone();
        sorted.sort();
        let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        let row =
            Row { batch, tok_s: (batch * args.new_tokens) as f64 / total, median_ms: pick(0.5), p90_ms: pick(0.9) };
        println!(
            "  batch {:>3}          {:>7.2} tok/s aggregate, per-sequence latency {:.0} ms/token (median step; p90 {:.0} ms)",
            row.batch, row.tok_s, row.median_ms, row.p90_ms
        );
        match &first_seq_ids {
            None => first_seq_ids = Some(seq1),
            Some(want) => {
                let same = want.iter().zip(&seq1).take_while(|(a, b)| a == b).count();
                println!(
                    "  batch {:>3}          sequence 1's greedy ids equal batch {}'s for the first {same} of {} tokens",
                    row.batch,
                    args.batch[0],
                    want.len()
                );
            }
        }
        rows.push(row);
    }
    if let Some(one) = rows.iter().find(|r| r.batch == 1) {
        let ratios: Vec<String> =
            rows.iter().map(|r| format!("batch {} x{:.2}", r.batch, r.tok_s / one.tok_s)).collect();
        println!("  aggregate vs batch 1: {}", ratios.join(", "));
    }
    let (hwm, rss) = peak_and_current_rss();
    let kv_peak = ((max_batch + 1) * per_seq * block_bytes) as f64;
    println!(
        "  peak RSS (VmHWM)   {}: weights {} + KV blocks in use at batch {max_batch} {} + other {} (RSS now {})",
        gb(hwm as f64),
        gb(weight_bytes as f64),
        gb(kv_peak),
        gb(hwm as f64 - weight_bytes as f64 - kv_peak),
        gb(rss as f64)
    );
    Ok(ExitCode::SUCCESS)
}

/// Greedy ids of every row of `[rows, vocab]` f32 logits. On a GPU the argmax runs there and
/// only the ids come back (not `rows x vocab` floats per step).
fn argmax_rows(logits: &Tensor) -> anyhow::Result<Vec<u32>> {
    if !logits.device().is_cpu() {
        return Ok(logits.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?);
    }
    Ok(logits.to_vec2::<f32>()?.iter().map(|r| crate::model::generation::argmax(r)).collect())
}
