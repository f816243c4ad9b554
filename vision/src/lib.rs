//! docseek-vision: the vision side of DeepSeek-OCR and DeepSeek-OCR-2.
//!
//! Image in, vision tokens out. Preprocessing (Pillow-exact resize, padding, dynamic tiling),
//! the DeepEncoder (SAM-B + 16x compressor + CLIP-L + projector) and DeepEncoder V2 (SAM-B +
//! Qwen2-style encoder with learned queries). No HTTP, no PDF, no async in this crate.
//!
//! Entry points: [`VisionEncoder::load`] (config.json + `VarBuilder` with official names),
//! [`VisionEncoder::encode`] (`RgbImage` + [`ModeSpec`] → `[slots, llm_dim]`), [`slot_count`]
//! (slots without running the model) and [`tensor_specs`] (every vision tensor's name and shape).

pub mod attention;
pub mod clip;
pub mod config;
pub mod encoder;
pub mod error;
pub mod interp;
pub mod linear;
pub mod mode;
pub mod preprocess;
pub mod qwen2_encoder;
pub mod random;
pub mod resample;
pub mod sam;
pub mod tiling;

pub use config::{Architecture, VisionConfig};
pub use encoder::{slot_count, tensor_specs, Stages, VisionEncoder};
pub use error::{Result, VisionError};
pub use mode::{Mode, ModeSpec};
pub use preprocess::{make_views, Views};
pub use tiling::TileGrid;
