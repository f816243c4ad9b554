//! RMSNorm (+ fused residual add) and SiLU-and-multiply.

use candle_core::{Device, Result, Tensor, D};

use super::{host, no_kernel, same_device, with_float};
use crate::reference::norm as reference;

/// RMSNorm over the last dim: `y = T(T(x / sqrt(mean(x^2) + eps)) * w)`, f32 statistics
/// (`DeepseekV2RMSNorm`). `x` and `weight` share a dtype; `x` is made contiguous.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    Ok(norm(x, None, weight, eps)?.1)
}

/// `h = T(x + residual)` and `rms_norm(h)` in one pass: returns `(h, y)`.
pub fn add_rms_norm(x: &Tensor, residual: &Tensor, weight: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    let (h, y) = norm(x, Some(residual), weight, eps)?;
    Ok((h.expect("residual output"), y))
}

fn norm(x: &Tensor, residual: Option<&Tensor>, weight: &Tensor, eps: f32) -> Result<(Option<Tensor>, Tensor)> {
    let dim = x.dim(D::Minus1)?;
    if weight.dims1()? != dim || weight.dtype() != x.dtype() {
        candle_core::bail!(
            "rms_norm: weight {:?} {:?} for x {:?} {:?}",
            weight.shape(),
            weight.dtype(),
            x.shape(),
            x.dtype()
        );
    }
    if let Some(r) = residual {
        if r.shape() != x.shape() || r.dtype() != x.dtype() {
            candle_core::bail!("rms_norm: residual {:?} for x {:?}", r.shape(), x.shape());
        }
        same_device(x.device(), &[r], "rms_norm")?;
    }
    same_device(x.device(), &[weight], "rms_norm")?;
    match x.device() {
        Device::Cpu => with_float!(x.dtype(), T => {
            let xs = host::<T>(x)?;
            let rs = residual.map(host::<T>).transpose()?;
            let (y, h) = reference::rms_norm(&xs, rs.as_deref(), &host::<T>(weight)?, eps);
            let y = Tensor::from_vec(y, x.shape(), &Device::Cpu)?;
            let h = h.map(|h| Tensor::from_vec(h, x.shape(), &Device::Cpu)).transpose()?;
            Ok((h, y))
        }),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => crate::cuda::norm::rms_norm(x, residual, weight, eps),
        dev => no_kernel("rms_norm", dev),
    }
}

/// `silu(g) * u` of `gate_up` `[..., 2 * inter]` (gate first, up second) into `[..., inter]`,
/// computed in f32 and rounded once.
pub fn silu_mul(gate_up: &Tensor) -> Result<Tensor> {
    let two = gate_up.dim(D::Minus1)?;
    if two % 2 != 0 {
        candle_core::bail!("silu_mul: last dim {two} is odd");
    }
    let mut shape = gate_up.dims().to_vec();
    *shape.last_mut().expect("non-scalar") = two / 2;
    match gate_up.device() {
        Device::Cpu => with_float!(gate_up.dtype(), T => {
            let out = reference::silu_mul(&host::<T>(gate_up)?, two / 2);
            Tensor::from_vec(out, shape, &Device::Cpu)
        }),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => crate::cuda::norm::silu_mul(gate_up, shape),
        dev => no_kernel("silu_mul", dev),
    }
}
