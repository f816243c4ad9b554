//! Reference of the MoE router (`MoEGate.forward` of DeepSeek-V2/V3), the same rules as the
//! decoder's host-side gate (`src/model/moe.rs`):
//!
//! - scores: softmax over the experts (`max`, `exp(x - max)`, `/ sum`) or `1 / (1 + exp(-x))`;
//! - `Greedy`: the `top_k` largest scores;
//! - `GroupLimited`: keep the `topk_group` groups with the largest max score, zero the rest,
//!   then the `top_k` largest;
//! - `NoauxTc`: choose with `score + bias` inside the groups with the largest sum of their
//!   top-2 biased scores (others zeroed), weigh with the raw score;
//! - weights: `w / (sum + 1e-20) * scaling` when `norm` and `top_k > 1`, else `w * scaling`.
//!
//! Ties between equal values (scores or group scores) go to the lower index.

/// Renormalisation guard of the reference (`+ 1e-20`).
pub const NORM_EPS: f32 = 1e-20;

/// How logits become scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoring {
    /// Softmax over the experts (DeepSeek-V2).
    Softmax,
    /// Element-wise sigmoid (DeepSeek-V3).
    Sigmoid,
}

/// The selection rule (`topk_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopkMethod {
    /// Top-k over all experts.
    Greedy,
    /// `group_limited_greedy`.
    GroupLimited,
    /// `noaux_tc` (bias-corrected, needs the correction bias).
    NoauxTc,
}

/// The router's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateParams {
    /// Score function.
    pub scoring: Scoring,
    /// Selection rule.
    pub method: TopkMethod,
    /// Experts per token.
    pub top_k: usize,
    /// Expert groups (1 = no grouping).
    pub n_group: usize,
    /// Groups kept.
    pub topk_group: usize,
    /// Renormalise the chosen weights (only when `top_k > 1`).
    pub norm_topk_prob: bool,
    /// `routed_scaling_factor`.
    pub scaling: f32,
}

/// Indices of the `k` largest values, largest first; ties go to the lower index.
pub fn top_k_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].partial_cmp(&values[a]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Scores of one token's logits.
pub fn scores(logits: &[f32], scoring: Scoring) -> Vec<f32> {
    match scoring {
        Scoring::Softmax => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            e.into_iter().map(|v| v / sum).collect()
        }
        Scoring::Sigmoid => logits.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect(),
    }
}

/// Keeps the `keep` best groups (by `group_score`) and sets the rest to 0.0.
fn group_mask(values: &[f32], n_group: usize, keep: usize, group_score: impl Fn(&[f32]) -> f32) -> Vec<f32> {
    let per = values.len() / n_group;
    let gs: Vec<f32> = values.chunks(per).map(&group_score).collect();
    let mut out = vec![0.0f32; values.len()];
    for g in top_k_indices(&gs, keep.min(n_group)) {
        out[g * per..(g + 1) * per].copy_from_slice(&values[g * per..(g + 1) * per]);
    }
    out
}

/// Routes one token from its scores: (expert ids, final weights), best first.
pub fn select(scores: &[f32], bias: Option<&[f32]>, p: &GateParams) -> (Vec<u32>, Vec<f32>) {
    let (ids, mut w): (Vec<usize>, Vec<f32>) = match p.method {
        TopkMethod::Greedy => {
            let ids = top_k_indices(scores, p.top_k);
            let w = ids.iter().map(|&i| scores[i]).collect();
            (ids, w)
        }
        TopkMethod::GroupLimited => {
            let masked =
                group_mask(scores, p.n_group, p.topk_group, |g| g.iter().copied().fold(f32::NEG_INFINITY, f32::max));
            let ids = top_k_indices(&masked, p.top_k);
            let w = ids.iter().map(|&i| masked[i]).collect();
            (ids, w)
        }
        TopkMethod::NoauxTc => {
            let bias = bias.expect("noaux_tc needs the correction bias");
            let choice: Vec<f32> = scores.iter().zip(bias).map(|(s, b)| s + b).collect();
            let masked = group_mask(&choice, p.n_group, p.topk_group, |g| {
                top_k_indices(g, 2.min(g.len())).iter().map(|&i| g[i]).sum()
            });
            let ids = top_k_indices(&masked, p.top_k);
            let w = ids.iter().map(|&i| scores[i]).collect();
            (ids, w)
        }
    };
    if p.top_k > 1 && p.norm_topk_prob {
        let sum: f32 = w.iter().sum::<f32>() + NORM_EPS;
        w.iter_mut().for_each(|v| *v = *v / sum * p.scaling);
    } else {
        w.iter_mut().for_each(|v| *v *= p.scaling);
    }
    (ids.into_iter().map(|i| i as u32).collect(), w)
}

