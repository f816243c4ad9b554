//! Decoder parity against the golden fixtures (see the fixtures README):
//!
//! - `mla-tiny` (+ `noqlora`): all-position logits without cache, prefill logits, per-step
//!   greedy logits and the 32 greedy ids (KV cache).
//! - `ocr1-tiny` (every mode) and `ocr2-tiny`: prefill logits, greedy logits (default mode)
//!   and the ids of `greedy`, `ngram_vllm`, `ngram_vllm_nowl`, `ngram_hf`. The image features
//!   come from an [`ImageSource`]: the fixture's expected `image_embeds` (decoder alone) or
//!   the vision encoder (end to end).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use super::{compare_floats, compare_ids, Report, REL_TOL_F32};
use crate::model::generation::{generate, GenerationConfig, StepObserver};
use crate::model::prompt::embed_with_image;
use crate::model::{DeepseekDecoder, LogitsFor, ModelConfig, NgramGuard};

/// Where the image features of an OCR fixture mode come from.
pub trait ImageSource {
    /// Label in check names (`expected-embeds`, `vision`).
    fn label(&self) -> &str;
    /// `[slots, hidden]` features for `mode` of the fixture in `dir`.
    fn image_embeds(&self, dir: &Path, mode: &str) -> anyhow::Result<Tensor>;
}

/// The fixture's own `<mode>.image_embeds` tensor.
pub struct ExpectedEmbeds;

impl ImageSource for ExpectedEmbeds {
    fn label(&self) -> &str {
        "expected-embeds"
    }

    fn image_embeds(&self, dir: &Path, mode: &str) -> anyhow::Result<Tensor> {
        let expected = load_expected(dir)?;
        expected.get(&format!("{mode}.image_embeds")).cloned().ok_or_else(|| anyhow!("{mode}.image_embeds missing"))
    }
}

/// The fixtures folder: `$DOCSEEK_FIXTURES`, else the first existing of
/// `CARGO_MANIFEST_DIR/{../shared, shared, ../../shared}/fixtures` (the integration checkout,
/// a checkout carrying `shared/`, a worktree one level deeper), else the first of these.
pub fn default_fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCSEEK_FIXTURES") {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = ["../shared/fixtures", "shared/fixtures", "../../shared/fixtures"].map(|c| root.join(c));
    candidates.iter().find(|c| c.is_dir()).cloned().unwrap_or_else(|| candidates[0].clone())
}

/// Runs every decoder check under `fixtures` (mla-tiny, ocr1-tiny, ocr2-tiny), with the OCR
/// image features taken from `images`. Missing fixture folders are errors, not skips.
pub fn run_checks(fixtures: &Path, images: &dyn ImageSource, report: &mut Report) -> anyhow::Result<()> {
    let mla = fixtures.join("mla-tiny");
    check_mla(&mla, "mla-tiny", report)?;
    check_mla(&mla.join("noqlora"), "mla-tiny/noqlora", report)?;
    for name in ["ocr1-tiny", "ocr2-tiny"] {
        check_ocr(&fixtures.join(name), name, images, report)?;
    }
    Ok(())
}

fn load_expected(dir: &Path) -> anyhow::Result<std::collections::HashMap<String, Tensor>> {
    let path = dir.join("expected.safetensors");
    candle_core::safetensors::load(&path, &Device::Cpu).with_context(|| format!("reading {}", path.display()))
}

