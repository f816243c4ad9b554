//! Launchers of `cuda/moe.cu`: the gate, the permutation and the un-permutation.

use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
use candle_core::{DType, Result, Tensor};

use super::{alloc, cuda_storage, device, func, grid_for, launch_cfg, launched, ptx, suffix, view, wrap};
use crate::ops::moe::{max_tiles, Dispatch, GateParams, Scoring, TopkMethod};
use crate::ops::with_float;

/// Threads of the one-block permutation kernel.
const PERMUTE_THREADS: u32 = 1024;
/// Threads per block of the un-permutation.
const EW_THREADS: u32 = 256;

/// See [`crate::ops::moe::moe_gate`] (shapes checked there).
pub fn moe_gate(logits: &Tensor, bias: Option<&Tensor>, p: &GateParams) -> Result<(Tensor, Tensor)> {
    let dev = device(logits)?;
    let logits = logits.contiguous()?;
    let bias = bias.map(Tensor::contiguous).transpose()?;
    let (tokens, experts) = logits.dims2()?;
    let k = p.top_k;
    let f = func(&dev, ptx::MOE, "moe_gate")?;
    let (ls, ll) = logits.storage_and_layout();
    let lv = view::<f32>(cuda_storage(&ls)?, ll)?;
    let bg = bias.as_ref().map(|b| b.storage_and_layout());
    let bv = match &bg {
        Some((s, l)) => Some(view::<f32>(cuda_storage(s)?, l)?),
        None => None,
    };
    let mut ids = alloc::<u32>(&dev, tokens * k)?;
    let mut weights = alloc::<f32>(&dev, tokens * k)?;
    let null = 0u64;
    let scoring = match p.scoring {
        Scoring::Softmax => 0i32,
        Scoring::Sigmoid => 1,
    };
    let method = match p.method {
        TopkMethod::Greedy => 0i32,
        TopkMethod::GroupLimited => 1,
        TopkMethod::NoauxTc => 2,
    };
    let (e_i, k_i, g_i, tg_i, norm, scaling) =
        (experts as i32, k as i32, p.n_group as i32, p.topk_group as i32, i32::from(p.norm_topk_prob), p.scaling);
    let smem = 4 * (3 * experts + p.n_group) + experts + p.n_group;
    if tokens > 0 {
        let stream = dev.cuda_stream();
        let mut b = stream.launch_builder(&f);
        b.arg(&lv);
        match &bv {
            Some(v) => b.arg(v),
            None => b.arg(&null),
        };
        b.arg(&mut ids).arg(&mut weights).arg(&e_i).arg(&k_i).arg(&scoring).arg(&method);
        b.arg(&g_i).arg(&tg_i).arg(&norm).arg(&scaling);
        let cfg = launch_cfg((tokens as u32, 1, 1), 32, smem);
        // SAFETY: matching signature; one warp per token writes its k ids and weights.
        launched(unsafe { b.launch(cfg) })?;
    }
    Ok((wrap(ids, &dev, (tokens, k)), wrap(weights, &dev, (tokens, k))))
}

/// See [`crate::ops::moe::moe_permute`].
pub fn moe_permute(ids: &Tensor, experts: usize) -> Result<Dispatch> {
    let dev = device(ids)?;
    let ids = ids.contiguous()?;
    let (_, k) = ids.dims2()?;
    let pairs = ids.elem_count();
    let mt = max_tiles(pairs, experts);
    let f = func(&dev, ptx::MOE, "moe_permute")?;
    let (is, il) = ids.storage_and_layout();
    let iv = view::<u32>(cuda_storage(&is)?, il)?;
    let mut offsets = alloc::<u32>(&dev, experts + 1)?;
    let mut sorted = alloc::<u32>(&dev, pairs)?;
    let mut inv = alloc::<u32>(&dev, pairs)?;
    let mut tile_expert = alloc::<u32>(&dev, mt)?;
    let mut tile_start = alloc::<u32>(&dev, mt)?;
    let (p_i, e_i, mt_i) = (pairs as i32, experts as i32, mt as i32);
    {
        let stream = dev.cuda_stream();
        let mut b = stream.launch_builder(&f);
        b.arg(&iv).arg(&p_i).arg(&e_i).arg(&mut offsets).arg(&mut sorted).arg(&mut inv);
        b.arg(&mut tile_expert).arg(&mut tile_start).arg(&mt_i);
        let cfg = launch_cfg((1, 1, 1), PERMUTE_THREADS, 8 * experts);
        // SAFETY: matching signature; the one block writes every output (ids are < experts).
        launched(unsafe { b.launch(cfg) })?;
    }
    Ok(Dispatch {
        offsets: wrap(offsets, &dev, experts + 1),
        sorted_pair: wrap(sorted, &dev, pairs),
        inv: wrap(inv, &dev, pairs),
        tile_expert: wrap(tile_expert, &dev, mt),
        tile_start: wrap(tile_start, &dev, mt),
        experts,
        k,
    })
}

/// See [`crate::ops::moe::moe_unpermute`].
pub fn moe_unpermute(y: &Tensor, d: &Dispatch, weights: &Tensor, out: DType) -> Result<Tensor> {
    let dev = device(y)?;
    let (y, inv, w) = (y.contiguous()?, d.inv.contiguous()?, weights.contiguous()?);
    let (_, n) = y.dims2()?;
    let (tokens, k) = w.dims2()?;
    let total = tokens * n;
    let f = func(&dev, ptx::MOE, &format!("moe_unpermute_{}", suffix(out)?))?;
    with_float!(out, T => {
        let (ys, yl) = y.storage_and_layout();
        let (is, il) = inv.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let yv = view::<f32>(cuda_storage(&ys)?, yl)?;
        let iv = view::<u32>(cuda_storage(&is)?, il)?;
        let wv = view::<f32>(cuda_storage(&ws)?, wl)?;
        let mut o = alloc::<T>(&dev, total)?;
        let (t_i, k_i, n_i) = (tokens as i32, k as i32, n as i32);
        if total > 0 {
            let stream = dev.cuda_stream();
            let mut b = stream.launch_builder(&f);
            b.arg(&yv).arg(&iv).arg(&wv).arg(&mut o).arg(&t_i).arg(&k_i).arg(&n_i);
            let cfg = launch_cfg((grid_for(total, EW_THREADS), 1, 1), EW_THREADS, 0);
            // SAFETY: matching signature; the grid-stride loop writes every output element.
            launched(unsafe { b.launch(cfg) })?;
        }
        Ok(wrap(o, &dev, (tokens, n)))
    })
}
