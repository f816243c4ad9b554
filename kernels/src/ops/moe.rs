//! MoE routing and dispatch on the device: the gate, the permutation by expert, the grouped
//! GEMM over every active expert in one launch per projection, and the weighted
//! un-permutation. Together they run an MoE layer with no host round-trip.

use candle_core::{DType, Device, Result, Tensor};

use super::fp8::Fp8Matrix;
use super::{expect_dtype, host, no_kernel, same_device, with_float};
use crate::reference::moe_dispatch as dispatch_ref;
pub use crate::reference::moe_dispatch::{max_tiles, TILE_M};
use crate::reference::moe_gate as gate_ref;
pub use crate::reference::moe_gate::{GateParams, Scoring, TopkMethod};

/// Largest `top_k` the device gate supports.
pub const MAX_TOP_K: usize = 8;

/// Routes every token: `logits` f32 `[tokens, experts]` (and for `NoauxTc` the f32 correction
/// `bias` `[experts]`) to expert ids u32 `[tokens, k]` and f32 weights `[tokens, k]`, best
/// first, with the semantics of [`crate::reference::moe_gate`] (ties to the lower index).
pub fn moe_gate(logits: &Tensor, bias: Option<&Tensor>, p: &GateParams) -> Result<(Tensor, Tensor)> {
    let (tokens, experts) = logits.dims2()?;
    expect_dtype(logits, DType::F32, "moe_gate logits")?;
    if p.top_k == 0 || p.top_k > MAX_TOP_K.min(experts) {
        candle_core::bail!("moe_gate: top_k {} (1..={} and <= {experts} experts)", p.top_k, MAX_TOP_K);
    }
    if p.n_group == 0 || experts % p.n_group != 0 {
        candle_core::bail!("moe_gate: {experts} experts do not split into {} groups", p.n_group);
    }
    match (p.method, bias) {
        (TopkMethod::NoauxTc, None) => candle_core::bail!("moe_gate: noaux_tc needs the correction bias"),
        (_, Some(b)) => {
            if b.dims1()? != experts {
                candle_core::bail!("moe_gate: bias of {} for {experts} experts", b.dims1()?);
            }
            expect_dtype(b, DType::F32, "moe_gate bias")?;
            same_device(logits.device(), &[b], "moe_gate")?;
        }
        _ => {}
    }
    match logits.device() {
        Device::Cpu => {
            let b = bias.map(host::<f32>).transpose()?;
            let (ids, w) = gate_ref::moe_gate(&host::<f32>(logits)?, experts, b.as_deref(), p);
            Ok((
                Tensor::from_vec(ids, (tokens, p.top_k), &Device::Cpu)?,
                Tensor::from_vec(w, (tokens, p.top_k), &Device::Cpu)?,
            ))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => crate::cuda::moe::moe_gate(logits, bias, p),
        dev => no_kernel("moe_gate", dev),
    }
}

/// Where the token-expert pairs go (see [`crate::reference::moe_dispatch::Dispatch`]): all u32
/// tensors on the routing's device. `tile_expert` holds `u32::MAX` (-1 as i32) past the last tile.
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// `[experts + 1]` segment offsets of the sorted rows.
    pub offsets: Tensor,
    /// `[pairs]` pair of each sorted row (order within an expert is unspecified on CUDA).
    pub sorted_pair: Tensor,
    /// `[pairs]` sorted row of each pair.
    pub inv: Tensor,
    /// `[max_tiles]` expert of each M-tile.
    pub tile_expert: Tensor,
    /// `[max_tiles]` first sorted row of each M-tile.
    pub tile_start: Tensor,
    /// Number of experts.
    pub experts: usize,
    /// Experts per token.
    pub k: usize,
}

impl Dispatch {
    /// Token-expert pairs (`tokens * k`).
    pub fn pairs(&self) -> Result<usize> {
        self.inv.dims1()
    }
}

/// Sorts the pairs of `ids` u32 `[tokens, k]` by expert and cuts the grouped GEMM's M-tiles.
pub fn moe_permute(ids: &Tensor, experts: usize) -> Result<Dispatch> {
    let (_, k) = ids.dims2()?;
    expect_dtype(ids, DType::U32, "moe_permute ids")?;
    match ids.device() {
        Device::Cpu => {
            let d = dispatch_ref::permute(&host::<u32>(ids)?, experts);
            let pairs = d.inv.len();
            let mt = d.tile_expert.len();
            let dev = &Device::Cpu;
            Ok(Dispatch {
                offsets: Tensor::from_vec(d.offsets, experts + 1, dev)?,
                sorted_pair: Tensor::from_vec(d.sorted_pair, pairs, dev)?,
                inv: Tensor::from_vec(d.inv, pairs, dev)?,
                tile_expert: Tensor::from_vec(
                    d.tile_expert.into_iter().map(|e| e as u32).collect::<Vec<_>>(),
                    mt,
                    dev,
                )?,
                tile_start: Tensor::from_vec(d.tile_start, mt, dev)?,
                experts,
                k,
            })
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => crate::cuda::moe::moe_permute(ids, experts),
        dev => no_kernel("moe_permute", dev),
    }
}

/// Weights of a grouped GEMM, `[experts, n, k]` (`y = x W^T` per expert).
#[derive(Debug, Clone)]
pub enum ExpertWeights {
    /// Plain values in the activations' dtype.
    Dense(Tensor),
    /// FP8 e4m3 with block scales.
    Fp8(Fp8Matrix),
}

impl ExpertWeights {
    /// `(experts, n, k)`.
    pub fn dims(&self) -> Result<(usize, usize, usize)> {
        match self {
            ExpertWeights::Dense(w) => w.dims3(),
            ExpertWeights::Fp8(f) => f.codes.dims3(),
        }
    }

    /// Bytes of weight data (codes and scales for FP8).
    pub fn bytes(&self) -> usize {
        match self {
            ExpertWeights::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
            ExpertWeights::Fp8(f) => f.codes.elem_count() + f.scales.elem_count() * 4,
        }
    }
}

/// Which activation row each output row reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gather {
    /// Row `sorted_pair[r] / k` of token-major activations (the first projection).
    Tokens,
    /// Row `r` of activations already in sorted order (the second projection).
    Sorted,
}

