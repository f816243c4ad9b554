//! docseek-kernels: docseek's own compute kernels.
//!
//! Each kernel is a candle custom op or device-generic op ([`ops`]) with a CPU reference
//! ([`reference`], always compiled and tested) and, where it pays, a fast CPU kernel ([`cpu`])
//! and a CUDA implementation behind the `cuda` feature (`cuda/*.cu`, compiled to PTX by
//! `build.rs`, launched through cudarc from `src/cuda/`).
//!
//! - [`reference`]: plain, obviously-correct implementations every kernel is tested against.
//! - [`cpu`]: the fast CPU kernels.
//! - [`ops`]: device-generic ops (CPU reference path, CUDA kernels under the feature).
//! - [`paged`]: paged attention over the decoder's block-allocated KV cache.

pub mod cpu;
pub mod ops;
pub mod paged;
pub mod reference;

#[cfg(feature = "cuda")]
pub mod cuda;

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
