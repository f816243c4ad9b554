//! Launchers of `cuda/gemm.cu`: the grouped / plain GEMM and the FP8 quantisation.

use candle_core::cuda_backend::cudarc::driver::{CudaView, PushKernelArg};
use candle_core::cuda_backend::CudaDType;
use candle_core::{DType, Layout, Result, StorageRef, Tensor};
use half::bf16;

use super::{alloc, cuda_storage, device, func, launch_cfg, launched, ptx, suffix, view, wrap};
use crate::ops::fp8::{Fp8Matrix, FP8_BLOCK};
use crate::ops::moe::{Dispatch, ExpertWeights, Gather, TILE_M};
use crate::ops::with_float;

/// Columns per block (the kernel's `TILE_N`).
const TILE_N: usize = 64;
/// Threads per GEMM block.
const GEMM_THREADS: u32 = 128;
/// Threads per quantisation block (one 128x128 block each).
const QUANT_THREADS: u32 = 256;

/// Grouped GEMM over `dispatch` (with its gather rule), or the plain `x W[0]^T` when `None`.
pub fn gemm(x: &Tensor, dispatch: Option<(&Dispatch, Gather)>, w: &ExpertWeights, out: DType) -> Result<Tensor> {
    let dev = device(x)?;
    let x = x.contiguous()?;
    let (m, k) = x.dims2()?;
    let (_, n, _) = w.dims()?;
    let rows = match dispatch {
        Some((d, _)) => d.pairs()?,
        None => m,
    };
    let grid_y = match dispatch {
        Some((d, _)) => d.tile_expert.dims1()?,
        None => m.div_ceil(TILE_M),
    };
    let (wt, scales) = match w {
        ExpertWeights::Dense(t) => (t.contiguous()?, None),
        ExpertWeights::Fp8(f) => (f.codes.contiguous()?, Some(f.scales.contiguous()?)),
    };
    let wname = match w {
        ExpertWeights::Dense(_) => suffix(wt.dtype())?,
        ExpertWeights::Fp8(_) => "e4m3",
    };
    let name = format!("gemm_{}_{wname}_{}", suffix(x.dtype())?, suffix(out)?);
    let supported = ["gemm_f32_f32_f32", "gemm_f32_e4m3_f32", "gemm_bf16_bf16_bf16", "gemm_bf16_bf16_f32"]
        .contains(&name.as_str())
        || name == "gemm_bf16_e4m3_bf16"
        || name == "gemm_bf16_e4m3_f32";
    if !supported {
        candle_core::bail!("grouped_gemm: no CUDA kernel {name} (activations f32 or bf16, output f32 or theirs)");
    }
    let f = func(&dev, ptx::GEMM, &name)?;
    let (sorted, tile_expert, tile_start, offsets, gather_k) = match dispatch {
        Some((d, g)) => (
            Some(d.sorted_pair.contiguous()?),
            Some(d.tile_expert.contiguous()?),
            Some(d.tile_start.contiguous()?),
            Some(d.offsets.contiguous()?),
            if g == Gather::Tokens { d.k as i32 } else { 0 },
        ),
        None => (None, None, None, None, 0),
    };
    let null = 0u64;
    let (m_i, n_i, k_i) = (m as i32, n as i32, k as i32);

    macro_rules! launch {
        ($X:ty, $W:ty, $O:ty) => {{
            let (xs, xl) = x.storage_and_layout();
            let (ws, wl) = wt.storage_and_layout();
            let xv = view::<$X>(cuda_storage(&xs)?, xl)?;
            let wv = view::<$W>(cuda_storage(&ws)?, wl)?;
            let (sg, teg, tsg, og) = (lock(&sorted), lock(&tile_expert), lock(&tile_start), lock(&offsets));
            let scg = lock(&scales);
            let (sv, tev, tsv, ov) =
                (opt_view::<u32>(&sg)?, opt_view::<u32>(&teg)?, opt_view::<u32>(&tsg)?, opt_view::<u32>(&og)?);
            let scv = opt_view::<f32>(&scg)?;
            let mut y = alloc::<$O>(&dev, rows * n)?;
            if rows > 0 && grid_y > 0 && n > 0 {
                let stream = dev.cuda_stream();
                let mut b = stream.launch_builder(&f);
                b.arg(&xv).arg(&wv).arg(&mut y);
                match &sv {
                    Some(v) => b.arg(v),
                    None => b.arg(&null),
                };
                b.arg(&gather_k);
                match &scv {
                    Some(v) => b.arg(v),
                    None => b.arg(&null),
                };
                for v in [&tev, &tsv, &ov] {
                    match v {
                        Some(v) => b.arg(v),
                        None => b.arg(&null),
                    };
                }
                b.arg(&m_i).arg(&n_i).arg(&k_i);
                let cfg = launch_cfg((n.div_ceil(TILE_N) as u32, grid_y as u32, 1), GEMM_THREADS, 0);
                // SAFETY: matching signature; the tiles of the dispatch cover every sorted row
                // exactly once (plain mode: every row), and each tile writes all its columns.
                launched(unsafe { b.launch(cfg) })?;
            }
            Ok(wrap(y, &dev, (rows, n)))
        }};
    }
    match name.as_str() {
        "gemm_f32_f32_f32" => launch!(f32, f32, f32),
        "gemm_f32_e4m3_f32" => launch!(f32, u8, f32),
        "gemm_bf16_bf16_bf16" => launch!(bf16, bf16, bf16),
        "gemm_bf16_bf16_f32" => launch!(bf16, bf16, f32),
        "gemm_bf16_e4m3_bf16" => launch!(bf16, u8, bf16),
        _ => launch!(bf16, u8, f32),
    }
}

