//! The MoE feed-forward (`DeepseekV2MoE` + `MoEGate`): an f32 gate, top-k routing, routed
//! experts run once each on the tokens routed to them, plus the shared experts.
//!
//! Routing (`MoEGate.forward`): `logits = x_f32 W_f32^T`; scores = softmax (V2) or sigmoid
//! (V3); `greedy` takes the top-k scores, `group_limited_greedy` first keeps the `topk_group`
//! groups with the highest max score, `noaux_tc` chooses with `score + e_score_correction_bias`
//! inside the groups with the highest top-2 sums and weighs with the raw score. Weights are
//! renormalised only when `norm_topk_prob` and k > 1, then multiplied by
//! `routed_scaling_factor`. Ties between equal scores go to the lower expert index.
//!
//! Dispatch (`moe_infer`): with kernel-format weights (bf16 or quantized on the CPU) the
//! routed experts and the shared experts run as one fused call
//! ([`docseek_kernels::moe_op::moe`]: rows grouped by expert, f32 accumulation, one rounding).
//! Otherwise (f32 parity, other devices) token-expert pairs are sorted by expert on the host
//! (one small copy of the `[tokens, experts]` scores per layer, never one per expert), the
//! routed rows are gathered with one `index_select`, each active expert runs once on its
//! contiguous slice, and one `index_add` scatters the f32-weighted outputs back. A decode step
//! touches only the k active experts.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use docseek_kernels::moe_op::{moe, SwiGlu};

use super::config::{DeepseekV2Config, ScoringFunc, TopkMethod};
use super::cuda_moe::FusedMoe;
use super::layers::Mlp;

/// Renormalisation guard of the reference (`+ 1e-20`).
const NORM_EPS: f32 = 1e-20;

/// The gate's selection for a batch of tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// Experts per token.
    pub k: usize,
    /// `[tokens * k]` expert ids, token-major.
    pub experts: Vec<u32>,
    /// `[tokens * k]` weights (f32), token-major.
    pub weights: Vec<f32>,
}

/// `MoEGate`: router weights and the selection rule.
#[derive(Debug, Clone)]
pub struct MoeGate {
    weight_f32: Tensor,
    correction_bias: Option<Vec<f32>>,
    method: TopkMethod,
    scoring: ScoringFunc,
    top_k: usize,
    n_group: usize,
    topk_group: usize,
    norm_topk_prob: bool,
    scaling: f32,
}

