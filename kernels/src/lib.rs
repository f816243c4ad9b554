//! docseek-kernels: docseek's own compute kernels.
//!
//! Each kernel is a candle custom op or device-generic op ([`ops`]) with a CPU reference
//! ([`reference`], always compiled and tested) and, where it pays, a fast CPU kernel ([`cpu`])
//! and a CUDA implementation behind the `cuda` feature (`cuda/*.cu`, compiled to PTX by
//! `build.rs`, launched through cudarc from `src/cuda/`).
//!
//! - [`reference`]: plain, obviously-correct implementations every kernel is tested against.
//! - [`cpu`]: the fast CPU kernels (runtime dispatch: AVX-512 BF16/VNNI, AVX-512, AVX2,
//!   portable): bf16 and q8/q4 matrix products, the fused MoE, paged attention.
//! - [`ops`]: device-generic ops (CPU reference path, CUDA kernels under the feature).
//! - [`paged`]: paged attention over the decoder's block-allocated KV cache.
//! - [`linear`]: the one linear layer type of the decoder and the vision encoder, holding its
//!   weight as a candle tensor (any device) or in a kernel format (CPU: bf16, q8, q4), run as
//!   a candle custom op; [`moe_op`]: the fused CPU MoE layer; [`attention_op`]: the vision
//!   encoder's bf16 attention; [`causal_attention_op`]: the decoder prefill's causal bf16
//!   attention; [`storage`]: owned or memory-mapped weight bytes.

pub mod attention_op;
pub mod causal_attention_op;
pub mod cpu;
pub mod decode_attention_op;
pub mod linear;
pub mod moe_op;
pub mod ops;
pub mod paged;
pub mod reference;
pub mod storage;

#[cfg(feature = "cuda")]
pub mod cuda;

/// Free and total memory of a GPU in bytes (`None` on the CPU and in CPU-only builds).
pub fn device_memory(device: &candle_core::Device) -> Option<(usize, usize)> {
    #[cfg(feature = "cuda")]
    {
        if let candle_core::Device::Cuda(d) = device {
            return d.cuda_stream().context().mem_get_info().ok();
        }
    }
    let _ = device;
    None
}

/// What this build of the kernels targets, for `--version`: `"cpu"` or
/// `"cuda 13.0, PTX for sm_90"`.
pub fn build_info() -> &'static str {
    #[cfg(feature = "cuda")]
    {
        cuda::BUILD_INFO
    }
    #[cfg(not(feature = "cuda"))]
    {
        "cpu"
    }
}
