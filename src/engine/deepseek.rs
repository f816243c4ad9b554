//! The real engine: DeepSeek-OCR / DeepSeek-OCR-2 (vision encoder from `docseek-vision`,
//! the MoE decoder from `crate::model`).
//!
//! Per page: the task prompt is tokenised, the image becomes `slots` vision vectors, the
//! prompt is `[BOS] + [<image>] * slots + prompt ids` with the vectors spliced into the image
//! slots, and the decoder generates with the page's settings, streaming text pieces into the
//! sink. The architecture is chosen from `config.json`, so one `--model` flag serves both
//! families.
//!
//! Two ways to run: [`OcrEngine::recognize`] decodes one page alone (calls are serialised:
//! the model uses every core for one page), and [`BatchEngine`] lets the engine owner encode
//! pages on worker threads and decode many together over a paged KV cache
//! ([`super::session::DecoderSession`]).

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use candle_core::{DType, Device};
use docseek_vision::VisionEncoder;

use super::batching::{BatchEngine, DecodeSession, Prepared};
use super::session::{DecoderSession, Detokenizer, PromptRows};
use super::{EngineError, EngineInfo, Flow, OcrEngine, PageJob, PageText, PageTimings, TokenSink};
use crate::model::generation::{generate, Step, StepObserver};
use crate::model::loader::{check_quant, load_decoder, open_weights, resolve_model_dir};
use crate::model::paged_cache::default_budget_bytes;
use crate::model::prompt::{embed_with_image, prompt_ids, PromptTokenizer};
use crate::model::{DeepseekDecoder, Dtype, ModelConfig, ModelError};
use crate::options::ModelArgs;

/// A loaded DeepSeek-OCR (-2) model.
pub struct DeepseekEngine {
    loaded: Loaded,
    /// Serialises [`OcrEngine::recognize`] calls.
    serial: Mutex<()>,
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
        let device = args.device.open()?;
        let dtype = args.dtype.unwrap_or_else(|| Dtype::default_for(&device)).candle();
        let quant = check_quant(args.quant, &device)?;
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
        let Some(vision_cfg) = &cfg.vision else {
            return Err(ModelError::Config(format!(
                "{} is a text-only DeepSeek-V2 checkpoint (no vision_config); docseek needs DeepSeek-OCR or DeepSeek-OCR-2",
                dir.display()
            )));
        };
        let tokenizer = PromptTokenizer::from_dir(dir)?;
        let vb = open_weights(dir, dtype, device)?;
        let vision = VisionEncoder::from_config(vision_cfg, vb.clone())
            .map_err(|e| ModelError::Config(format!("vision encoder: {e}")))?;
        drop(vb);
        let decoder = load_decoder(dir, &cfg.decoder, dtype, device, quant)?;
        let dtype_label = match quant {
            docseek_kernels::linear::Quant::None => dtype_name(dtype).to_string(),
            q => format!("{}/{q}", dtype_name(dtype)),
        };
        let info = EngineInfo {
            model: name.to_string(),
            architecture: cfg.architecture_name().to_string(),
            device: device_name(device),
            dtype: dtype_label,
        };
        Ok(DeepseekEngine { loaded: Loaded { cfg, vision, decoder, tokenizer }, serial: Mutex::new(()), info })
    }

    /// Tokenises the task prompt, encodes the image and lays out the prompt embeddings.
    fn prepare_rows(&self, job: &PageJob) -> Result<(PromptRows, std::time::Duration), EngineError> {
        let prompt = job.task.prompt(job.locate.as_deref()).map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
        let Loaded { cfg, vision, decoder, tokenizer } = &self.loaded;
        let spec = job.mode.spec(vision.config().arch);
        vision.check_spec(&spec).map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
        let t0 = Instant::now();
        let text_ids = tokenizer.encode(&prompt).map_err(model_err)?;
        let image = vision.encode(&job.image, &spec).map_err(model_err)?;
        let slots = image.dim(0).map_err(model_err)?;
        let bos = cfg.decoder.bos_token_id.unwrap_or(0);
        let ids = prompt_ids(bos, cfg.image_token_id, slots, &text_ids);
        let embeds = embed_with_image(decoder, &ids, cfg.image_token_id, Some(&image)).map_err(model_err)?;
        Ok((PromptRows { embeds, ids }, t0.elapsed()))
    }
}

impl BatchEngine for DeepseekEngine {
    fn prepare(&self, job: &PageJob) -> Result<Prepared, EngineError> {
        let (rows, encode) = self.prepare_rows(job)?;
        Ok(Prepared { prompt_tokens: rows.ids.len(), payload: Box::new(rows), encode })
    }

    fn session(&self, kv_cache_bytes: Option<usize>) -> Result<Box<dyn DecodeSession + '_>, EngineError> {
        let decoder = &self.loaded.decoder;
        let budget = kv_cache_bytes.unwrap_or_else(|| default_budget_bytes(decoder.device()));
        let session = DecoderSession::new(decoder, Some(&self.loaded.tokenizer), budget).map_err(model_err)?;
        tracing::info!(
            blocks = session.cache().num_blocks(),
            mib = session.cache().capacity_bytes() >> 20,
            "KV cache for batched decoding"
        );
        Ok(Box::new(session))
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
        let _serial = self.serial.lock().unwrap_or_else(|p| p.into_inner());
        let (rows, encode) = self.prepare_rows(job)?;
        let Loaded { cfg, decoder, tokenizer, .. } = &self.loaded;
        let mut streamer = Streamer { detok: Detokenizer::new(tokenizer), sink };
        let out = generate(decoder, &rows.embeds, &rows.ids, cfg.decoder.eos_token_id, &job.generation, &mut streamer)
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

    fn batching(&self) -> Option<&dyn BatchEngine> {
        Some(self)
    }
}
