//! The fused bf16 attention against the reference, with no bias, a full bias shared by the
//! batch, and SAM's decomposed bias; odd sizes and more query rows than one block.

use candle_core::{DType, Device, Tensor};
use docseek_kernels::attention_op::{sdpa_bf16, AttnBias, ROWS};
use docseek_kernels::reference::sdpa::sdpa;

fn rand(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn bf16_round(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| half::bf16::from_f32(*x).to_f32()).collect()
}

#[test]
fn fused_attention_matches_the_reference() {
    let (n, lq, kh, kw, d) = (3, ROWS + 7, 5, 7, 24);
    let lk = kh * kw;
    let dev = Device::Cpu;
    let (q, k, v) =
        (bf16_round(&rand(n * lq * d, 1)), bf16_round(&rand(n * lk * d, 2)), bf16_round(&rand(n * lk * d, 3)));
    let t = |x: &[f32], l: usize| Tensor::from_vec(x.to_vec(), (n, l, d), &dev).unwrap().to_dtype(DType::BF16).unwrap();
    let (qt, kt, vt) = (t(&q, lq), t(&k, lk), t(&v, lk));
    let full = rand(lq * lk, 4);
    let (h, w) = (rand(n * lq * kh, 5), rand(n * lq * kw, 6));
    let full_t = Tensor::from_vec(full.clone(), (1, lq, lk), &dev).unwrap();
    let h_t = Tensor::from_vec(h.clone(), (n, lq, kh), &dev).unwrap();
    let w_t = Tensor::from_vec(w.clone(), (n, lq, kw), &dev).unwrap();
    let scale = 1.0 / (d as f64).sqrt();
    type BiasFn<'a> = Box<dyn Fn(usize, usize, usize) -> f64 + 'a>;
    let cases: [(Option<AttnBias>, BiasFn); 3] = [
        (None, Box::new(|_, _, _| 0.0)),
        (Some(AttnBias::Full(&full_t)), Box::new(|_, r, c| full[r * lk + c] as f64)),
        (
            Some(AttnBias::Decomposed { h: &h_t, w: &w_t }),
            Box::new(|b, r, c| (h[(b * lq + r) * kh + c / kw] + w[(b * lq + r) * kw + c % kw]) as f64),
        ),
    ];
    for (bias, f) in cases {
        let want = sdpa(&q, &k, &v, n, lq, lk, d, scale, f);
        let got: Vec<f32> = sdpa_bf16(&qt, &kt, &vt, bias, scale)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let m = want.iter().fold(0f32, |a, x| a.max(x.abs()));
        let e = got.iter().zip(&want).fold(0f32, |a, (x, y)| a.max((x - y).abs())) / m;
        assert!(e < 2e-2, "{}: rel err {e}", if bias.is_some() { "bias" } else { "no bias" });
    }
}
