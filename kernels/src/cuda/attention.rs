//! Launchers of `cuda/attention.cu`.

use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
use candle_core::cuda_backend::CudaStorage;
use candle_core::{Layout, Result, Tensor};

use super::{alloc, cuda_storage, device, func, grid_for, launch_cfg, launched, ptx, suffix, view, wrap};
use crate::ops::with_float;

/// Warps per (head, sequence) block (the kernel's `WARPS`).
const WARPS: u32 = 4;
/// Threads per block of the row writer.
const EW_THREADS: u32 = 256;

/// See [`crate::ops::attention::paged_attention_mha`].
pub fn paged_mha(
    q: &Tensor,
    k_pool: &Tensor,
    v_pool: &Tensor,
    tables: &Tensor,
    lens: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    let dev = device(q)?;
    let (q, tables, lens) = (q.contiguous()?, tables.contiguous()?, lens.contiguous()?);
    let (seqs, heads, dim) = q.dims3()?;
    let (_, kvh, _, _) = k_pool.dims4()?;
    let max_blocks = tables.dim(1)?;
    let f = func(&dev, ptx::ATTENTION, &format!("paged_mha_{}", suffix(q.dtype())?))?;
    with_float!(q.dtype(), T => {
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k_pool.storage_and_layout();
        let (vs, vl) = v_pool.storage_and_layout();
        let (ts, tl) = tables.storage_and_layout();
        let (ls, ll) = lens.storage_and_layout();
        let qv = view::<T>(cuda_storage(&qs)?, ql)?;
        let kv = view::<T>(cuda_storage(&ks)?, kl)?;
        let vv = view::<T>(cuda_storage(&vs)?, vl)?;
        let tv = view::<u32>(cuda_storage(&ts)?, tl)?;
        let lv = view::<u32>(cuda_storage(&ls)?, ll)?;
        let mut out = alloc::<T>(&dev, seqs * heads * dim)?;
        let (h_i, kvh_i, d_i, mb_i) = (heads as i32, kvh as i32, dim as i32, max_blocks as i32);
        if seqs * heads > 0 {
            let stream = dev.cuda_stream();
            let mut b = stream.launch_builder(&f);
            b.arg(&qv).arg(&kv).arg(&vv).arg(&tv).arg(&lv).arg(&mut out);
            b.arg(&h_i).arg(&kvh_i).arg(&d_i).arg(&mb_i).arg(&scale);
            let smem = 4 * dim * (1 + WARPS as usize);
            let cfg = launch_cfg((heads as u32, seqs as u32, 1), 32 * WARPS, smem);
            // SAFETY: matching signature; one block per (head, sequence) writes its output row.
            launched(unsafe { b.launch(cfg) })?;
        }
        Ok(wrap(out, &dev, (seqs, heads, dim)))
    })
}

/// See [`crate::ops::attention::paged_attention_mla`].
pub fn paged_mla(
    q_abs: &Tensor,
    q_pe: &Tensor,
    latent_pool: &Tensor,
    kpe_pool: &Tensor,
    tables: &Tensor,
    lens: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    let dev = device(q_abs)?;
    let (qa, qp, tables, lens) = (q_abs.contiguous()?, q_pe.contiguous()?, tables.contiguous()?, lens.contiguous()?);
    let (seqs, heads, rank) = qa.dims3()?;
    let rope_dim = qp.dim(2)?;
    let max_blocks = tables.dim(1)?;
    let f = func(&dev, ptx::ATTENTION, &format!("paged_mla_{}", suffix(qa.dtype())?))?;
    with_float!(qa.dtype(), T => {
        let (as_, al) = qa.storage_and_layout();
        let (ps, pl) = qp.storage_and_layout();
        let (cs, cl) = latent_pool.storage_and_layout();
        let (rs, rl) = kpe_pool.storage_and_layout();
        let (ts, tl) = tables.storage_and_layout();
        let (ls, ll) = lens.storage_and_layout();
        let av = view::<T>(cuda_storage(&as_)?, al)?;
        let pv = view::<T>(cuda_storage(&ps)?, pl)?;
        let cv = view::<T>(cuda_storage(&cs)?, cl)?;
        let rv = view::<T>(cuda_storage(&rs)?, rl)?;
        let tv = view::<u32>(cuda_storage(&ts)?, tl)?;
        let lv = view::<u32>(cuda_storage(&ls)?, ll)?;
        let mut out = alloc::<T>(&dev, seqs * heads * rank)?;
        let (h_i, r_i, dr_i, mb_i) = (heads as i32, rank as i32, rope_dim as i32, max_blocks as i32);
        if seqs * heads > 0 {
            let stream = dev.cuda_stream();
            let mut b = stream.launch_builder(&f);
            b.arg(&av).arg(&pv).arg(&cv).arg(&rv).arg(&tv).arg(&lv).arg(&mut out);
            b.arg(&h_i).arg(&r_i).arg(&dr_i).arg(&mb_i).arg(&scale);
            let smem = 4 * (rank + rope_dim + WARPS as usize * rank);
            let cfg = launch_cfg((heads as u32, seqs as u32, 1), 32 * WARPS, smem);
            // SAFETY: matching signature; one block per (head, sequence) writes its output row.
            launched(unsafe { b.launch(cfg) })?;
        }
        Ok(wrap(out, &dev, (seqs, heads, rank)))
    })
}

/// In-place row write of [`crate::ops::attention::write_paged`] (the op's `cuda_fwd`).
#[allow(clippy::too_many_arguments)]
pub fn write_rows(
    pool: &mut CudaStorage,
    pl: &Layout,
    rows: &CudaStorage,
    rl: &Layout,
    slots: &CudaStorage,
    sl: &Layout,
    heads: usize,
    dim: usize,
) -> Result<()> {
    use candle_core::backend::BackendStorage;
    let dev = pool.device().clone();
    let tokens = sl.shape().elem_count();
    let n = tokens * heads * dim;
    let (o1, o2) =
        pl.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("write_paged: pool not contiguous".into()))?;
    let f = func(&dev, ptx::ATTENTION, &format!("write_rows_{}", suffix(pool.dtype())?))?;
    with_float!(pool.dtype(), T => {
        let rv = view::<T>(rows, rl)?;
        let sv = view::<u32>(slots, sl)?;
        let mut pv = pool.as_cuda_slice_mut::<T>()?.slice_mut(o1..o2);
        let (t_i, h_i, d_i) = (tokens as i32, heads as i32, dim as i32);
        if n > 0 {
            let stream = dev.cuda_stream();
            let mut b = stream.launch_builder(&f);
            b.arg(&mut pv).arg(&rv).arg(&sv).arg(&t_i).arg(&h_i).arg(&d_i);
            let cfg = launch_cfg((grid_for(n, EW_THREADS), 1, 1), EW_THREADS, 0);
            // SAFETY: matching signature; slots inside the pool are the caller's contract.
            launched(unsafe { b.launch(cfg) })?;
        }
        Ok(())
    })
}
