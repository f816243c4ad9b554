//! Device-generic ops: each runs its CUDA kernel on a CUDA tensor (`cuda` feature) and its
//! [`crate::reference`] implementation on a CPU tensor (slow but exact: it is what the kernels
//! are tested against, and it lets the decoder's fused path run, and be tested, on any machine).
//!
//! Every op says its semantics in its `///`; inputs must be contiguous where said.

pub mod attention;
pub mod fp8;
pub mod moe;
pub mod norm;
pub mod rope;

use candle_core::{DType, Device, Result, Tensor, WithDType};

/// Runs `$body` with `$T` bound to the Rust type of a float dtype (f32, bf16, f16).
macro_rules! with_float {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $T = f32;
                $body
            }
            candle_core::DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            candle_core::DType::F16 => {
                type $T = half::f16;
                $body
            }
            d => candle_core::bail!("unsupported dtype {d:?} (f32, bf16, f16)"),
        }
    };
}
pub(crate) use with_float;

/// A tensor's values in row-major order.
pub(crate) fn host<T: WithDType>(t: &Tensor) -> Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
}

/// Fails unless every tensor is on `dev`.
pub(crate) fn same_device(dev: &Device, ts: &[&Tensor], op: &str) -> Result<()> {
    for t in ts {
        if !t.device().same_device(dev) {
            candle_core::bail!("{op}: tensors on different devices ({:?} vs {:?})", t.device(), dev);
        }
    }
    Ok(())
}

/// Fails unless `t` has dtype `want`.
pub(crate) fn expect_dtype(t: &Tensor, want: DType, what: &str) -> Result<()> {
    if t.dtype() != want {
        candle_core::bail!("{what}: expected {want:?}, got {:?}", t.dtype());
    }
    Ok(())
}

/// Error for a device without a kernel (a CUDA tensor in a build without the `cuda` feature).
pub(crate) fn no_kernel<R>(op: &str, dev: &Device) -> Result<R> {
    candle_core::bail!("{op}: no kernel for device {dev:?} in this build")
}

/// Whether this build runs `t`'s ops with CUDA kernels.
pub fn has_cuda_kernels(dev: &Device) -> bool {
    cfg!(feature = "cuda") && dev.is_cuda()
}
