//! The vision encoder's linear layers and 3x3 convolutions on docseek-kernels.
//!
//! Linear layers are [`docseek_kernels::linear::Linear`]: bf16 weights on the CPU run on the
//! bf16 kernels, everything else (f32 parity, other devices) on candle's matmul exactly as
//! `candle_nn::Linear` does. A 3x3 convolution of bf16 CPU tensors is an im2col onto the same
//! GEMM; otherwise candle's convolution runs (in f32 on the CPU, which has no bf16 convolution).

use candle_core::{DType, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use docseek_kernels::linear::{Linear, Quant};
use rayon::prelude::*;

use crate::error::Result;

/// `{prefix}.weight` `[out, in]` + `{prefix}.bias` `[out]`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get((out_dim, in_dim), "weight")?;
    let b = vb.get(out_dim, "bias")?;
    Ok(Linear::from_tensor(w, Some(b), Quant::None)?)
}

/// `{prefix}.weight` `[out, in]`, no bias.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get((out_dim, in_dim), "weight")?;
    Ok(Linear::from_tensor(w, None, Quant::None)?)
}

/// A layer over a `[out, in]` weight already in hand (a reshaped convolution kernel).
pub fn from_weight(w: Tensor, b: Option<Tensor>) -> Result<Linear> {
    Ok(Linear::from_tensor(w, b, Quant::None)?)
}

/// A 3x3 convolution without bias, padding 1.
pub struct Conv3x3 {
    conv: Conv2d,
    cpu_f32: Option<Conv2d>,
    /// bf16 CPU weights as `[out, 3 * 3 * in]` in (kh, kw, c) order, for the im2col path.
    im2col: Option<Linear>,
    stride: usize,
}

impl Conv3x3 {
    /// Loads `{prefix}.weight` `[c_out, c_in, 3, 3]`.
    pub fn load(c_in: usize, c_out: usize, cfg: Conv2dConfig, vb: VarBuilder) -> Result<Self> {
        let conv = candle_nn::conv2d_no_bias(c_in, c_out, 3, cfg, vb)?;
        let w = conv.weight();
        let (cpu, dtype) = (w.device().is_cpu(), w.dtype());
        let im2col = if cpu && dtype == DType::BF16 && cfg.padding == 1 && cfg.dilation == 1 && cfg.groups == 1 {
            Some(from_weight(w.permute((0, 2, 3, 1))?.contiguous()?.reshape((c_out, 9 * c_in))?, None)?)
        } else {
            None
        };
        // candle's CPU backend has no bf16 convolution: other half types convolve in f32.
        let cpu_f32 = if cpu && dtype != DType::F32 && im2col.is_none() {
            Some(Conv2d::new(w.to_dtype(DType::F32)?, None, cfg))
        } else {
            None
        };
        Ok(Self { conv, cpu_f32, im2col, stride: cfg.stride })
    }

    /// `x: [B, C, H, W]` → `[B, C_out, H', W']`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(l) = &self.im2col {
            if x.device().is_cpu() && x.dtype() == DType::BF16 {
                let nhwc = x.permute((0, 2, 3, 1))?.contiguous()?;
                let y = self.forward_nhwc(l, &nhwc)?;
                return Ok(y.permute((0, 3, 1, 2))?.contiguous()?);
            }
        }
        Ok(match &self.cpu_f32 {
            Some(c) => c.forward(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype())?,
            None => self.conv.forward(x)?,
        })
    }

    /// The im2col product on NHWC bf16: `[B, H, W, C]` → `[B, H', W', C_out]`.
    fn forward_nhwc(&self, l: &Linear, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let s = self.stride;
        let (ho, wo) = ((h + 2 - 3) / s + 1, (w + 2 - 3) / s + 1);
        let src: Vec<half::bf16> = x.flatten_all()?.to_vec1()?;
        let mut cols = vec![half::bf16::ZERO; b * ho * wo * 9 * c];
        cols.par_chunks_mut(9 * c).enumerate().for_each(|(p, row)| {
            let (bi, oy, ox) = (p / (ho * wo), (p / wo) % ho, p % wo);
            for kh in 0..3 {
                for kw in 0..3 {
                    let (iy, ix) = ((oy * s + kh) as isize - 1, (ox * s + kw) as isize - 1);
                    if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                        continue;
                    }
                    let at = ((bi * h + iy as usize) * w + ix as usize) * c;
                    row[(kh * 3 + kw) * c..(kh * 3 + kw + 1) * c].copy_from_slice(&src[at..at + c]);
                }
            }
        });
        let cols = Tensor::from_vec(cols, (b * ho * wo, 9 * c), x.device())?;
        Ok(l.forward(&cols)?.reshape((b, ho, wo, ()))?)
    }
}
