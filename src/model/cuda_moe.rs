//! The routed experts of an MoE layer on the device, with no host round-trip: the gate
//! (`x_f32 W_g^T` by candle, then the top-k kernel), the permutation of token-expert pairs by
//! expert, one grouped GEMM for every active expert's `gate_up` projection, SiLU-and-multiply,
//! one grouped GEMM for `down`, and the weighted un-permutation (`docseek_kernels::ops::moe`).
//! Same semantics as [`super::moe::Moe`]'s host path (routing ties to the lower index, f32
//! accumulation, weights renormalised and scaled as configured).
//!
//! Expert weights are stacked once at load: `gate_up` `[experts, 2 * inter, hidden]` and
//! `down` `[experts, hidden, inter]`, dense or FP8 e4m3 with 128x128 block scales.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use docseek_kernels::ops::fp8::Fp8Matrix;
use docseek_kernels::ops::moe::{
    grouped_gemm, moe_gate, moe_permute, moe_unpermute, ExpertWeights, GateParams, Gather, Scoring, TopkMethod,
};
use docseek_kernels::ops::norm::silu_mul;

use super::config::{DeepseekV2Config, ScoringFunc, TopkMethod as CfgTopk};

/// The routed half of `DeepseekV2MoE` as device kernels.
#[derive(Debug, Clone)]
pub struct FusedMoe {
    gate_weight: Tensor,
    bias: Option<Tensor>,
    params: GateParams,
    gate_up: ExpertWeights,
    down: ExpertWeights,
    experts: usize,
}

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// The gate settings of `cfg` in the kernels' terms.
pub fn gate_params(cfg: &DeepseekV2Config) -> Result<GateParams> {
    Ok(GateParams {
        scoring: match cfg.scoring_func().map_err(msg)? {
            ScoringFunc::Softmax => Scoring::Softmax,
            ScoringFunc::Sigmoid => Scoring::Sigmoid,
        },
        method: match cfg.topk_method().map_err(msg)? {
            CfgTopk::Greedy => TopkMethod::Greedy,
            CfgTopk::GroupLimitedGreedy => TopkMethod::GroupLimited,
            CfgTopk::NoauxTc => TopkMethod::NoauxTc,
        },
        top_k: cfg.num_experts_per_tok.unwrap_or(1),
        n_group: cfg.n_group.unwrap_or(1).max(1),
        topk_group: cfg.topk_group.unwrap_or(1).max(1),
        norm_topk_prob: cfg.norm_topk_prob,
        scaling: cfg.routed_scaling_factor as f32,
    })
}

impl FusedMoe {
    /// Loads `{prefix}.gate` and `{prefix}.experts.N.{gate,up,down}_proj` (the `mlp` prefix of
    /// an MoE layer) and stacks the experts; `fp8` quantises them on their device.
    pub fn load(vb: VarBuilder, cfg: &DeepseekV2Config, fp8: bool) -> Result<Self> {
        let experts = cfg.n_routed_experts.unwrap_or(0);
        let (h, inter) = (cfg.hidden_size, cfg.moe_intermediate_size);
        let params = gate_params(cfg)?;
        if experts == 0 || params.top_k > docseek_kernels::ops::moe::MAX_TOP_K {
            candle_core::bail!("fused MoE: {experts} experts, top_k {} (at most 8)", params.top_k);
        }
        let gate_weight = vb.pp("gate").get((experts, h), "weight")?.to_dtype(DType::F32)?;
        let bias = if params.method == TopkMethod::NoauxTc {
            Some(vb.pp("gate").get(experts, "e_score_correction_bias")?.to_dtype(DType::F32)?)
        } else {
            None
        };
        let mut gu = Vec::with_capacity(experts);
        let mut dn = Vec::with_capacity(experts);
        for i in 0..experts {
            let e = vb.pp("experts").pp(i);
            let g = e.pp("gate_proj").get((inter, h), "weight")?;
            let u = e.pp("up_proj").get((inter, h), "weight")?;
            gu.push(Tensor::cat(&[&g, &u], 0)?);
            dn.push(e.pp("down_proj").get((h, inter), "weight")?);
        }
        let gate_up = Tensor::stack(&gu, 0)?;
        let down = Tensor::stack(&dn, 0)?;
        drop((gu, dn));
        let (gate_up, down) = if fp8 {
            (ExpertWeights::Fp8(Fp8Matrix::quantize(&gate_up)?), ExpertWeights::Fp8(Fp8Matrix::quantize(&down)?))
        } else {
            (ExpertWeights::Dense(gate_up), ExpertWeights::Dense(down))
        };
        Ok(FusedMoe { gate_weight, bias, params, gate_up, down, experts })
    }

    /// Expert ids u32 `[tokens, k]` and f32 weights `[tokens, k]` for `x` `[tokens, hidden]`.
    pub fn route(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let logits = x.to_dtype(DType::F32)?.matmul(&self.gate_weight.t()?)?;
        moe_gate(&logits, self.bias.as_ref(), &self.params)
    }

    /// Sum of the routed experts' outputs for `x` `[tokens, hidden]`, in x's dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        let (ids, weights) = self.route(&x)?;
        let d = moe_permute(&ids, self.experts)?;
        let gu = grouped_gemm(&x, &d, Gather::Tokens, &self.gate_up, x.dtype())?;
        let act = silu_mul(&gu)?;
        let y = grouped_gemm(&act, &d, Gather::Sorted, &self.down, DType::F32)?;
        moe_unpermute(&y, &d, &weights, x.dtype())
    }

    /// Bytes of expert weights held.
    pub fn weight_bytes(&self) -> usize {
        self.gate_up.bytes() + self.down.bytes()
    }
}
