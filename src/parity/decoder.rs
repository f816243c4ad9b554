//! Decoder checks of one fixture (see the fixtures README), generic over what the fixture holds:
//!
//! - decoder-only fixtures (`mla-tiny`, `noqlora`): all-position `logits` without cache,
//!   `prefill_logits`, per-step `greedy_logits` and the greedy ids (KV cache), from
//!   `expected.json -> input_ids`.
//! - OCR fixtures (`ocr1-tiny`, `ocr2-tiny`): for every mode of `expected.json -> modes`, the
//!   prompt layout, `<mode>.prefill_logits`, `<mode>.greedy_logits` where present and the ids
//!   of `greedy`, `ngram_vllm`, `ngram_vllm_nowl`, `ngram_hf` — twice: with the fixture's own
//!   `image_embeds` (the decoder alone) and end to end from `input/` through preprocessing and
//!   the vision encoder (the path `docseek ocr` takes).
//!
//! In bf16 the decoder checks are informational: logits are compared at the looser tolerance
//! and ids exactly, but a miss is reported, not failed. The fixtures README: bf16 "cannot be
//! compared with these numbers ... greedy ids may diverge"; the tiny decoders' large gains
//! amplify bf16 rounding (measured: 2.5e-2 to 3e-1 relative on prefill / all-position logits).
//! The vision checks stay strict in bf16.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use candle_core::{DType, Device, Tensor};
use docseek_vision::{VisionConfig, VisionEncoder};
use serde_json::Value;

use super::fixture::{Fixture, FixtureKind};
use super::vision::{load_rgb, mode_spec};
use super::{compare_floats, compare_ids, Check, ParityOptions, Report};
use crate::model::generation::{generate, GenerationConfig, Silent, StepObserver};
use crate::model::prompt::{embed_with_image, prompt_ids};
use crate::model::{DeepseekDecoder, LogitsFor, ModelConfig, NgramGuard};

/// Where the image features of an OCR fixture mode come from.
trait ImageSource {
    /// Label in check names (`expected-embeds`, `end-to-end`).
    fn label(&self) -> &str;
    /// `[slots, hidden]` features for `mode`.
    fn image_embeds(&self, fx: &Fixture, mode: &str) -> anyhow::Result<Tensor>;
}

/// The fixture's own `<mode>.image_embeds` tensor.
struct ExpectedEmbeds;

impl ImageSource for ExpectedEmbeds {
    fn label(&self) -> &str {
        "expected-embeds"
    }

    fn image_embeds(&self, fx: &Fixture, mode: &str) -> anyhow::Result<Tensor> {
        fx.expected.get(&format!("{mode}.image_embeds")).cloned().ok_or_else(|| anyhow!("{mode}.image_embeds missing"))
    }
}

/// The input page through preprocessing and the vision encoder, in the run's dtype.
struct EndToEnd {
    encoder: VisionEncoder,
    page: image::RgbImage,
}

impl EndToEnd {
    fn load(fx: &Fixture, dtype: DType, device: &Device) -> anyhow::Result<Self> {
        let cfg = VisionConfig::from_json_str(&fx.config_text)?;
        let vb = crate::model::loader::open_weights(&fx.dir, dtype, device)?;
        let encoder = VisionEncoder::from_config(&cfg, vb)?;
        let page = load_rgb(&input_page(&fx.dir)?)?;
        Ok(EndToEnd { encoder, page })
    }
}

impl ImageSource for EndToEnd {
    fn label(&self) -> &str {
        "end-to-end"
    }

    fn image_embeds(&self, fx: &Fixture, mode: &str) -> anyhow::Result<Tensor> {
        let spec = mode_spec(&fx.dir.join("views").join(mode), self.encoder.config().arch)?;
        Ok(self.encoder.encode(&self.page, &spec)?)
    }
}

