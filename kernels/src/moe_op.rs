//! The MoE feed-forward of one layer as one candle custom op over kernel-format [`Linear`]s
//! (see [`crate::cpu::moe`]); also runs a lone SwiGLU MLP (no routed experts, the MLP as the
//! "shared" expert) in one call.

use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor};

use crate::cpu::moe::{moe_forward, ExpertRef};
use crate::cpu::Isa;
use crate::linear::{acts_of, storage_like, Linear};

/// One SwiGLU expert's layers.
#[derive(Debug, Clone, Copy)]
pub struct SwiGlu<'a> {
    /// `gate_proj`.
    pub gate: &'a Linear,
    /// `up_proj`.
    pub up: &'a Linear,
    /// `down_proj`.
    pub down: &'a Linear,
}

impl<'a> SwiGlu<'a> {
    /// Whether every layer is in a kernel format (bias-free), so [`moe`] can run it.
    pub fn is_kernel(&self) -> bool {
        [self.gate, self.up, self.down].iter().all(|l| l.is_kernel() && l.bias().is_none())
    }

    fn refs(&self) -> Result<ExpertRef<'a>> {
        let r = |l: &'a Linear| {
            l.weight().kernel_ref().ok_or_else(|| candle_core::Error::Msg("dense expert weight".into()))
        };
        Ok(ExpertRef { gate: r(self.gate)?, up: r(self.up)?, down: r(self.down)? })
    }
}

struct MoeOp<'a> {
    experts: Vec<ExpertRef<'a>>,
    shared: Option<ExpertRef<'a>>,
    ids: &'a [u32],
    weights: &'a [f32],
    k: usize,
}

impl candle_core::CustomOp1 for MoeOp<'_> {
    fn name(&self) -> &'static str {
        "docseek-moe"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, t, hidden) = acts_of(storage, layout)?;
        if self.ids.len() != t * self.k || self.weights.len() != t * self.k {
            candle_core::bail!("moe op: routing for {} pairs, {} tokens x {}", self.ids.len(), t, self.k);
        }
        if let Some(&e) = self.ids.iter().find(|&&e| e as usize >= self.experts.len()) {
            candle_core::bail!("routed to missing expert {e}");
        }
        let mut acc = vec![0f32; t * hidden];
        moe_forward(Isa::active(), &self.experts, self.shared.as_ref(), a, t, self.ids, self.weights, self.k, &mut acc);
        Ok((storage_like(storage, Isa::active(), acc, hidden, &Default::default()), Shape::from((t, hidden))))
    }
}

/// `Σ_j weights[t, j] · experts[ids[t, j]](x_t) + shared(x_t)` for `x` `[t, hidden]` (f32 or
/// bf16, CPU), in f32, returned in `x`'s dtype. `ids` / `weights` are token-major `[t * k]`.
pub fn moe(
    x: &Tensor,
    experts: &[SwiGlu],
    shared: Option<&SwiGlu>,
    ids: &[u32],
    weights: &[f32],
    k: usize,
) -> Result<Tensor> {
    if !x.device().is_cpu() || !matches!(x.dtype(), DType::F32 | DType::BF16) {
        candle_core::bail!("the fused MoE runs on f32/bf16 CPU tensors");
    }
    let op = MoeOp {
        experts: experts.iter().map(|e| e.refs()).collect::<Result<_>>()?,
        shared: shared.map(|s| s.refs()).transpose()?,
        ids,
        weights,
        k,
    };
    x.contiguous()?.apply_op1_no_bwd(&op)
}

/// A SwiGLU MLP `down(silu(gate x) * up x)` in one call.
pub fn swiglu(x: &Tensor, mlp: &SwiGlu) -> Result<Tensor> {
    moe(x, &[], Some(mlp), &[], &[], 0)
}