impl MoeGate {
    /// Loads `{prefix}.weight` `[experts, hidden]` (+ `e_score_correction_bias` for `noaux_tc`).
    pub fn load(vb: VarBuilder, cfg: &DeepseekV2Config) -> Result<Self> {
        let e = cfg.n_routed_experts.unwrap_or(0);
        let weight_f32 = vb.get((e, cfg.hidden_size), "weight")?.to_dtype(DType::F32)?;
        let method = cfg.topk_method().map_err(|err| candle_core::Error::Msg(err.to_string()))?;
        let scoring = cfg.scoring_func().map_err(|err| candle_core::Error::Msg(err.to_string()))?;
        let correction_bias = if method == TopkMethod::NoauxTc {
            Some(vb.get(e, "e_score_correction_bias")?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
        } else {
            None
        };
        Ok(MoeGate {
            weight_f32,
            correction_bias,
            method,
            scoring,
            top_k: cfg.num_experts_per_tok.unwrap_or(1),
            n_group: cfg.n_group.unwrap_or(1).max(1),
            topk_group: cfg.topk_group.unwrap_or(1).max(1),
            norm_topk_prob: cfg.norm_topk_prob,
            scaling: cfg.routed_scaling_factor as f32,
        })
    }

    /// Gate scores `[tokens, experts]` in f32.
    pub fn scores(&self, x: &Tensor) -> Result<Tensor> {
        let logits = x.to_dtype(DType::F32)?.matmul(&self.weight_f32.t()?)?;
        match self.scoring {
            ScoringFunc::Softmax => candle_nn::ops::softmax_last_dim(&logits),
            ScoringFunc::Sigmoid => candle_nn::ops::sigmoid(&logits),
        }
    }

    /// Routes every token of `x` `[tokens, hidden]`.
    pub fn route(&self, x: &Tensor) -> Result<Routing> {
        let scores = self.scores(x)?;
        let (tokens, experts) = scores.dims2()?;
        let flat: Vec<f32> = scores.flatten_all()?.to_vec1()?;
        let mut routing =
            Routing { k: self.top_k, experts: Vec::with_capacity(tokens * self.top_k), weights: Vec::new() };
        for t in 0..tokens {
            let row = &flat[t * experts..(t + 1) * experts];
            let (ids, mut w) = self.select(row);
            if self.top_k > 1 && self.norm_topk_prob {
                let sum: f32 = w.iter().sum::<f32>() + NORM_EPS;
                w.iter_mut().for_each(|v| *v = *v / sum * self.scaling);
            } else {
                w.iter_mut().for_each(|v| *v *= self.scaling);
            }
            routing.experts.extend(ids);
            routing.weights.extend(w);
        }
        Ok(routing)
    }

    /// Top-k of one token's scores per the configured method: (expert ids, raw weights).
    fn select(&self, scores: &[f32]) -> (Vec<u32>, Vec<f32>) {
        match self.method {
            TopkMethod::Greedy => {
                let ids = top_k_indices(scores, self.top_k);
                let w = ids.iter().map(|&i| scores[i]).collect();
                (ids.into_iter().map(|i| i as u32).collect(), w)
            }
            TopkMethod::GroupLimitedGreedy => {
                let masked = self.group_mask(scores, |g| g.iter().copied().fold(f32::NEG_INFINITY, f32::max));
                let ids = top_k_indices(&masked, self.top_k);
                let w = ids.iter().map(|&i| masked[i]).collect();
                (ids.into_iter().map(|i| i as u32).collect(), w)
            }
            TopkMethod::NoauxTc => {
                let bias = self.correction_bias.as_deref().unwrap_or(&[]);
                let choice: Vec<f32> = scores.iter().zip(bias).map(|(s, b)| s + b).collect();
                let masked = self.group_mask(&choice, |g| {
                    let top = top_k_indices(g, 2.min(g.len()));
                    top.iter().map(|&i| g[i]).sum()
                });
                let ids = top_k_indices(&masked, self.top_k);
                let w = ids.iter().map(|&i| scores[i]).collect();
                (ids.into_iter().map(|i| i as u32).collect(), w)
            }
        }
    }

    /// Keeps the `topk_group` best groups (by `group_score`) and sets the rest to 0.0, as the
    /// reference's `masked_fill(~mask, 0.0)` does.
    fn group_mask(&self, scores: &[f32], group_score: impl Fn(&[f32]) -> f32) -> Vec<f32> {
        let per = scores.len() / self.n_group;
        let gs: Vec<f32> = scores.chunks(per).map(&group_score).collect();
        let keep = top_k_indices(&gs, self.topk_group.min(self.n_group));
        let mut out = vec![0.0f32; scores.len()];
        for g in keep {
            out[g * per..(g + 1) * per].copy_from_slice(&scores[g * per..(g + 1) * per]);
        }
        out
    }
}

/// Indices of the `k` largest values, largest first; ties go to the lower index.
pub fn top_k_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].partial_cmp(&values[a]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// `DeepseekV2MoE`: gate, routed experts, optional fused shared experts.
#[derive(Debug, Clone)]
pub struct Moe {
    gate: MoeGate,
    experts: Vec<Mlp>,
    shared: Option<Mlp>,
    /// The routed experts on the device kernels (then `experts` is empty): see `super::cuda`.
    fused: Option<FusedMoe>,
}

impl Moe {
    /// Loads `{prefix}.gate`, `{prefix}.experts.N`, `{prefix}.shared_experts`.
    pub fn load(vb: VarBuilder, cfg: &DeepseekV2Config) -> Result<Self> {
        let gate = MoeGate::load(vb.pp("gate"), cfg)?;
        let n = cfg.n_routed_experts.unwrap_or(0);
        let fused = if super::cuda::use_fused_moe(vb.device(), vb.dtype()) {
            Some(FusedMoe::load(vb.clone(), cfg, super::cuda::fp8_experts())?)
        } else {
            None
        };
        let experts = if fused.is_some() { 0 } else { n };
        let experts = (0..experts)
            .map(|i| Mlp::load(vb.pp("experts").pp(i), cfg.hidden_size, cfg.moe_intermediate_size))
            .collect::<Result<Vec<_>>>()?;
        let shared = match cfg.n_shared_experts {
            Some(s) if s > 0 => {
                Some(Mlp::load(vb.pp("shared_experts"), cfg.hidden_size, cfg.moe_intermediate_size * s)?)
            }
            _ => None,
        };
        Ok(Moe { gate, experts, shared, fused })
    }

    /// The gate (for tests and routing statistics).
    pub fn gate(&self) -> &MoeGate {
        &self.gate
    }

    /// The experts as the fused kernels take them, when every one is in a kernel format.
    fn kernel_experts(&self) -> Option<(Vec<SwiGlu<'_>>, Option<SwiGlu<'_>>)> {
        if self.experts.is_empty() {
            return None;
        }
        let experts: Option<Vec<SwiGlu>> = self.experts.iter().map(|e| e.swiglu().filter(SwiGlu::is_kernel)).collect();
        let shared = match &self.shared {
            Some(s) => Some(s.swiglu().filter(SwiGlu::is_kernel)?),
            None => None,
        };
        Some((experts?, shared))
    }

    /// Runs the routed experts for `routing` on `x` `[tokens, hidden]`; also returns which
    /// experts ran (ascending).
    pub fn routed(&self, x: &Tensor, routing: &Routing) -> Result<(Tensor, Vec<usize>)> {
        if let Some((experts, _)) = self.kernel_experts() {
            let mut active: Vec<usize> = routing.experts.iter().map(|&e| e as usize).collect();
            active.sort_unstable();
            active.dedup();
            let y = moe(x, &experts, None, &routing.experts, &routing.weights, routing.k)?;
            return Ok((y, active));
        }
        let (tokens, hidden) = x.dims2()?;
        let k = routing.k;
        // Stable sort of the token-expert pairs by expert.
        let mut order: Vec<usize> = (0..tokens * k).collect();
        order.sort_by_key(|&p| routing.experts[p]);
        let dev = x.device();
        let rows: Vec<u32> = order.iter().map(|&p| (p / k) as u32).collect();
        let weights: Vec<f32> = order.iter().map(|&p| routing.weights[p]).collect();
        let rows_t = Tensor::from_vec(rows, tokens * k, dev)?;
        let gathered = x.index_select(&rows_t, 0)?;
        let mut outs = Vec::new();
        let mut active = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let e = routing.experts[order[start]] as usize;
            let mut end = start;
            while end < order.len() && routing.experts[order[end]] as usize == e {
                end += 1;
            }
            let expert =
                self.experts.get(e).ok_or_else(|| candle_core::Error::Msg(format!("routed to missing expert {e}")))?;
            outs.push(expert.forward(&gathered.narrow(0, start, end - start)?)?);
            active.push(e);
            start = end;
        }
        let stacked = Tensor::cat(&outs, 0)?.to_dtype(DType::F32)?;
        let w = Tensor::from_vec(weights, (tokens * k, 1), dev)?;
        let weighted = stacked.broadcast_mul(&w)?;
        let sum = Tensor::zeros((tokens, hidden), DType::F32, dev)?.index_add(&rows_t, &weighted, 0)?;
        Ok((sum.to_dtype(x.dtype())?, active))
    }

    /// Full MoE output for `x` `[tokens, hidden]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.fused {
            Some(f) => f.forward(x)?,
            None => {
                let routing = self.gate.route(x)?;
                if let Some((experts, shared)) = self.kernel_experts() {
                    return moe(x, &experts, shared.as_ref(), &routing.experts, &routing.weights, routing.k);
                }
                self.routed(x, &routing)?.0
            }
        };
        match &self.shared {
            Some(s) => y + s.forward(x)?,
            None => Ok(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_prefers_larger_then_lower_index() {
        assert_eq!(top_k_indices(&[0.1, 0.5, 0.5, 0.9], 3), vec![3, 1, 2]);
        assert_eq!(top_k_indices(&[1.0], 1), vec![0]);
    }
}
