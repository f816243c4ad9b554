//! docseek-kernels: docseek's own compute kernels.
//!
//! - [`cpu`]: SIMD kernels with runtime dispatch (AVX-512 BF16/VNNI, AVX-512, AVX2, portable):
//!   bf16 and q8/q4 matrix products and the fused MoE feed-forward.
//! - [`reference`]: the plain implementations the kernels are tested against.
//! - [`linear`]: the one linear layer type of the decoder and the vision encoder, holding its
//!   weight as a candle tensor (any device) or in a kernel format (CPU), run as a candle
//!   custom op.

pub mod attention_op;
pub mod cpu;
pub mod reference;
pub mod linear;
pub mod moe_op;
pub mod storage;
