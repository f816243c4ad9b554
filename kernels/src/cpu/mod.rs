//! CPU kernels with runtime dispatch on the instruction set ([`isa`]).
//!
//! - [`gemv_bf16`] / [`gemm_bf16`]: bf16 weights x bf16 (or bf16-rounded f32) activations, f32
//!   accumulation; the GEMV for a few rows (decode), the packed GEMM beyond (prefill, vision);
//!   [`dot_choice`]: whether the GEMM uses `vdpbf16ps` or f32 FMAs on this CPU; [`amx`]: the
//!   AMX tile path of the GEMM where the CPU has it.
//! - [`quant`] / [`qmatmul`]: q8 and q4 block-quantized weights x per-block quantized
//!   activations (VNNI dot products).
//! - [`matmul`]: one entry point over every format; [`moe`]: a whole MoE layer in one call.
//! - [`epilogue`]: bias, activation, residual and rounding after a product, threaded.
//! - [`pool`]: the work splitting they share.
//! - [`attention`]: paged decode attention; [`decode_attention`]: one query row over a
//!   contiguous KV cache.

pub mod amx;
pub mod attention;
pub mod decode_attention;
pub mod dot_choice;
pub mod epilogue;
pub mod gemm_bf16;
pub mod gemv_bf16;
pub mod isa;
pub mod matmul;
pub mod moe;
pub mod pool;
pub mod qmatmul;
pub mod quant;
pub mod softmax;
pub mod vmath;

pub use isa::Isa;