/// Routes every token of `logits` `[tokens, experts]`: `[tokens * top_k]` ids and weights,
/// token-major.
pub fn moe_gate(logits: &[f32], experts: usize, bias: Option<&[f32]>, p: &GateParams) -> (Vec<u32>, Vec<f32>) {
    assert!(experts > 0 && logits.len().is_multiple_of(experts), "moe_gate: logits are not rows of {experts}");
    assert!(p.n_group >= 1 && experts.is_multiple_of(p.n_group), "moe_gate: {experts} experts in {} groups", p.n_group);
    let mut ids = Vec::with_capacity(logits.len() / experts * p.top_k);
    let mut weights = Vec::with_capacity(ids.capacity());
    for row in logits.chunks(experts) {
        let (i, w) = select(&scores(row, p.scoring), bias, p);
        ids.extend(i);
        weights.extend(w);
    }
    (ids, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(method: TopkMethod, top_k: usize, n_group: usize, topk_group: usize) -> GateParams {
        GateParams {
            scoring: Scoring::Softmax,
            method,
            top_k,
            n_group,
            topk_group,
            norm_topk_prob: false,
            scaling: 1.0,
        }
    }

    #[test]
    fn greedy_ties_go_to_the_lower_index() {
        let (ids, w) = select(&[0.1, 0.3, 0.3, 0.3], None, &params(TopkMethod::Greedy, 2, 1, 1));
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(w, vec![0.3, 0.3]);
    }

    #[test]
    fn group_limited_keeps_the_best_groups_only() {
        // Groups {0,1} max 0.4, {2,3} max 0.35, {4,5} max 0.05: keep the first two.
        let s = [0.4, 0.01, 0.35, 0.3, 0.05, 0.04];
        let (ids, _) = select(&s, None, &params(TopkMethod::GroupLimited, 3, 3, 2));
        assert_eq!(ids, vec![0, 2, 3]);
        // Asking for more experts than the kept groups hold picks zeros, lowest index first.
        let (ids, w) = select(&s, None, &params(TopkMethod::GroupLimited, 5, 3, 2));
        assert_eq!(ids, vec![0, 2, 3, 1, 4]);
        assert_eq!(w[4], 0.0);
    }

    #[test]
    fn noaux_chooses_with_bias_and_weighs_with_raw_scores() {
        let mut p = params(TopkMethod::NoauxTc, 2, 2, 1);
        p.scoring = Scoring::Sigmoid;
        p.norm_topk_prob = true;
        p.scaling = 2.5;
        let logits = [0.0f32, 1.0, 2.0, -1.0];
        let bias = [1.0f32, 1.0, 0.0, 0.0];
        let s = scores(&logits, Scoring::Sigmoid);
        // Biased: [1.5, 1.73, 0.88, 0.27]; group 0 (sum 3.23) beats group 1 (1.15).
        let (ids, w) = select(&s, Some(&bias), &p);
        assert_eq!(ids, vec![1, 0]);
        let sum = s[1] + s[0] + NORM_EPS;
        assert_eq!(w, vec![s[1] / sum * 2.5, s[0] / sum * 2.5]);
    }

    #[test]
    fn softmax_scores_sum_to_one() {
        let s = scores(&[1.0, 2.0, 3.0, 4.0], Scoring::Softmax);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
    }
}
