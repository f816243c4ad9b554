//! The real engine: DeepSeek-OCR / DeepSeek-OCR-2 (vision encoder from `docseek-vision`,
//! the MoE decoder from `crate::model`), one page at a time.
//!
//! Per page: the task prompt is tokenised, the image becomes `slots` vision vectors, the
//! prompt is `[BOS] + [<image>] * slots + prompt ids` with the vectors spliced into the image
//! slots, and the decoder generates with the page's settings, streaming text pieces into the
//! sink. The architecture is chosen from `config.json`, so one `--model` flag serves both
//! families. Work is serialised on the engine (the model uses every core for one page).

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use candle_core::{DType, Device};
use docseek_vision::VisionEncoder;

use super::{EngineError, EngineInfo, Flow, OcrEngine, PageJob, PageText, PageTimings, TokenSink};
use crate::model::generation::{generate, Step, StepObserver};
use crate::model::loader::{load_decoder, open_weights, parse_device, parse_dtype, parse_quant, resolve_model_dir};
use crate::model::prompt::{embed_with_image, prompt_ids, PromptTokenizer};
use crate::model::{Architecture, DeepseekDecoder, ModelConfig, ModelError};
use crate::options::ModelArgs;

/// A loaded DeepSeek-OCR (-2) model.
pub struct DeepseekEngine {
    inner: Mutex<Loaded>,
    info: EngineInfo,
}

struct Loaded {
    cfg: ModelConfig,
    vision: VisionEncoder,
    decoder: DeepseekDecoder,
    tokenizer: PromptTokenizer,
}

impl std::fmt::Debug for DeepseekEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeepseekEngine").field("info", &self.info).finish()
    }
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        _ => "other",
    }
}

fn device_name(d: &Device) -> String {
    match d.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

impl DeepseekEngine {
    /// Resolves `args.model` (folder or hub id), then loads it.
    pub fn load(args: &ModelArgs) -> Result<Self, ModelError> {
        let dir = resolve_model_dir(&args.model, &args.revision)?;
        let device = parse_device(&args.device)?;
        let dtype = parse_dtype(args.dtype.as_deref(), &device)?;
        let quant = parse_quant(args.quant.as_deref(), &device)?;
        Self::load_dir(&dir, &args.model, dtype, &device, quant)
    }

    /// Loads a checkpoint folder (decoder weights stored per `quant`).
    pub fn load_dir(
        dir: &Path,
        name: &str,
        dtype: DType,
        device: &Device,
        quant: docseek_kernels::linear::Quant,
    ) -> Result<Self, ModelError> {
        let cfg = ModelConfig::from_dir(dir)?;
        if cfg.architecture == Architecture::DeepseekV2 {
            return Err(ModelError::Config(format!(
                "{} is a text-only DeepSeek-V2 checkpoint (no vision_config); docseek needs DeepSeek-OCR or DeepSeek-OCR-2",
                dir.display()
            )));
        }
        let tokenizer = PromptTokenizer::from_dir(dir)?;
        let vb = open_weights(dir, dtype, device)?;
        let raw = cfg.raw.to_string();
        let vision = VisionEncoder::load(&raw, vb.clone()).map_err(|e| ModelError::Config(format!("vision encoder: {e}")))?;
        drop(vb);
        let decoder = load_decoder(dir, &cfg.decoder, dtype, device, quant)?;
        let dtype_label = match quant {
            docseek_kernels::linear::Quant::None => dtype_name(dtype).to_string(),
            q => format!("{}/{q}", dtype_name(dtype)),
        };
        let info = EngineInfo {
            model: name.to_string(),
            architecture: cfg.architecture.name().to_string(),
            device: device_name(device),
            dtype: dtype_label,
        };
        Ok(DeepseekEngine { inner: Mutex::new(Loaded { cfg, vision, decoder, tokenizer }), info })
    }
}

/// Turns generated ids into text pieces as soon as they form complete characters.
struct Detokenizer<'a> {
    tokenizer: &'a PromptTokenizer,
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
    emitted: String,
}

