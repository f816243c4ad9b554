//! Building blocks of the decoder (`modeling_deepseekv2.py`): linear layers on `[tokens, in]`
//! activations ([`docseek_kernels::linear::Linear`], loaded by name so a load context can map
//! or quantize the weight, see [`super::quant_store`]), RMSNorm computed in f32
//! (`DeepseekV2RMSNorm`), and the SwiGLU MLP (`DeepseekV2MLP`) used for the dense layers, the
//! routed experts and the shared experts.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use docseek_kernels::linear::{Linear as KernelLinear, LinearWeight, Quant};
use docseek_kernels::moe_op::{swiglu, SwiGlu};

use super::quant_store;

/// `y = x W^T (+ b)`: the kernels' linear layer, loaded from a `VarBuilder`.
#[derive(Debug, Clone)]
pub struct Linear(KernelLinear);

impl Linear {
    /// Loads `{prefix}.weight` `[out, in]` and, when `bias`, `{prefix}.bias` `[out]`. Under a
    /// load context the weight may be mapped or quantized; otherwise bf16 CPU weights go to
    /// the bf16 kernels and everything else stays a dense candle tensor.
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let bias = if bias { Some(vb.get(out_dim, "bias")?) } else { None };
        let name = format!("{}.weight", vb.prefix());
        if let Some(w) = quant_store::linear_weight(&name, out_dim, in_dim, vb.dtype(), vb.device()) {
            return Ok(Linear(KernelLinear::from_weight(w?, bias)?));
        }
        let weight = vb.get((out_dim, in_dim), "weight")?;
        Ok(Linear(KernelLinear::from_tensor(weight, bias, Quant::None)?))
    }

    /// Wraps an existing `[out, in]` weight (bf16 CPU weights go to the kernels).
    pub fn from_weight(weight: Tensor, bias: Option<Tensor>) -> Self {
        match KernelLinear::from_tensor(weight.clone(), bias.clone(), Quant::None) {
            Ok(l) => Linear(l),
            Err(_) => Linear(KernelLinear::new(weight, bias)),
        }
    }

    /// A bias-free layer over an already built kernel-format weight.
    pub fn from_kernel_weight(weight: LinearWeight) -> Result<Self> {
        Ok(Linear(KernelLinear::from_weight(weight, None)?))
    }

    /// The kernels' layer.
    pub fn inner(&self) -> &KernelLinear {
        &self.0
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(x)
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

/// SwiGLU MLP `down(silu(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
pub enum Mlp {
    /// Candle ops with gate and up fused into one matmul (f32, or any non-CPU device).
    Dense {
        /// `[2 * intermediate, hidden]`: gate rows then up rows.
        gate_up: Tensor,
        /// `down_proj`.
        down: Linear,
        /// Intermediate width.
        intermediate: usize,
    },
    /// Kernel-format weights, the whole MLP in one fused call.
    Kernel {
        /// `gate_proj`.
        gate: Linear,
        /// `up_proj`.
        up: Linear,
        /// `down_proj`.
        down: Linear,
    },
}

impl Mlp {
    /// Loads `{prefix}.{gate,up,down}_proj.weight`.
    pub fn load(vb: VarBuilder, hidden: usize, intermediate: usize) -> Result<Self> {
        let gate = Linear::load(vb.pp("gate_proj"), hidden, intermediate, false)?;
        let up = Linear::load(vb.pp("up_proj"), hidden, intermediate, false)?;
        let down = Linear::load(vb.pp("down_proj"), intermediate, hidden, false)?;
        if gate.0.is_kernel() && up.0.is_kernel() && down.0.is_kernel() {
            return Ok(Mlp::Kernel { gate, up, down });
        }
        // Dense: the gate and up tensors fused (bit-exact with the f32 reference).
        let tensor = |l: Linear, name: &str| -> Result<Tensor> {
            match l.0.weight() {
                LinearWeight::Dense(t) => Ok(t.clone()),
                _ => vb.pp(name).get((intermediate, hidden), "weight"),
            }
        };
        let gate_up = Tensor::cat(&[&tensor(gate, "gate_proj")?, &tensor(up, "up_proj")?], 0)?;
        Ok(Mlp::Dense { gate_up, down, intermediate })
    }

    /// Weight bytes this MLP holds.
    pub fn weight_bytes(&self) -> usize {
        match self {
            Mlp::Dense { gate_up, down, .. } => gate_up.elem_count() * gate_up.dtype().size_in_bytes() + down.0.bytes(),
            Mlp::Kernel { gate, up, down } => gate.0.bytes() + up.0.bytes() + down.0.bytes(),
        }
    }

    /// The layers as the fused kernels take them, for kernel-format weights.
    pub fn swiglu(&self) -> Option<SwiGlu<'_>> {
        match self {
            Mlp::Kernel { gate, up, down } => Some(SwiGlu { gate: &gate.0, up: &up.0, down: &down.0 }),
            Mlp::Dense { .. } => None,
        }
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Mlp::Dense { gate_up, down, intermediate } => {
                let gu = x.matmul(&gate_up.t()?)?;
                if super::cuda::use_kernels(gu.device(), gu.dtype()) {
                    return down.forward(&docseek_kernels::ops::norm::silu_mul(&gu)?);
                }
                let gate = gu.narrow(D::Minus1, 0, *intermediate)?;
                let up = gu.narrow(D::Minus1, *intermediate, *intermediate)?;
                let h = (candle_nn::ops::silu(&gate)? * up)?;
                down.forward(&h)
            }
            Mlp::Kernel { gate, up, down } => swiglu(x, &SwiGlu { gate: &gate.0, up: &up.0, down: &down.0 }),
        }
    }
}
