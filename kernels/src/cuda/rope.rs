//! Launcher of `cuda/rope.cu`.

use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
use candle_core::{Result, Tensor};

use super::{alloc, cuda_storage, device, func, grid_for, launch_cfg, launched, ptx, suffix, view, wrap};
use crate::ops::rope::RopeStyle;
use crate::ops::with_float;

/// Threads per block.
const THREADS: u32 = 256;

/// See [`crate::ops::rope::rope`].
pub fn rope(x: &Tensor, positions: &Tensor, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> Result<Tensor> {
    let dev = device(x)?;
    let (x, positions, cos, sin) = (x.contiguous()?, positions.contiguous()?, cos.contiguous()?, sin.contiguous()?);
    let (tokens, heads, dim) = x.dims3()?;
    let n = x.elem_count();
    let f = func(&dev, ptx::ROPE, &format!("rope_{}", suffix(x.dtype())?))?;
    with_float!(x.dtype(), T => {
        let (xs, xl) = x.storage_and_layout();
        let (ps, pl) = positions.storage_and_layout();
        let (cs, cl) = cos.storage_and_layout();
        let (ss, sl) = sin.storage_and_layout();
        let xv = view::<T>(cuda_storage(&xs)?, xl)?;
        let pv = view::<u32>(cuda_storage(&ps)?, pl)?;
        let cv = view::<T>(cuda_storage(&cs)?, cl)?;
        let sv = view::<T>(cuda_storage(&ss)?, sl)?;
        let mut y = alloc::<T>(&dev, n)?;
        let (t_i, h_i, d_i) = (tokens as i32, heads as i32, dim as i32);
        let inter = i32::from(style == RopeStyle::Interleaved);
        if n > 0 {
            let stream = dev.cuda_stream();
            let mut b = stream.launch_builder(&f);
            b.arg(&xv).arg(&mut y).arg(&pv).arg(&cv).arg(&sv).arg(&t_i).arg(&h_i).arg(&d_i).arg(&inter);
            let cfg = launch_cfg((grid_for(n / 2, THREADS), 1, 1), THREADS, 0);
            // SAFETY: matching signature; every pair of every head is written.
            launched(unsafe { b.launch(cfg) })?;
        }
        Ok(wrap(y, &dev, x.shape()))
    })
}
