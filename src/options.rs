//! The OCR options shared by the batch CLI (`docseek ocr`) and the server (`docseek serve`,
//! request fields): one struct, parsed by clap on the command line and by serde at the HTTP
//! edge, with one set of defaults (clap's `default_value_t` and [`Default`] use the same
//! values) and one check, [`OcrOptions::validate`], that both front doors run.

use serde::{Deserialize, Serialize};

use crate::model::generation::DEFAULT_MAX_NEW_TOKENS;
use crate::model::ngram::{DEFAULT_NGRAM_SIZE, DEFAULT_NGRAM_WINDOW};
use crate::model::{DeviceSpec, Dtype, GenerationConfig, NgramGuard, Task};
use crate::pdf::{PageSelection, RenderOptions, DEFAULT_DPI};
use crate::Mode;
use docseek_kernels::linear::Quant;

/// Which no-repeat n-gram flavour to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "snake_case")]
pub enum NgramFlavour {
    /// The official vLLM processor (window over generated tokens, `<td>`/`</td>` whitelisted).
    #[default]
    Vllm,
    /// transformers' `no_repeat_ngram_size` over the whole sequence.
    Hf,
    /// No guard.
    Off,
}

/// Token ids of `<td>` and `</td>` in the DeepSeek-OCR tokenizer, never banned by the guard.
pub use crate::model::tokens::TABLE_CELL_IDS as TABLE_CELL_TOKEN_IDS;

/// Why a set of OCR options is refused (the CLI exits 2, the server answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidOptions(pub String);

/// Options of one OCR request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct OcrOptions {
    /// Resolution mode: tiny, small, base, large, gundam, gundam-master.
    #[arg(long, env = "DOCSEEK_MODE", default_value_t = Mode::default())]
    pub mode: Mode,

    /// Task: markdown (with layout), ocr, free, figure, describe, locate.
    #[arg(long, env = "DOCSEEK_TASK", value_enum, default_value_t = Task::default())]
    pub task: Task,

    /// Text to find, for `--task locate`.
    #[arg(long)]
    pub locate: Option<String>,

    /// PDF render resolution in dots per inch.
    #[arg(long, env = "DOCSEEK_DPI", default_value_t = DEFAULT_DPI)]
    pub dpi: f32,

    /// Pages to process, e.g. `1-3,7,10-` (default: all).
    #[arg(long)]
    pub pages: Option<PageSelection>,

    /// Password of encrypted PDFs.
    #[arg(long, env = "DOCSEEK_PDF_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// Expected languages (ISO 639-3 or BCP-47), a hint for language detection.
    #[arg(long = "lang", value_delimiter = ',')]
    pub languages: Vec<String>,

    /// Maximum new tokens per page.
    #[arg(long, env = "DOCSEEK_MAX_NEW_TOKENS", default_value_t = DEFAULT_MAX_NEW_TOKENS)]
    pub max_new_tokens: usize,

    /// Repetition guard flavour.
    #[arg(long, value_enum, default_value_t = NgramFlavour::default())]
    pub ngram: NgramFlavour,

    /// Repetition guard n-gram size.
    #[arg(long, default_value_t = DEFAULT_NGRAM_SIZE)]
    pub ngram_size: usize,

    /// Repetition guard window (vLLM flavour), in generated tokens.
    #[arg(long, default_value_t = DEFAULT_NGRAM_WINDOW)]
    pub ngram_window: usize,
}

impl Default for OcrOptions {
    fn default() -> Self {
        OcrOptions {
            mode: Mode::default(),
            task: Task::default(),
            locate: None,
            dpi: DEFAULT_DPI,
            pages: None,
            password: None,
            languages: Vec::new(),
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            ngram: NgramFlavour::default(),
            ngram_size: DEFAULT_NGRAM_SIZE,
            ngram_window: DEFAULT_NGRAM_WINDOW,
        }
    }
}

impl OcrOptions {
    /// The one check of option values, run by the CLI (`docseek ocr`, and `docseek serve` on
    /// its defaults) and by the server on every request.
    pub fn validate(&self) -> Result<(), InvalidOptions> {
        crate::pdf::check_dpi(self.dpi).map_err(InvalidOptions)?;
        if self.max_new_tokens == 0 {
            return Err(InvalidOptions("max_new_tokens must be at least 1".into()));
        }
        if self.task.prompt(self.locate.as_deref()).is_err() {
            return Err(InvalidOptions("the locate task needs a 'locate' text (--locate TEXT)".into()));
        }
        if self.ngram != NgramFlavour::Off && self.ngram_size == 0 {
            return Err(InvalidOptions("ngram_size must be at least 1 (or turn the guard off with ngram=off)".into()));
        }
        Ok(())
    }