/// A locked storage of an optional tensor.
type Locked<'a> = Option<(StorageRef<'a>, &'a Layout)>;

fn lock(t: &Option<Tensor>) -> Locked<'_> {
    t.as_ref().map(|t| t.storage_and_layout())
}

fn opt_view<'a, T: CudaDType>(g: &'a Locked<'_>) -> Result<Option<CudaView<'a, T>>> {
    match g {
        Some((s, l)) => Ok(Some(view::<T>(cuda_storage(s)?, l)?)),
        None => Ok(None),
    }
}

/// See [`Fp8Matrix::quantize`]; `w` is contiguous `[experts, n, k]`.
pub fn quantize(w: &Tensor) -> Result<Fp8Matrix> {
    let dev = device(w)?;
    let (e, n, k) = w.dims3()?;
    let (nb, kb) = (n.div_ceil(FP8_BLOCK), k.div_ceil(FP8_BLOCK));
    let f = func(&dev, ptx::GEMM, &format!("fp8_quantize_{}", suffix(w.dtype())?))?;
    with_float!(w.dtype(), T => {
        let (ws, wl) = w.storage_and_layout();
        let wv = view::<T>(cuda_storage(&ws)?, wl)?;
        let mut codes = alloc::<u8>(&dev, e * n * k)?;
        let mut scales = alloc::<f32>(&dev, e * nb * kb)?;
        let (n_i, k_i) = (n as i32, k as i32);
        if e * nb * kb > 0 {
            let stream = dev.cuda_stream();
            let mut b = stream.launch_builder(&f);
            b.arg(&wv).arg(&mut codes).arg(&mut scales).arg(&n_i).arg(&k_i);
            let cfg = launch_cfg((kb as u32, nb as u32, e as u32), QUANT_THREADS, 0);
            // SAFETY: matching signature; one block per 128x128 block writes its codes and scale.
            launched(unsafe { b.launch(cfg) })?;
        }
        Ok(Fp8Matrix { codes: wrap(codes, &dev, (e, n, k)), scales: wrap(scales, &dev, (e, nb, kb)) })
    })
}