impl<'a> Detokenizer<'a> {
    fn new(tokenizer: &'a PromptTokenizer) -> Self {
        Detokenizer { tokenizer, ids: Vec::new(), prefix: 0, read: 0, emitted: String::new() }
    }

    /// Adds an id; returns the new text, if it completes at least one character.
    fn push(&mut self, id: u32) -> Option<String> {
        self.ids.push(id);
        let before = self.tokenizer.decode(&self.ids[self.prefix..self.read]).ok()?;
        let after = self.tokenizer.decode(&self.ids[self.prefix..]).ok()?;
        if after.len() <= before.len() || after.ends_with('\u{FFFD}') {
            return None;
        }
        let piece = after.get(before.len()..)?.to_string();
        self.prefix = self.read;
        self.read = self.ids.len();
        self.emitted.push_str(&piece);
        Some(piece)
    }

    /// The full text and whatever was not streamed yet.
    fn finish(&self) -> (String, Option<String>) {
        let full = self.tokenizer.decode(&self.ids).unwrap_or_else(|_| self.emitted.clone());
        let rest = full.strip_prefix(self.emitted.as_str()).filter(|r| !r.is_empty()).map(str::to_string);
        (full, rest)
    }
}

/// Streams pieces into the job's sink.
struct Streamer<'a, 'b> {
    detok: Detokenizer<'a>,
    sink: &'b mut dyn TokenSink,
}

impl StepObserver for Streamer<'_, '_> {
    fn on_token(&mut self, _step: usize, id: u32) -> Step {
        if let Some(piece) = self.detok.push(id) {
            if self.sink.on_token(&piece) == Flow::Stop {
                return Step::Stop;
            }
        }
        Step::Continue
    }
}

fn model_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Model(e.to_string())
}

impl OcrEngine for DeepseekEngine {
    fn info(&self) -> EngineInfo {
        self.info.clone()
    }

    fn recognize(&self, job: &PageJob, sink: &mut dyn TokenSink) -> Result<PageText, EngineError> {
        let prompt = job.task.prompt(job.locate.as_deref()).map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
        let loaded = self.inner.lock().map_err(|_| model_err("engine poisoned by an earlier panic"))?;
        let Loaded { cfg, vision, decoder, tokenizer } = &*loaded;
        let spec = job.mode.spec(vision.config().arch);
        vision.check_spec(&spec).map_err(|e| EngineError::InvalidRequest(e.to_string()))?;

        let t0 = Instant::now();
        let text_ids = tokenizer.encode(&prompt).map_err(model_err)?;
        let image = vision.encode(&job.image, &spec).map_err(model_err)?;
        let slots = image.dim(0).map_err(model_err)?;
        let bos = cfg.decoder.bos_token_id.unwrap_or(0);
        let ids = prompt_ids(bos, cfg.image_token_id, slots, &text_ids);
        let embeds = embed_with_image(decoder, &ids, cfg.image_token_id, Some(&image)).map_err(model_err)?;
        let encode = t0.elapsed();

        let mut streamer = Streamer { detok: Detokenizer::new(tokenizer), sink };
        let out = generate(decoder, &embeds, &ids, cfg.decoder.eos_token_id, &job.generation, &mut streamer)
            .map_err(model_err)?;
        let Some(out) = out else {
            return Err(EngineError::Cancelled);
        };
        let (raw, rest) = streamer.detok.finish();
        if let Some(rest) = rest {
            if streamer.sink.on_token(&rest) == Flow::Stop {
                return Err(EngineError::Cancelled);
            }
        }
        Ok(PageText {
            raw,
            outcome: out.outcome,
            prompt_tokens: out.prompt_tokens,
            generated_tokens: out.ids.len(),
            timings: PageTimings { encode, prefill: out.prefill, decode: out.decode },
        })
    }
}
