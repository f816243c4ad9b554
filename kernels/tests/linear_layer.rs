//! `Linear` and the fused MoE op through candle tensors: every format against the dense f32
//! product of the same weights, on batched (3-D) and 2-D inputs of both activation dtypes.

use candle_core::{DType, Device, Module, Tensor};
use docseek_kernels::linear::{Linear, LinearWeight, Quant};
use docseek_kernels::moe_op::{moe, swiglu, SwiGlu};

fn rand(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_add(0x9E3779B97F4A7C15);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    let a: Vec<f32> = a.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn every_format_matches_the_dense_product() {
    let (inp, out) = (131, 77);
    let w = rand(&[out, inp], 1).to_dtype(DType::BF16).unwrap();
    let b = rand(&[out], 2);
    let dense_f32 = Linear::new(w.to_dtype(DType::F32).unwrap(), Some(b.clone()));
    for (quant, tol) in [(Quant::None, 1e-2), (Quant::Q8, 2e-2), (Quant::Q4, 0.15)] {
        let l = Linear::from_tensor(w.clone(), Some(b.clone()), quant).unwrap();
        assert!(l.is_kernel(), "{quant}");
        for shape in [vec![5, inp], vec![2, 9, inp], vec![1, inp]] {
            let x = rand(&shape, 3);
            let want = dense_f32.forward(&x).unwrap();
            for dt in [DType::F32, DType::BF16] {
                let got = l.forward(&x.to_dtype(dt).unwrap()).unwrap();
                assert_eq!(got.dtype(), dt);
                assert_eq!(got.dims(), want.dims());
                let e = max_rel(&got, &want);
                assert!(e < tol, "{quant} {shape:?} {dt:?}: {e}");
            }
        }
    }
}

#[test]
fn f32_weights_without_quantization_stay_dense_and_exact() {
    let w = rand(&[7, 5], 4);
    let l = Linear::from_tensor(w.clone(), None, Quant::None).unwrap();
    assert!(matches!(l.weight(), LinearWeight::Dense(_)));
    let x = rand(&[3, 5], 5);
    let want = x.matmul(&w.t().unwrap()).unwrap();
    assert_eq!(max_rel(&l.forward(&x).unwrap(), &want), 0.0);
}

#[test]
fn fused_moe_and_mlp_match_per_expert_candle_ops() {
    let (h, i, n_exp, k, t) = (64, 40, 4, 2, 5);
    let mk = |rows, cols, seed| rand(&[rows, cols], seed).to_dtype(DType::BF16).unwrap();
    let layers: Vec<[Tensor; 3]> =
        (0..=n_exp).map(|e| [mk(i, h, 10 + e as u64), mk(i, h, 20 + e as u64), mk(h, i, 30 + e as u64)]).collect();
    let lin: Vec<[Linear; 3]> =
        layers.iter().map(|ws| ws.clone().map(|w| Linear::from_tensor(w, None, Quant::None).unwrap())).collect();
    let sw: Vec<SwiGlu> = lin.iter().map(|l| SwiGlu { gate: &l[0], up: &l[1], down: &l[2] }).collect();
    let expert_f32 = |e: usize, x: &Tensor| -> Tensor {
        let [g, u, d] = &layers[e];
        let f = |w: &Tensor| w.to_dtype(DType::F32).unwrap().t().unwrap();
        let hh = (candle_nn_silu(&x.matmul(&f(g)).unwrap()) * x.matmul(&f(u)).unwrap()).unwrap();
        hh.matmul(&f(d)).unwrap()
    };
    let x = rand(&[t, h], 7);
    let ids: Vec<u32> = (0..t * k).map(|p| ((p * 3 + 1) % n_exp) as u32).collect();
    let wts: Vec<f32> = (0..t * k).map(|p| 0.25 + 0.5 * (p % 2) as f32).collect();
    let mut want = expert_f32(n_exp, &x);
    for p in 0..t * k {
        let row = x.narrow(0, p / k, 1).unwrap();
        let y = (expert_f32(ids[p] as usize, &row) * wts[p] as f64).unwrap();
        let pad = Tensor::zeros((t, h), DType::F32, &Device::Cpu)
            .unwrap()
            .slice_assign(&[p / k..p / k + 1, 0..h], &y)
            .unwrap();
        want = (want + pad).unwrap();
    }
    let got = moe(&x.to_dtype(DType::BF16).unwrap(), &sw[..n_exp], Some(&sw[n_exp]), &ids, &wts, k).unwrap();
    assert_eq!(got.dtype(), DType::BF16);
    let e = max_rel(&got, &want);
    assert!(e < 2e-2, "moe: {e}");
    let got = swiglu(&x, &sw[n_exp]).unwrap();
    let e = max_rel(&got, &expert_f32(n_exp, &x));
    assert!(e < 2e-2, "mlp: {e}");
}

fn candle_nn_silu(x: &Tensor) -> Tensor {
    (x * candle_core::Tensor::ones_like(x)
        .unwrap()
        .broadcast_div(&(x.neg().unwrap().exp().unwrap() + 1.0).unwrap())
        .unwrap())
    .unwrap()
}
