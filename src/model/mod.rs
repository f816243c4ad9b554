//! The DeepSeek MoE decoder (MHA and MLA), generation, prompting and model loading.

pub mod generation;
pub mod task;

pub use generation::{GenerationConfig, NgramGuard, PageOutcome};
pub use task::Task;
