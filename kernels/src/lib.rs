//! docseek-kernels: docseek's own compute kernels.
//!
//! Each kernel is a candle custom op with a CPU reference (`cpu_fwd`, always compiled and
//! tested) and a CUDA implementation behind the `cuda` feature.
//!
//! - [`reference`]: plain, obviously-correct implementations every kernel is tested against.
//! - [`cpu`]: the fast CPU kernels.
//! - [`paged`]: paged attention over the decoder's block-allocated KV cache.

pub mod cpu;
pub mod paged;
pub mod reference;
