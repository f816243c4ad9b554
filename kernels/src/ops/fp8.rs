//! FP8 e4m3 weights with one f32 scale per 128x128 block, and the linear layer over them
//! (weight-only FP8: activations stay bf16/f32, products accumulate in f32).

use candle_core::{DType, Device, Result, Tensor};

use super::moe::{cpu_gemm, ExpertWeights};
use super::{host, no_kernel};
use crate::reference::fp8 as reference;
pub use crate::reference::fp8::FP8_BLOCK;

/// A stack of `[experts, n, k]` matrices quantised to e4m3 (a linear layer is `experts = 1`).
#[derive(Debug, Clone)]
pub struct Fp8Matrix {
    /// u8 `[experts, n, k]` e4m3 codes.
    pub codes: Tensor,
    /// f32 `[experts, ceil(n / 128), ceil(k / 128)]`: `value = decode(code) * scale`.
    pub scales: Tensor,
}

impl Fp8Matrix {
    /// Quantises `w` `[n, k]` or `[experts, n, k]` (any float dtype) on its device:
    /// `scale = amax / 448` per block, codes rounded to nearest even and saturated.
    pub fn quantize(w: &Tensor) -> Result<Self> {
        let w3 = match w.rank() {
            2 => w.unsqueeze(0)?,
            3 => w.clone(),
            r => candle_core::bail!("fp8 quantize: rank {r} (2 or 3)"),
        };
        let (e, n, k) = w3.dims3()?;
        match w.device() {
            Device::Cpu => {
                let v = host::<f32>(&w3.to_dtype(DType::F32)?)?;
                let mut codes = Vec::with_capacity(v.len());
                let mut scales = Vec::new();
                for m in v.chunks(n * k) {
                    let q = reference::quantize_blocks(m, n, k);
                    codes.extend(q.codes);
                    scales.extend(q.scales);
                }
                Ok(Fp8Matrix {
                    codes: Tensor::from_vec(codes, (e, n, k), &Device::Cpu)?,
                    scales: Tensor::from_vec(scales, (e, n.div_ceil(FP8_BLOCK), k.div_ceil(FP8_BLOCK)), &Device::Cpu)?,
                })
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(_) => crate::cuda::gemm::quantize(&w3.contiguous()?),
            dev => no_kernel("fp8 quantize", dev),
        }
    }

    /// The values the codes stand for, f32 `[experts, n, k]` (on the CPU; for tests and checks).
    pub fn dequantize(&self) -> Result<Tensor> {
        let (e, n, k) = self.codes.dims3()?;
        let codes = host::<u8>(&self.codes)?;
        let scales = host::<f32>(&self.scales)?;
        let per_s = n.div_ceil(FP8_BLOCK) * k.div_ceil(FP8_BLOCK);
        let mut out = Vec::with_capacity(codes.len());
        for i in 0..e {
            let q = reference::Fp8Blocks {
                codes: codes[i * n * k..(i + 1) * n * k].to_vec(),
                scales: scales[i * per_s..(i + 1) * per_s].to_vec(),
            };
            out.extend(reference::dequantize_blocks(&q, n, k));
        }
        Tensor::from_vec(out, (e, n, k), &Device::Cpu)
    }

    /// Bytes held (codes + scales).
    pub fn bytes(&self) -> usize {
        self.codes.elem_count() + 4 * self.scales.elem_count()
    }
}

/// `y = x W^T` for `x` `[m, k]` (f32 or bf16) and an FP8 `W` `[1, n, k]`: `[m, n]` in x's dtype,
/// f32 accumulation (per 128-wide K block, then scaled).
pub fn fp8_matmul(x: &Tensor, w: &Fp8Matrix) -> Result<Tensor> {
    let (m, k) = x.dims2()?;
    let (e, n, wk) = w.codes.dims3()?;
    if e != 1 || wk != k {
        candle_core::bail!("fp8_matmul: x {:?} with weights ({e}, {n}, {wk})", x.shape());
    }
    let weights = ExpertWeights::Fp8(w.clone());
    match x.device() {
        Device::Cpu => {
            let src: Vec<u32> = (0..m as u32).collect();
            let y = cpu_gemm(x, &src, &vec![0; m], &weights, n)?;
            Tensor::from_vec(y, (m, n), &Device::Cpu)?.to_dtype(x.dtype())
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => crate::cuda::gemm::gemm(x, None, &weights, x.dtype()),
        dev => no_kernel("fp8_matmul", dev),
    }
}
