//! Reference MoE feed-forward: every (token, expert) pair computed on its own with f32 weight
//! matrices, `Σ_e w_e · down_e(silu(gate_e x) · up_e x)` (+ the shared expert), f64 sums.

/// One expert as dense f32 matrices: `gate`, `up` `[inter, hidden]`, `down` `[hidden, inter]`.
#[derive(Debug, Clone)]
pub struct DenseExpert {
    /// Gate projection.
    pub gate: Vec<f32>,
    /// Up projection.
    pub up: Vec<f32>,
    /// Down projection.
    pub down: Vec<f32>,
    /// Intermediate width.
    pub inter: usize,
}

fn mv(w: &[f32], x: &[f32], rows: usize) -> Vec<f64> {
    let k = x.len();
    (0..rows).map(|r| (0..k).map(|l| w[r * k + l] as f64 * x[l] as f64).sum()).collect()
}

fn expert(e: &DenseExpert, x: &[f32], hidden: usize) -> Vec<f64> {
    let g = mv(&e.gate, x, e.inter);
    let u = mv(&e.up, x, e.inter);
    let h: Vec<f32> = g.iter().zip(&u).map(|(g, u)| (g / (1.0 + (-g).exp()) * u) as f32).collect();
    mv(&e.down, &h, hidden)
}

/// The MoE output `[t, hidden]` for `x` `[t, hidden]` and token-major routing `[t * k]`.
pub fn moe(
    experts: &[DenseExpert],
    shared: Option<&DenseExpert>,
    x: &[f32],
    t: usize,
    ids: &[u32],
    weights: &[f32],
    k: usize,
) -> Vec<f32> {
    let hidden = x.len() / t.max(1);
    let mut out = vec![0f32; t * hidden];
    for tok in 0..t {
        let xr = &x[tok * hidden..(tok + 1) * hidden];
        let mut acc = vec![0f64; hidden];
        for s in 0..k {
            let y = expert(&experts[ids[tok * k + s] as usize], xr, hidden);
            acc.iter_mut().zip(&y).for_each(|(a, y)| *a += weights[tok * k + s] as f64 * y);
        }
        if let Some(e) = shared {
            acc.iter_mut().zip(expert(e, xr, hidden)).for_each(|(a, y)| *a += y);
        }
        out[tok * hidden..(tok + 1) * hidden].iter_mut().zip(&acc).for_each(|(o, a)| *o = *a as f32);
    }
    out
}
