//! docseek: multilingual document OCR built on DeepSeek-OCR and DeepSeek-OCR-2.
//!
//! Pipeline: `pdf` (rasterize, crash-isolated) -> `docseek_vision` (encoder) -> `model`
//! (DeepSeek MoE decoder) -> `doc` (structured blocks, renderers) -> `docseek_langs`
//! (languages, routing). `engine` is the seam between the model and its users (`server`,
//! the batch CLI), so they can run against a fake engine in tests.

pub mod alloc;
pub mod cli;
pub mod doc;
pub mod engine;
pub mod model;
pub mod options;
pub mod parity;
pub mod pdf;
pub mod pipeline;
pub mod server;

pub use docseek_vision::Mode;
