//! The OCR options shared by the batch CLI (`docseek ocr`) and the server (`docseek serve`,
//! request fields): one struct, parsed by clap on the command line and by serde at the HTTP edge.

use serde::{Deserialize, Serialize};

use crate::model::{GenerationConfig, NgramGuard, Task};
use crate::pdf::{PageSelection, DEFAULT_DPI};
use crate::Mode;

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
pub const TABLE_CELL_TOKEN_IDS: [u32; 2] = [128821, 128822];

/// Options of one OCR request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct OcrOptions {
    /// Resolution mode: tiny, small, base, large, gundam, gundam-master.
    #[arg(long, env = "DOCSEEK_MODE", default_value = "gundam")]
    pub mode: Mode,

    /// Task: markdown (with layout), ocr, free, figure, describe, locate.
    #[arg(long, env = "DOCSEEK_TASK", value_enum, default_value = "markdown")]
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
    #[arg(long, env = "DOCSEEK_MAX_NEW_TOKENS", default_value_t = crate::model::generation::DEFAULT_MAX_NEW_TOKENS)]
    pub max_new_tokens: usize,

    /// Repetition guard flavour.
    #[arg(long, value_enum, default_value = "vllm")]
    pub ngram: NgramFlavour,

    /// Repetition guard n-gram size.
    #[arg(long, default_value_t = 20)]
    pub ngram_size: usize,

    /// Repetition guard window (vLLM flavour), in generated tokens.
    #[arg(long, default_value_t = 50)]
    pub ngram_window: usize,
}

impl Default for OcrOptions {
    fn default() -> Self {
        OcrOptions {
            mode: Mode::Gundam,
            task: Task::Markdown,
            locate: None,
            dpi: DEFAULT_DPI,
            pages: None,
            password: None,
            languages: Vec::new(),
            max_new_tokens: crate::model::generation::DEFAULT_MAX_NEW_TOKENS,
            ngram: NgramFlavour::Vllm,
            ngram_size: 20,
            ngram_window: 50,
        }
    }
}

impl OcrOptions {
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
    pub dtype: Option<String>,

    /// Device: cpu, or cuda / cuda:N (needs a build with `--features cuda`).
    #[arg(long, env = "DOCSEEK_DEVICE", default_value = "cpu")]
    pub device: String,

    /// Decoder weight storage on the CPU: none, q8 or q4 (quantized at load, or mapped from
    /// the file `docseek quantize` saves beside the checkpoint).
    #[arg(long, env = "DOCSEEK_QUANT")]
    #[serde(default)]
    pub quant: Option<String>,
}