/// The single image in `DIR/input/`.
fn input_page(dir: &Path) -> anyhow::Result<PathBuf> {
    let input = dir.join("input");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&input)
        .with_context(|| format!("reading {}", input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.into_iter().next().ok_or_else(|| anyhow!("{} holds no input image", input.display()))
}

/// Runs the decoder checks `fx` supports; returns the expected tensors compared.
pub fn run_checks(fx: &Fixture, opts: &ParityOptions, report: &mut Report) -> anyhow::Result<HashSet<String>> {
    if !fx.expected_json.is_object() {
        return Ok(HashSet::new());
    }
    let (cfg, dec) = load_decoder_quantized(&fx.dir, opts.dtype, &opts.device, opts.quant)?;
    let run = Run { fx, opts, cfg: &cfg, dec: &dec };
    let mut seen = HashSet::new();
    match fx.kind() {
        FixtureKind::DecoderOnly => run.decoder_only(report, &mut seen)?,
        FixtureKind::Ocr => {
            run.ocr(&ExpectedEmbeds, report, &mut seen)?;
            let e2e = EndToEnd::load(fx, opts.dtype, &opts.device)?;
            run.ocr(&e2e, report, &mut seen)?;
        }
    }
    Ok(seen)
}

/// Loads a checkpoint folder's decoder on `device`.
pub fn load_decoder(dir: &Path, dtype: DType, device: &Device) -> anyhow::Result<(ModelConfig, DeepseekDecoder)> {
    let cfg = ModelConfig::from_dir(dir)?;
    let vb = crate::model::loader::open_weights(dir, dtype, device)?;
    let dec = DeepseekDecoder::load(&cfg.decoder, vb)?;
    Ok((cfg, dec))
}

/// [`load_decoder`] with the linear weights stored per `quant` (the engine's loader).
fn load_decoder_quantized(
    dir: &Path,
    dtype: DType,
    device: &Device,
    quant: docseek_kernels::linear::Quant,
) -> anyhow::Result<(ModelConfig, DeepseekDecoder)> {
    if quant == docseek_kernels::linear::Quant::None {
        return load_decoder(dir, dtype, device);
    }
    let cfg = ModelConfig::from_dir(dir)?;
    let quant = crate::model::loader::check_quant(Some(quant), device)?;
    let dec = crate::model::loader::load_decoder(dir, &cfg.decoder, dtype, device, quant)?;
    Ok((cfg, dec))
}

fn ids_of(v: &Value) -> anyhow::Result<Vec<u32>> {
    v.as_array()
        .ok_or_else(|| anyhow!("expected an id list"))?
        .iter()
        .map(|x| x.as_u64().map(|u| u as u32).ok_or_else(|| anyhow!("bad id")))
        .collect()
}

fn usize_of(v: &Value, what: &str) -> anyhow::Result<usize> {
    v.as_u64().map(|u| u as usize).ok_or_else(|| anyhow!("expected.json: {what} missing"))
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

/// One fixture's decoder checks.
struct Run<'a> {
    fx: &'a Fixture,
    opts: &'a ParityOptions,
    cfg: &'a ModelConfig,
    dec: &'a DeepseekDecoder,
}

impl Run<'_> {
    fn eos(&self) -> Option<u32> {
        self.cfg.decoder.eos_token_id
    }

    fn vocab(&self) -> usize {
        self.cfg.decoder.vocab_size
    }

    fn max_new(&self) -> usize {
        self.fx.expected_json["max_new_tokens"].as_u64().unwrap_or(32) as usize
    }

    /// Compares `got` with expected tensor `key` when the fixture has it.
    fn floats(&self, name: &str, key: &str, got: &[f32], report: &mut Report, seen: &mut HashSet<String>) {
        if let Some((_, want)) = self.fx.expected_f32(key) {
            seen.insert(key.to_string());
            report.push(self.graded(compare_floats(name, got, &want, self.opts.tolerance())));
        }
    }

    /// Compares id sequences (exact).
    fn ids(&self, name: &str, got: &[u32], want: &[u32], report: &mut Report) {
        report.push(self.graded(compare_ids(name, got, want)));
    }

    /// A decoder check as it counts in this dtype: binding in f32, informational otherwise;
    /// with quantized weights (f32 activations) ids bind and logits inform.
    fn graded(&self, check: Check) -> Check {
        let quantized = self.opts.quant != docseek_kernels::linear::Quant::None;
        let binding = self.opts.dtype == DType::F32 && (!quantized || !check.name.contains("logits"));
        if binding || check.passed {
            return check;
        }
        let how = if quantized { format!("{} weights", self.opts.quant) } else { format!("{:?}", self.opts.dtype) };
        Check { passed: true, detail: format!("(informational with {how}) {}", check.detail), ..check }
    }

    fn decoder_only(&self, report: &mut Report, seen: &mut HashSet<String>) -> anyhow::Result<()> {
        let json = &self.fx.expected_json;
        let name = &self.fx.name;
        let ids = ids_of(&json["input_ids"]).context("expected.json: input_ids")?;
        let embeds = self.dec.embed(&ids)?;
        if self.fx.expected.contains_key("logits") {
            let mut cache = self.dec.new_cache(ids.len())?;
            let all = self.dec.forward(&embeds, &mut cache, LogitsFor::All)?;
            self.floats(&format!("{name}/logits"), "logits", &tensor_vec(&all)?, report, seen);
        }
        let mut rec = LogitsRecorder(Vec::new());
        let out =
            generate(self.dec, &embeds, &ids, self.eos(), &greedy_config(self.max_new(), NgramGuard::Off), &mut rec)?
                .ok_or_else(|| anyhow!("generation cancelled"))?;
        let vocab = self.vocab();
        self.floats(
            &format!("{name}/prefill_logits"),
            "prefill_logits",
            &rec.0[..vocab.min(rec.0.len())],
            report,
            seen,
        );
        self.floats(&format!("{name}/greedy_logits"), "greedy_logits", &rec.0, report, seen);
        if let Some(want) = json.pointer("/greedy/ids") {
            self.ids(&format!("{name}/greedy.ids"), &out.ids, &ids_of(want)?, report);
        }
        Ok(())
    }

    fn ocr(&self, images: &dyn ImageSource, report: &mut Report, seen: &mut HashSet<String>) -> anyhow::Result<()> {
        let modes = self.fx.expected_json["modes"].as_object().ok_or_else(|| anyhow!("expected.json: no modes"))?;
        let vocab = self.vocab();
        let image_token = self.cfg.image_token_id;
        for (mode, m) in modes {
            let tag = format!("{}/{mode}/{}", self.fx.name, images.label());
            let want_ids = ids_of(&m["input_ids"]).context("expected.json: input_ids")?;
            let image = images.image_embeds(self.fx, mode)?.to_device(self.dec.device())?;
            // The prompt as the engine lays it out: BOS, one slot per feature row, the text ids.
            let text_start = want_ids.iter().rposition(|&t| t == image_token).map_or(1, |p| p + 1);
            let bos = self.cfg.decoder.bos_token_id.unwrap_or(0);
            let ids = prompt_ids(bos, image_token, image.dim(0)?, &want_ids[text_start..]);
            report.push(compare_ids(&format!("{tag}/prompt_ids"), &ids, &want_ids));
            if ids != want_ids {
                continue;
            }
            let embeds = embed_with_image(self.dec, &ids, image_token, Some(&image))?;

            let mut rec = LogitsRecorder(Vec::new());
            let greedy = generate(
                self.dec,
                &embeds,
                &ids,
                self.eos(),
                &greedy_config(self.max_new(), NgramGuard::Off),
                &mut rec,
            )?
            .ok_or_else(|| anyhow!("generation cancelled"))?;
            let key = format!("{mode}.prefill_logits");
            if !self.fx.expected.contains_key(&key) {
                bail!("{key} missing");
            }
            self.floats(&format!("{tag}/prefill_logits"), &key, &rec.0[..vocab.min(rec.0.len())], report, seen);
            self.floats(&format!("{tag}/greedy_logits"), &format!("{mode}.greedy_logits"), &rec.0, report, seen);
            self.ids(&format!("{tag}/greedy"), &greedy.ids, &ids_of(&m["greedy"]["ids"])?, report);

            for variant in ["ngram_vllm", "ngram_vllm_nowl"] {
                let v = &m[variant];
                if v.is_null() {
                    continue;
                }
                let guard = NgramGuard::Vllm {
                    size: usize_of(&v["ngram_size"], "ngram_size")?,
                    window: usize_of(&v["window_size"], "window_size")?,
                    whitelist: ids_of(&v["whitelist_token_ids"])?,
                };
                self.variant(&embeds, &ids, guard, &format!("{tag}/{variant}"), &ids_of(&v["ids"])?, report)?;
            }
            let hf = &m["ngram_hf"];
            if !hf.is_null() {
                let guard = NgramGuard::Hf { size: usize_of(&hf["no_repeat_ngram_size"], "no_repeat_ngram_size")? };
                self.variant(&embeds, &ids, guard, &format!("{tag}/ngram_hf"), &ids_of(&hf["ids"])?, report)?;
            }
        }
        Ok(())
    }

    fn variant(
        &self,
        embeds: &Tensor,
        ids: &[u32],
        guard: NgramGuard,
        name: &str,
        want: &[u32],
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let out = generate(self.dec, embeds, ids, self.eos(), &greedy_config(self.max_new(), guard), &mut Silent)?
            .ok_or_else(|| anyhow!("generation cancelled"))?;
        self.ids(name, &out.ids, want, report);
        Ok(())
    }
}
