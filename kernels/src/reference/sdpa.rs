//! Reference attention (the vision encoder's dense SDPA): `softmax(q kᵀ · scale + bias) v` per
//! batch item and query row, in f64.

/// `q` `[n, lq, d]`, `k`, `v` `[n, lk, d]`, `bias(b, row, col)`: `[n, lq, d]`.
#[allow(clippy::too_many_arguments)]
pub fn sdpa(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n: usize,
    lq: usize,
    lk: usize,
    d: usize,
    scale: f64,
    bias: impl Fn(usize, usize, usize) -> f64,
) -> Vec<f32> {
    let mut out = vec![0f32; n * lq * d];
    for b in 0..n {
        for r in 0..lq {
            let s: Vec<f64> = (0..lk)
                .map(|c| {
                    let dot: f64 =
                        (0..d).map(|i| q[(b * lq + r) * d + i] as f64 * k[(b * lk + c) * d + i] as f64).sum();
                    dot * scale + bias(b, r, c)
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let t: f64 = e.iter().sum();
            for i in 0..d {
                let o: f64 = (0..lk).map(|c| e[c] / t * v[(b * lk + c) * d + i] as f64).sum();
                out[(b * lq + r) * d + i] = o as f32;
            }
        }
    }
    out
}
