//! docseek-vision: the vision side of DeepSeek-OCR and DeepSeek-OCR-2.
//!
//! Image in, vision tokens out. Preprocessing (Pillow-exact resize, padding, dynamic tiling),
//! the DeepEncoder (SAM-B + 16x compressor + CLIP-L + projector) and DeepEncoder V2 (SAM-B +
//! Qwen2-style encoder with learned queries). No HTTP, no PDF, no async in this crate.

pub mod mode;

pub use mode::Mode;