fn load_json(dir: &Path) -> anyhow::Result<Value> {
    let path = dir.join("expected.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Loads the fixture's decoder in f32 on the CPU.
pub fn load_fixture_decoder(dir: &Path) -> anyhow::Result<(ModelConfig, DeepseekDecoder)> {
    let cfg = ModelConfig::from_dir(dir)?;
    let vb = crate::model::loader::open_weights(dir, DType::F32, &Device::Cpu)?;
    let dec = DeepseekDecoder::load(&cfg.decoder, vb)?;
    Ok((cfg, dec))
}

fn ids_of(v: &Value) -> anyhow::Result<Vec<u32>> {
    v.as_array()
        .ok_or_else(|| anyhow!("expected an id list"))?
        .iter()
        .map(|x| x.as_u64().map(|u| u as u32).ok_or_else(|| anyhow!("bad id")))
        .collect()
}

/// Collects the raw logits of every step.
struct LogitsRecorder(Vec<f32>);

impl StepObserver for LogitsRecorder {
    fn on_logits(&mut self, _step: usize, logits: &[f32]) {
        self.0.extend_from_slice(logits);
    }
}

fn greedy_config(max_new: usize, ngram: NgramGuard) -> GenerationConfig {
    GenerationConfig { max_new_tokens: max_new, ngram, loop_guard: None, ..Default::default() }
}

fn tensor_vec(t: &Tensor) -> anyhow::Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

fn check_mla(dir: &Path, name: &str, report: &mut Report) -> anyhow::Result<()> {
    if !dir.join("config.json").is_file() {
        bail!("fixture {} not found", dir.display());
    }
    let (cfg, dec) = load_fixture_decoder(dir)?;
    let json = load_json(dir)?;
    let expected = load_expected(dir)?;
    let ids = ids_of(&json["input_ids"])?;
    let eos = cfg.decoder.eos_token_id;
    let want = |k: &str| -> anyhow::Result<Vec<f32>> {
        tensor_vec(expected.get(k).ok_or_else(|| anyhow!("{name}: {k} missing"))?)
    };

    let mut cache = dec.new_cache(ids.len())?;
    let all = dec.forward(&dec.embed(&ids)?, &mut cache, LogitsFor::All)?;
    report.push(compare_floats(&format!("{name}/logits"), &tensor_vec(&all)?, &want("logits")?, REL_TOL_F32));

    let max_new = json["max_new_tokens"].as_u64().unwrap_or(32) as usize;
    let mut rec = LogitsRecorder(Vec::new());
    let out = generate(&dec, &dec.embed(&ids)?, &ids, eos, &greedy_config(max_new, NgramGuard::Off), &mut rec)?
        .ok_or_else(|| anyhow!("generation cancelled"))?;
    let vocab = cfg.decoder.vocab_size;
    report.push(compare_floats(&format!("{name}/prefill_logits"), &rec.0[..vocab], &want("prefill_logits")?, REL_TOL_F32));
    report.push(compare_floats(&format!("{name}/greedy_logits"), &rec.0, &want("greedy_logits")?, REL_TOL_F32));
    report.push(compare_ids(&format!("{name}/greedy.ids"), &out.ids, &ids_of(&json["greedy"]["ids"])?));
    Ok(())
}

fn check_ocr(dir: &Path, name: &str, images: &dyn ImageSource, report: &mut Report) -> anyhow::Result<()> {
    if !dir.join("config.json").is_file() {
        bail!("fixture {} not found", dir.display());
    }
    let (cfg, dec) = load_fixture_decoder(dir)?;
    let json = load_json(dir)?;
    let expected = load_expected(dir)?;
    let eos = cfg.decoder.eos_token_id;
    let vocab = cfg.decoder.vocab_size;
    let max_new = json["max_new_tokens"].as_u64().unwrap_or(32) as usize;
    let modes = json["modes"].as_object().ok_or_else(|| anyhow!("{name}: no modes"))?;
    let src = images.label();
    for (mode, m) in modes {
        let ids = ids_of(&m["input_ids"])?;
        let image = images.image_embeds(dir, mode)?;
        let embeds = embed_with_image(&dec, &ids, cfg.image_token_id, Some(&image))?;
        let tag = format!("{name}/{mode}/{src}");

        let mut rec = LogitsRecorder(Vec::new());
        let greedy = generate(&dec, &embeds, &ids, eos, &greedy_config(max_new, NgramGuard::Off), &mut rec)?
            .ok_or_else(|| anyhow!("generation cancelled"))?;
        let want_prefill = tensor_vec(
            expected.get(&format!("{mode}.prefill_logits")).ok_or_else(|| anyhow!("{mode}.prefill_logits missing"))?,
        )?;
        report.push(compare_floats(&format!("{tag}/prefill_logits"), &rec.0[..vocab], &want_prefill, REL_TOL_F32));
        if let Some(gl) = expected.get(&format!("{mode}.greedy_logits")) {
            report.push(compare_floats(&format!("{tag}/greedy_logits"), &rec.0, &tensor_vec(gl)?, REL_TOL_F32));
        }
        report.push(compare_ids(&format!("{tag}/greedy"), &greedy.ids, &ids_of(&m["greedy"]["ids"])?));

        for variant in ["ngram_vllm", "ngram_vllm_nowl"] {
            let v = &m[variant];
            let guard = NgramGuard::Vllm {
                size: v["ngram_size"].as_u64().ok_or_else(|| anyhow!("{variant}: ngram_size"))? as usize,
                window: v["window_size"].as_u64().ok_or_else(|| anyhow!("{variant}: window_size"))? as usize,
                whitelist: ids_of(&v["whitelist_token_ids"])?,
            };
            run_variant(&dec, &embeds, &ids, eos, max_new, guard, &format!("{tag}/{variant}"), &ids_of(&v["ids"])?, report)?;
        }
        let hf = &m["ngram_hf"];
        let guard = NgramGuard::Hf {
            size: hf["no_repeat_ngram_size"].as_u64().ok_or_else(|| anyhow!("ngram_hf: size"))? as usize,
        };
        run_variant(&dec, &embeds, &ids, eos, max_new, guard, &format!("{tag}/ngram_hf"), &ids_of(&hf["ids"])?, report)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_variant(
    dec: &DeepseekDecoder,
    embeds: &Tensor,
    ids: &[u32],
    eos: Option<u32>,
    max_new: usize,
    guard: NgramGuard,
    name: &str,
    want: &[u32],
    report: &mut Report,
) -> anyhow::Result<()> {
    let out = generate(dec, embeds, ids, eos, &greedy_config(max_new, guard), &mut crate::model::generation::Silent)?
        .ok_or_else(|| anyhow!("generation cancelled"))?;
    report.push(compare_ids(name, &out.ids, want));
    Ok(())
}