/// Grouped GEMM: sorted row `r` (of expert `e`) is `x[src(r)] . W[e]^T`, f32 accumulation,
/// `[pairs, n]` in `out` (f32 or x's dtype). `x` is `[rows, k]`; on CUDA f32 activations use
/// exact f32 products, bf16 ones the tensor cores.
pub fn grouped_gemm(x: &Tensor, d: &Dispatch, gather: Gather, w: &ExpertWeights, out: DType) -> Result<Tensor> {
    let (_, kdim) = x.dims2()?;
    let (experts, n, wk) = w.dims()?;
    if wk != kdim || experts != d.experts {
        candle_core::bail!(
            "grouped_gemm: x {:?} with weights ({experts}, {n}, {wk}) for {} experts",
            x.shape(),
            d.experts
        );
    }
    if out != DType::F32 && out != x.dtype() {
        candle_core::bail!("grouped_gemm: output {out:?} (f32 or {:?})", x.dtype());
    }
    if let ExpertWeights::Dense(t) = w {
        expect_dtype(t, x.dtype(), "grouped_gemm weights")?;
    }
    match x.device() {
        Device::Cpu => {
            let pairs = d.pairs()?;
            let sorted = host::<u32>(&d.sorted_pair)?;
            let src: Vec<u32> = match gather {
                Gather::Tokens => sorted.iter().map(|p| p / d.k as u32).collect(),
                Gather::Sorted => (0..pairs as u32).collect(),
            };
            let expert_of = dispatch_ref::expert_of_rows(&host::<u32>(&d.offsets)?);
            let y = cpu_gemm(x, &src, &expert_of, w, n)?;
            Tensor::from_vec(y, (pairs, n), &Device::Cpu)?.to_dtype(out)
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => crate::cuda::gemm::gemm(x, Some((d, gather)), w, out),
        dev => no_kernel("grouped_gemm", dev),
    }
}

/// The reference GEMM on host data, f32 output.
pub(crate) fn cpu_gemm(x: &Tensor, src: &[u32], expert_of: &[u32], w: &ExpertWeights, n: usize) -> Result<Vec<f32>> {
    let kdim = x.dim(1)?;
    with_float!(x.dtype(), T => {
        let xs = host::<T>(x)?;
        match w {
            ExpertWeights::Dense(wt) => {
                let ws = host::<T>(wt)?;
                Ok(dispatch_ref::grouped_gemm(&xs, kdim, src, expert_of, dispatch_ref::ExpertWeights::Dense(&ws), n))
            }
            ExpertWeights::Fp8(f) => {
                let (codes, scales) = (host::<u8>(&f.codes)?, host::<f32>(&f.scales)?);
                let wr: dispatch_ref::ExpertWeights<f32> =
                    dispatch_ref::ExpertWeights::Fp8 { codes: &codes, scales: &scales };
                Ok(dispatch_ref::grouped_gemm(&xs, kdim, src, expert_of, wr, n))
            }
        }
    })
}

/// `out[t] = sum_j weights[t, j] * y[inv[t * k + j]]` (j ascending, f32), `[tokens, n]` in
/// `out`. `y` is the f32 output of the last grouped GEMM.
pub fn moe_unpermute(y: &Tensor, d: &Dispatch, weights: &Tensor, out: DType) -> Result<Tensor> {
    let (pairs, n) = y.dims2()?;
    let (tokens, k) = weights.dims2()?;
    if tokens * k != pairs || k != d.k {
        candle_core::bail!("moe_unpermute: y {:?} with weights {:?}", y.shape(), weights.shape());
    }
    expect_dtype(y, DType::F32, "moe_unpermute y")?;
    expect_dtype(weights, DType::F32, "moe_unpermute weights")?;
    match y.device() {
        Device::Cpu => with_float!(out, T => {
            let o = dispatch_ref::unpermute::<T>(&host::<f32>(y)?, n, &host::<u32>(&d.inv)?, &host::<f32>(weights)?, k);
            Tensor::from_vec(o, (tokens, n), &Device::Cpu)
        }),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => crate::cuda::moe::moe_unpermute(y, d, weights, out),
        dev => no_kernel("moe_unpermute", dev),
    }
}
