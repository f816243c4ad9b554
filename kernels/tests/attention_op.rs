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

#[test]
fn causal_attention_matches_the_reference_with_gqa_and_a_cached_prefix() {
    use docseek_kernels::causal_attention_op::sdpa_causal_bf16;
    // Two query heads per KV head; a cached prefix so the first row block's keys end inside
    // the first packed k block and the second's past it; odd head size.
    let (heads, kvh, n, start, d) = (4, 2, ROWS + 77, 400, 40);
    let total = start + n;
    let dev = Device::Cpu;
    let (q, k, v) = (
        bf16_round(&rand(heads * n * d, 7)),
        bf16_round(&rand(kvh * total * d, 8)),
        bf16_round(&rand(kvh * total * d, 9)),
    );
    let t = |x: &[f32], h: usize, l: usize| {
        Tensor::from_vec(x.to_vec(), (h, l, d), &dev).unwrap().to_dtype(DType::BF16).unwrap()
    };
    let scale = 1.0 / (d as f64).sqrt();
    let got: Vec<f32> = sdpa_causal_bf16(&t(&q, heads, n), &t(&k, kvh, total), &t(&v, kvh, total), scale)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // The reference per query head over its KV head's rows, causal mask as a bias.
    let rep = heads / kvh;
    let expand = |x: &[f32]| -> Vec<f32> {
        (0..heads).flat_map(|h| x[(h / rep) * total * d..(h / rep + 1) * total * d].to_vec()).collect()
    };
    let want = sdpa(&q, &expand(&k), &expand(&v), heads, n, total, d, scale, |_, r, c| {
        if c > start + r {
            f64::NEG_INFINITY
        } else {
            0.0
        }
    });
    let m = want.iter().fold(0f32, |a, x| a.max(x.abs()));
    let mut e = 0f32;
    for h in 0..heads {
        for r in 0..n {
            for i in 0..d {
                e = e.max((got[(r * heads + h) * d + i] - want[(h * n + r) * d + i]).abs());
            }
        }
    }
    assert!(e / m < 2e-2, "causal: rel err {}", e / m);
}
