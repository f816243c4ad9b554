//! Building blocks of the decoder (`modeling_deepseekv2.py`): bias-optional linear layers on
//! 2-D activations, RMSNorm computed in f32 (`DeepseekV2RMSNorm`), and the SwiGLU MLP
//! (`DeepseekV2MLP`) used for the dense layers, the routed experts and the shared experts.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// `y = x W^T (+ b)` on `[tokens, in]` activations.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `{prefix}.weight` `[out, in]` and, when `bias`, `{prefix}.bias` `[out]`.
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias { Some(vb.get(out_dim, "bias")?) } else { None };
        Ok(Linear { weight, bias })
    }

    /// Wraps an existing `[out, in]` weight.
    pub fn from_weight(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear { weight, bias }
    }

    /// The `[out, in]` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// RMSNorm as the reference computes it: normalise in f32, cast back, then scale.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    ones_f32: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// Loads `{prefix}.weight` `[dim]`.
    pub fn load(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        let weight = vb.get(dim, "weight")?;
        let ones_f32 = Tensor::ones(dim, DType::F32, weight.device())?;
        Ok(RmsNorm { weight, ones_f32, eps: eps as f32 })
    }
}

impl RmsNorm {
    /// `h = x + residual` and `forward(h)`: returns `(h, normed)` (one fused kernel where
    /// `super::cuda` says so).
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<(Tensor, Tensor)> {
        if super::cuda::use_kernels(x.device(), x.dtype()) && self.weight.dtype() == x.dtype() {
            return docseek_kernels::ops::norm::add_rms_norm(x, residual, &self.weight, self.eps);
        }
        let h = (x + residual)?;
        let y = self.forward(&h)?;
        Ok((h, y))
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if super::cuda::use_kernels(x.device(), x.dtype()) && self.weight.dtype() == x.dtype() {
            return docseek_kernels::ops::norm::rms_norm(x, &self.weight, self.eps);
        }
        if x.dtype() == DType::F32 && self.weight.dtype() == DType::F32 {
            return candle_nn::ops::rms_norm(x, &self.weight, self.eps);
        }
        let normed = candle_nn::ops::rms_norm(&x.to_dtype(DType::F32)?, &self.ones_f32, self.eps)?;
        normed.to_dtype(x.dtype())?.broadcast_mul(&self.weight)
    }
}

/// SwiGLU MLP `down(silu(gate(x)) * up(x))` with gate and up fused into one matmul.
#[derive(Debug, Clone)]
pub struct Mlp {
    gate_up: Tensor,
    down: Linear,
    intermediate: usize,
}

impl Mlp {
    /// Loads `{prefix}.{gate,up,down}_proj.weight`.
    pub fn load(vb: VarBuilder, hidden: usize, intermediate: usize) -> Result<Self> {
        let gate = vb.pp("gate_proj").get((intermediate, hidden), "weight")?;
        let up = vb.pp("up_proj").get((intermediate, hidden), "weight")?;
        let gate_up = Tensor::cat(&[&gate, &up], 0)?;
        let down = Linear::load(vb.pp("down_proj"), intermediate, hidden, false)?;
        Ok(Mlp { gate_up, down, intermediate })
    }

    /// Weight bytes this MLP holds.
    pub fn weight_bytes(&self) -> usize {
        (self.gate_up.elem_count() + self.down.weight().elem_count()) * self.gate_up.dtype().size_in_bytes()
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gu = x.matmul(&self.gate_up.t()?)?;
        if super::cuda::use_kernels(gu.device(), gu.dtype()) {
            return self.down.forward(&docseek_kernels::ops::norm::silu_mul(&gu)?);
        }
        let gate = gu.narrow(D::Minus1, 0, self.intermediate)?;
        let up = gu.narrow(D::Minus1, self.intermediate, self.intermediate)?;
        let h = (candle_nn::ops::silu(&gate)? * up)?;
        self.down.forward(&h)
    }
}
