//! docseek-kernels: docseek's own compute kernels.
//!
//! Each kernel is a device-generic op ([`ops`]) with a CPU reference ([`reference`], always
//! compiled and tested) and a CUDA implementation behind the `cuda` feature (`cuda/*.cu`,
//! compiled to PTX by `build.rs`, launched through cudarc from `src/cuda/`).

pub mod ops;
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
