//! Rotary embedding with per-token positions.

use candle_core::{DType, Device, Result, Tensor};

use super::{expect_dtype, host, no_kernel, same_device, with_float};
pub use crate::reference::rope::RopeStyle;

/// Rotates `x` `[tokens, heads, dim]`: token `t` uses row `positions[t]` (u32 `[tokens]`) of
/// the tables `cos`, `sin` `[rows, dim / 2]` (x's dtype). Computed in f32, rounded once.
pub fn rope(x: &Tensor, positions: &Tensor, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> Result<Tensor> {
    let (tokens, heads, dim) = x.dims3()?;
    let (rows, half) = cos.dims2()?;
    if dim % 2 != 0 || half != dim / 2 || sin.dims2()? != (rows, half) {
        candle_core::bail!("rope: x {:?} with tables {:?} {:?}", x.shape(), cos.shape(), sin.shape());
    }
    if positions.dims1()? != tokens {
        candle_core::bail!("rope: {} positions for {tokens} tokens", positions.dims1()?);
    }
    expect_dtype(positions, DType::U32, "rope positions")?;
    expect_dtype(cos, x.dtype(), "rope cos")?;
    expect_dtype(sin, x.dtype(), "rope sin")?;
    same_device(x.device(), &[positions, cos, sin], "rope")?;
    match x.device() {
        Device::Cpu => with_float!(x.dtype(), T => {
            let pos = host::<u32>(positions)?;
            if let Some(p) = pos.iter().find(|&&p| p as usize >= rows) {
                candle_core::bail!("rope: position {p} past the {rows}-row tables");
            }
            let (c, s) = (host::<T>(cos)?, host::<T>(sin)?);
            let y = crate::reference::rope::rope(&host::<T>(x)?, heads, dim, &pos, &c, &s, style);
            Tensor::from_vec(y, x.shape(), &Device::Cpu)
        }),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => crate::cuda::rope::rope(x, positions, cos, sin, style),
        dev => no_kernel("rope", dev),
    }
}