    /// The decoder settings these options ask for.
    pub fn generation(&self) -> GenerationConfig {
        let ngram = match self.ngram {
            NgramFlavour::Off => NgramGuard::Off,
            NgramFlavour::Hf => NgramGuard::Hf { size: self.ngram_size },
            NgramFlavour::Vllm => NgramGuard::Vllm {
                size: self.ngram_size,
                window: self.ngram_window,
                whitelist: TABLE_CELL_TOKEN_IDS.to_vec(),
            },
        };
        GenerationConfig { max_new_tokens: self.max_new_tokens, ngram, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        options: OcrOptions,
        #[command(flatten)]
        model: ModelArgs,
    }

    #[test]
    fn clap_defaults_are_the_default() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["docseek"]).unwrap();
        assert_eq!(cli.options, OcrOptions::default());
        assert_eq!(cli.model.device, DeviceSpec::Auto);
        assert_eq!(cli.model.dtype, None);
        assert_eq!(cli.model.quant, None);
        let cli = Cli::try_parse_from(["docseek", "--quant", "q8"]).unwrap();
        assert_eq!(cli.model.quant, Some(Quant::Q8));
        assert!(Cli::try_parse_from(["docseek", "--quant", "q3"]).is_err());
        let cli = Cli::try_parse_from(["docseek", "--dtype", "bf16", "--device", "cuda:1"]).unwrap();
        assert_eq!((cli.model.dtype, cli.model.device), (Some(Dtype::Bf16), DeviceSpec::Cuda(1)));
        assert!(Cli::try_parse_from(["docseek", "--dtype", "int3"]).is_err());
    }

    #[test]
    fn one_check_for_every_front_door() {
        assert_eq!(OcrOptions::default().validate(), Ok(()));
        let bad = |o: OcrOptions| o.validate().unwrap_err().to_string();
        assert!(bad(OcrOptions { max_new_tokens: 0, ..Default::default() }).contains("max_new_tokens"));
        assert!(bad(OcrOptions { dpi: 5.0, ..Default::default() }).contains("dpi"));
        assert!(bad(OcrOptions { dpi: f32::NAN, ..Default::default() }).contains("dpi"));
        assert!(bad(OcrOptions { task: Task::Locate, ..Default::default() }).contains("locate"));
        assert!(bad(OcrOptions { ngram_size: 0, ..Default::default() }).contains("ngram_size"));
        let off = OcrOptions { ngram: NgramFlavour::Off, ngram_size: 0, ..Default::default() };
        assert_eq!(off.validate(), Ok(()));
    }

    #[test]
    fn json_defaults_and_rejects_unknown_fields() {
        let o: OcrOptions = serde_json::from_str(r#"{"mode":"base","pages":"1-2"}"#).unwrap();
        assert_eq!(o.mode, Mode::Base);
        assert_eq!(o.pages.unwrap().indices(5), vec![0, 1]);
        assert_eq!(o.dpi, DEFAULT_DPI);
        assert!(serde_json::from_str::<OcrOptions>(r#"{"mdoe":"base"}"#).is_err());
        assert!(serde_json::from_str::<OcrOptions>(r#"{"pages":"0"}"#).is_err());
    }
}

impl From<&OcrOptions> for RenderOptions {
    /// How to render a document for these options (no text layer: the model reads pixels).
    fn from(o: &OcrOptions) -> Self {
        RenderOptions { dpi: o.dpi, pages: o.pages.clone(), password: o.password.clone(), text: false }
    }
}

/// Which model to run and where: shared by `docseek ocr` and `docseek serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct ModelArgs {
    /// A local model folder or a Hugging Face hub id (downloaded into the HF cache);
    /// `fake` runs the deterministic fake engine (for tests and demos).
    #[arg(long, env = "DOCSEEK_MODEL", default_value = "deepseek-ai/DeepSeek-OCR")]
    pub model: String,

    /// Hub revision (branch, tag or commit) when `--model` is a hub id.
    #[arg(long, env = "DOCSEEK_REVISION", default_value = "main")]
    pub revision: String,

    /// Weight dtype: f32, bf16 or f16 (default: bf16 on GPU, the faster one on CPU).
    #[arg(long, env = "DOCSEEK_DTYPE")]
    pub dtype: Option<Dtype>,

    /// Device: auto (cuda:0 when this is a `--features cuda` build and a GPU answers, else cpu),
    /// cpu, or cuda / cuda:N.
    #[arg(long, env = "DOCSEEK_DEVICE", default_value_t = DeviceSpec::Auto)]
    pub device: DeviceSpec,

    /// Decoder weight storage on the CPU: none, q8 or q4 (quantized at load, or mapped from
    /// the file `docseek quantize` saves beside the checkpoint).
    #[arg(long, env = "DOCSEEK_QUANT")]
    #[serde(default)]
    pub quant: Option<Quant>,
}
