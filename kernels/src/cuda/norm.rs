//! Launchers of `cuda/norm.cu`.

use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
use candle_core::{Result, Shape, Tensor, D};

use super::{alloc, cuda_storage, device, func, grid_for, launch_cfg, launched, ptx, suffix, view, wrap};
use crate::ops::with_float;

/// Threads per row of the RMSNorm kernel.
const NORM_THREADS: u32 = 256;
/// Threads per block of element-wise kernels.
const EW_THREADS: u32 = 256;

/// See [`crate::ops::norm::rms_norm`]; returns `(h, y)` with `h` only when `residual` is given.
pub fn rms_norm(x: &Tensor, residual: Option<&Tensor>, weight: &Tensor, eps: f32) -> Result<(Option<Tensor>, Tensor)> {
    let dev = device(x)?;
    let x = x.contiguous()?;
    let w = weight.contiguous()?;
    let r = residual.map(Tensor::contiguous).transpose()?;
    let dim = x.dim(D::Minus1)?;
    let n = x.elem_count();
    let rows = n / dim.max(1);
    let f = func(&dev, ptx::NORM, &format!("rmsnorm_{}", suffix(x.dtype())?))?;
    with_float!(x.dtype(), T => {
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let xv = view::<T>(cuda_storage(&xs)?, xl)?;
        let wv = view::<T>(cuda_storage(&ws)?, wl)?;
        let rg = r.as_ref().map(|r| r.storage_and_layout());
        let rv = match &rg {
            Some((s, l)) => Some(view::<T>(cuda_storage(s)?, l)?),
            None => None,
        };
        let mut y = alloc::<T>(&dev, n)?;
        let mut h = if r.is_some() { Some(alloc::<T>(&dev, n)?) } else { None };
        let null = 0u64;
        let (dim_i, eps) = (dim as i32, eps);
        if rows > 0 {
            let stream = dev.cuda_stream();
            let mut b = stream.launch_builder(&f);
            b.arg(&xv);
            match &rv {
                Some(v) => b.arg(v),
                None => b.arg(&null),
            };
            b.arg(&wv);
            match h.as_mut() {
                Some(hs) => b.arg(hs),
                None => b.arg(&null),
            };
            b.arg(&mut y);
            b.arg(&dim_i);
            b.arg(&eps);
            let cfg = launch_cfg((rows as u32, 1, 1), NORM_THREADS, 0);
            // SAFETY: the arguments match the kernel's signature; every row of y (and h) is written.
            launched(unsafe { b.launch(cfg) })?;
        }
        let h = h.map(|h| wrap(h, &dev, x.shape()));
        Ok((h, wrap(y, &dev, x.shape())))
    })
}

/// See [`crate::ops::norm::silu_mul`].
pub fn silu_mul(gate_up: &Tensor, out_shape: Vec<usize>) -> Result<Tensor> {
    let dev = device(gate_up)?;
    let gu = gate_up.contiguous()?;
    let two = gu.dim(D::Minus1)?;
    let inter = two / 2;
    let n = gu.elem_count() / 2;
    let rows = (n / inter.max(1)) as u64;
    let f = func(&dev, ptx::NORM, &format!("silu_mul_{}", suffix(gu.dtype())?))?;
    with_float!(gu.dtype(), T => {
        let (gs, gl) = gu.storage_and_layout();
        let gv = view::<T>(cuda_storage(&gs)?, gl)?;
        let mut out = alloc::<T>(&dev, n)?;
        let inter_i = inter as i32;
        if n > 0 {
            let stream = dev.cuda_stream();
            let mut b = stream.launch_builder(&f);
            b.arg(&gv).arg(&mut out).arg(&rows).arg(&inter_i);
            let cfg = launch_cfg((grid_for(n, EW_THREADS), 1, 1), EW_THREADS, 0);
            // SAFETY: matching signature; the grid-stride loop writes every output element.
            launched(unsafe { b.launch(cfg) })?;
        }
        Ok(wrap(out, &dev, Shape::from(out_shape)))
    })
}
