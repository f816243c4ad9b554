//! GPU tests: every CUDA kernel against its CPU reference on fresh random inputs with odd
//! shapes (the CPU path of each op is the reference). Built only with `--features cuda`; run on
//! a machine with a GPU (`scripts/gpu-smoke.sh`). Each test prints its seed and error figures.

#![cfg(feature = "cuda")]

mod common;

use candle_core::{DType, Device, Tensor};
use common::{assert_close, values, Rng};
use docseek_kernels::ops::attention::{paged_attention_mha, paged_attention_mla, write_paged, BLOCK_TOKENS};
use docseek_kernels::ops::fp8::{fp8_matmul, Fp8Matrix};
use docseek_kernels::ops::moe::{
    grouped_gemm, moe_gate, moe_permute, moe_unpermute, ExpertWeights, GateParams, Gather, Scoring, TopkMethod,
};
use docseek_kernels::ops::norm::{add_rms_norm, rms_norm, silu_mul};
use docseek_kernels::ops::rope::{rope, RopeStyle};

/// One device for the whole run (each `new_cuda` is a separate stream, module cache and
/// identity: tensors of two instances do not mix).
fn gpu() -> Device {
    static GPU: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    GPU.get_or_init(|| {
        Device::new_cuda(0).expect("these tests need a CUDA GPU (run them through scripts/gpu-smoke.sh)")
    })
    .clone()
}

fn to_gpu(t: &Tensor) -> Tensor {
    t.to_device(&gpu()).unwrap()
}

/// Tolerance (relative to the largest reference value) of a result stored in `dtype`.
fn tol(dtype: DType) -> f32 {
    match dtype {
        DType::F32 => 2e-5,
        _ => 1.6e-2,
    }
}

#[test]
fn rms_norm_and_residual_match_reference() {
    let mut rng = Rng::fresh("rms_norm");
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        for (rows, dim) in [(1, 1280), (37, 1283), (5, 64), (300, 4096)] {
            let x = rng.tensor(&[rows, dim], 1.0, dtype);
            let r = rng.tensor(&[rows, dim], 1.0, dtype);
            let w = (rng.tensor(&[dim], 0.1, DType::F32) + 1.0).unwrap().to_dtype(dtype).unwrap();
            let want = rms_norm(&x, &w, 1e-6).unwrap();
            let got = rms_norm(&to_gpu(&x), &to_gpu(&w), 1e-6).unwrap();
            assert_close(&format!("rms_norm {dtype:?} {rows}x{dim}"), &got, &want, tol(dtype));
            let (wh, wy) = add_rms_norm(&x, &r, &w, 1e-6).unwrap();
            let (gh, gy) = add_rms_norm(&to_gpu(&x), &to_gpu(&r), &to_gpu(&w), 1e-6).unwrap();
            // The residual sum is one rounding of an exact f32 sum: bit-identical.
            assert_eq!(values(&gh), values(&wh), "add_rms_norm h {dtype:?}");
            assert_close(&format!("add_rms_norm {dtype:?} {rows}x{dim}"), &gy, &wy, tol(dtype));
        }
    }
}

#[test]
fn silu_mul_matches_reference() {
    let mut rng = Rng::fresh("silu_mul");
    for dtype in [DType::F32, DType::BF16] {
        for (rows, inter) in [(1, 896), (23, 131), (513, 7)] {
            let gu = rng.tensor(&[rows, 2 * inter], 2.0, dtype);
            let want = silu_mul(&gu).unwrap();
            let got = silu_mul(&to_gpu(&gu)).unwrap();
            assert_eq!(got.dims(), &[rows, inter]);
            assert_close(&format!("silu_mul {dtype:?} {rows}x{inter}"), &got, &want, tol(dtype));
        }
    }
}

#[test]
fn rope_matches_reference_in_both_layouts() {
    let mut rng = Rng::fresh("rope");
    for dtype in [DType::F32, DType::BF16] {
        for style in [RopeStyle::Neox, RopeStyle::Interleaved] {
            let (tokens, heads, dim, rows) = (29, 3, 66, 500);
            let x = rng.tensor(&[tokens, heads, dim], 1.0, dtype);
            let pos: Vec<u32> = (0..tokens).map(|_| rng.below(rows) as u32).collect();
            let pos = Tensor::new(pos.as_slice(), &Device::Cpu).unwrap();
            let angles: Vec<f32> = (0..rows * dim / 2).map(|_| rng.unit() * 6.3).collect();
            let cos = Tensor::new(angles.iter().map(|a| a.cos()).collect::<Vec<_>>().as_slice(), &Device::Cpu)
                .unwrap()
                .reshape((rows, dim / 2))
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let sin = Tensor::new(angles.iter().map(|a| a.sin()).collect::<Vec<_>>().as_slice(), &Device::Cpu)
                .unwrap()
                .reshape((rows, dim / 2))
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let want = rope(&x, &pos, &cos, &sin, style).unwrap();
            let got = rope(&to_gpu(&x), &to_gpu(&pos), &to_gpu(&cos), &to_gpu(&sin), style).unwrap();
            assert_close(&format!("rope {dtype:?} {style:?}"), &got, &want, tol(dtype));
        }
    }
}

/// Routing must agree exactly, except where the reference's choice is a near-tie (two scores
/// within f32 noise), where either order is right.
fn assert_same_routing(what: &str, logits: &Tensor, got: (&Tensor, &Tensor), want: (&Tensor, &Tensor), experts: usize) {
    let (gi, wi): (Vec<u32>, Vec<u32>) =
        (got.0.flatten_all().unwrap().to_vec1().unwrap(), want.0.flatten_all().unwrap().to_vec1().unwrap());
    let (gw, ww) = (values(got.1), values(want.1));
    let l = values(logits);
    let k = got.0.dim(1).unwrap();
    let mut ties = 0;
    for (p, (a, b)) in gi.iter().zip(&wi).enumerate() {
        if a != b {
            let row = &l[(p / k) * experts..(p / k + 1) * experts];
            let gap = (row[*a as usize] - row[*b as usize]).abs();
            assert!(gap < 1e-5, "{what}: pair {p} expert {a} vs {b}, logit gap {gap}");
            ties += 1;
            continue;
        }
        assert!((gw[p] - ww[p]).abs() <= 1e-5 * ww[p].abs().max(1e-3), "{what}: weight {p}: {} vs {}", gw[p], ww[p]);
    }
    eprintln!("{what}: {} pairs, {ties} near-ties", gi.len());
    assert!(ties * 100 <= gi.len().max(100), "{what}: too many near-ties ({ties})");
}

#[test]
fn moe_gate_matches_reference_for_every_method() {
    let mut rng = Rng::fresh("moe_gate");
    let cases = [
        (Scoring::Softmax, TopkMethod::Greedy, 64, 6, 1, 1, false),
        (Scoring::Softmax, TopkMethod::Greedy, 64, 6, 1, 1, true),
        (Scoring::Softmax, TopkMethod::GroupLimited, 64, 6, 8, 3, true),
        (Scoring::Sigmoid, TopkMethod::NoauxTc, 256, 8, 8, 4, true),
        (Scoring::Sigmoid, TopkMethod::NoauxTc, 72, 5, 9, 2, false),
        (Scoring::Softmax, TopkMethod::Greedy, 7, 1, 1, 1, false),
    ];
    for (scoring, method, experts, top_k, n_group, topk_group, norm) in cases {
        let p = GateParams { scoring, method, top_k, n_group, topk_group, norm_topk_prob: norm, scaling: 2.5 };
        let tokens = 333;
        let logits = rng.tensor(&[tokens, experts], 2.0, DType::F32);
        let bias = (method == TopkMethod::NoauxTc).then(|| rng.tensor(&[experts], 0.5, DType::F32));
        let want = moe_gate(&logits, bias.as_ref(), &p).unwrap();
        let bias_g = bias.as_ref().map(to_gpu);
        let got = moe_gate(&to_gpu(&logits), bias_g.as_ref(), &p).unwrap();
        let what = format!("moe_gate {method:?} {experts}/{top_k}");
        assert_same_routing(&what, &logits, (&got.0, &got.1), (&want.0, &want.1), experts);
    }
    // Exact ties (duplicated logits) go to the lower index on the device too.
    let row: Vec<f32> = vec![0.5, 1.0, 1.0, 0.2, 1.0, -3.0, 0.0, 0.7];
    let logits = Tensor::from_vec(row, (1, 8), &Device::Cpu).unwrap();
    let p = GateParams {
        scoring: Scoring::Softmax,
        method: TopkMethod::Greedy,
        top_k: 3,
        n_group: 1,
        topk_group: 1,
        norm_topk_prob: false,
        scaling: 1.0,
    };
    let (ids, _) = moe_gate(&to_gpu(&logits), None, &p).unwrap();
    assert_eq!(ids.flatten_all().unwrap().to_vec1::<u32>().unwrap(), vec![1, 2, 4]);
}

#[test]
fn permutation_matches_reference_up_to_order_within_an_expert() {
    let mut rng = Rng::fresh("moe_permute");
    for (tokens, k, experts) in [(1, 6, 64), (255, 6, 64), (1000, 8, 256), (3, 2, 5)] {
        let ids: Vec<u32> = (0..tokens * k).map(|_| rng.below(experts) as u32).collect();
        let ids = Tensor::from_vec(ids, (tokens, k), &Device::Cpu).unwrap();
        let want = moe_permute(&ids, experts).unwrap();
        let got = moe_permute(&to_gpu(&ids), experts).unwrap();
        let u = |t: &Tensor| t.to_device(&Device::Cpu).unwrap().to_vec1::<u32>().unwrap();
        let offsets = u(&want.offsets);
        assert_eq!(u(&got.offsets), offsets, "offsets");
        assert_eq!(u(&got.tile_expert), u(&want.tile_expert), "tile experts");
        assert_eq!(u(&got.tile_start), u(&want.tile_start), "tile starts");
        let (gs, ws, ginv) = (u(&got.sorted_pair), u(&want.sorted_pair), u(&got.inv));
        for e in 0..experts {
            let (a, b) = (offsets[e] as usize, offsets[e + 1] as usize);
            let (mut g, mut w) = (gs[a..b].to_vec(), ws[a..b].to_vec());
            g.sort();
            w.sort();
            assert_eq!(g, w, "expert {e} rows");
        }
        for (p, &r) in ginv.iter().enumerate() {
            assert_eq!(gs[r as usize], p as u32, "inv of pair {p}");
        }
    }
}

/// One full routed MoE projection chain on both devices: gate_up grouped GEMM, SiLU-mul,
/// down grouped GEMM, un-permute.
fn moe_chain(
    x: &Tensor,
    ids: &Tensor,
    w: &Tensor,
    gate_up: &ExpertWeights,
    down: &ExpertWeights,
    experts: usize,
) -> Tensor {
    let d = moe_permute(ids, experts).unwrap();
    let gu = grouped_gemm(x, &d, Gather::Tokens, gate_up, x.dtype()).unwrap();
    let h = silu_mul(&gu).unwrap();
    let y = grouped_gemm(&h, &d, Gather::Sorted, down, DType::F32).unwrap();
    moe_unpermute(&y, &d, w, x.dtype()).unwrap()
}

fn weights_on(w: &ExpertWeights, dev: &Device) -> ExpertWeights {
    match w {
        ExpertWeights::Dense(t) => ExpertWeights::Dense(t.to_device(dev).unwrap()),
        ExpertWeights::Fp8(f) => ExpertWeights::Fp8(Fp8Matrix {
            codes: f.codes.to_device(dev).unwrap(),
            scales: f.scales.to_device(dev).unwrap(),
        }),
    }
}

#[test]
fn grouped_gemm_matches_reference() {
    let mut rng = Rng::fresh("grouped_gemm");
    // (tokens, k, experts, hidden, inter): decode-sized, odd, and unaligned K.
    for (tokens, k, experts, hidden, inter) in [(1, 6, 64, 1280, 896), (67, 6, 16, 256, 96), (40, 2, 5, 131, 77)] {
        for dtype in [DType::F32, DType::BF16] {
            let x = rng.tensor(&[tokens, hidden], 1.0, dtype);
            let ids: Vec<u32> = (0..tokens * k).map(|_| rng.below(experts) as u32).collect();
            let ids = Tensor::from_vec(ids, (tokens, k), &Device::Cpu).unwrap();
            let rw = rng.tensor(&[tokens, k], 0.3, DType::F32).abs().unwrap();
            let std = 1.0 / (hidden as f32).sqrt();
            let gu = ExpertWeights::Dense(rng.tensor(&[experts, 2 * inter, hidden], std, dtype));
            let dn = ExpertWeights::Dense(rng.tensor(&[experts, hidden, inter], std, dtype));
            // One projection alone, f32 output: only the summation order differs.
            let d = moe_permute(&ids, experts).unwrap();
            let want = grouped_gemm(&x, &d, Gather::Tokens, &gu, DType::F32).unwrap();
            let dg = moe_permute(&to_gpu(&ids), experts).unwrap();
            let got = grouped_gemm(&to_gpu(&x), &dg, Gather::Tokens, &weights_on(&gu, &gpu()), DType::F32).unwrap();
            // Rows may be ordered differently within an expert: compare through inv.
            let reorder = |y: &Tensor, inv: &Tensor| y.index_select(&inv.to_device(y.device()).unwrap(), 0).unwrap();
            let tol_f32 = if dtype == DType::F32 { 2e-5 } else { 2e-3 };
            assert_close(
                &format!("grouped_gemm {dtype:?} {tokens}x{hidden} e{experts}"),
                &reorder(&got, &dg.inv),
                &reorder(&want, &d.inv),
                tol_f32,
            );
            let want = moe_chain(&x, &ids, &rw, &gu, &dn, experts);
            let got = moe_chain(
                &to_gpu(&x),
                &to_gpu(&ids),
                &to_gpu(&rw),
                &weights_on(&gu, &gpu()),
                &weights_on(&dn, &gpu()),
                experts,
            );
            assert_close(&format!("moe chain {dtype:?} {tokens}x{hidden} e{experts}"), &got, &want, tol(dtype) * 2.0);
        }
    }
}

#[test]
fn fp8_quantisation_and_gemm_match_reference() {
    let mut rng = Rng::fresh("fp8");
    for (experts, n, kdim) in [(1, 300, 1280), (3, 130, 257), (2, 1792, 1280)] {
        let w = rng.tensor(&[experts, n, kdim], 0.05, DType::BF16);
        let q_cpu = Fp8Matrix::quantize(&w).unwrap();
        let q_gpu = Fp8Matrix::quantize(&to_gpu(&w)).unwrap();
        assert_eq!(values(&q_gpu.scales), values(&q_cpu.scales), "scales {experts}x{n}x{kdim}");
        let (gc, cc): (Vec<u8>, Vec<u8>) = (
            q_gpu.codes.to_device(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap(),
            q_cpu.codes.flatten_all().unwrap().to_vec1().unwrap(),
        );
        let differ = gc.iter().zip(&cc).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "fp8 codes differ in {differ} of {} places", gc.len());
        if experts == 1 {
            for dtype in [DType::F32, DType::BF16] {
                let x = rng.tensor(&[45, kdim], 1.0, dtype);
                let want = fp8_matmul(&x, &q_cpu).unwrap();
                let got = fp8_matmul(&to_gpu(&x), &q_gpu).unwrap();
                assert_close(&format!("fp8_matmul {dtype:?} {n}x{kdim}"), &got, &want, tol(dtype));
            }
        } else {
            let (tokens, k) = (50, 2);
            let x = rng.tensor(&[tokens, kdim], 1.0, DType::BF16);
            let ids: Vec<u32> = (0..tokens * k).map(|_| rng.below(experts) as u32).collect();
            let ids = Tensor::from_vec(ids, (tokens, k), &Device::Cpu).unwrap();
            let d = moe_permute(&ids, experts).unwrap();
            let dg = moe_permute(&to_gpu(&ids), experts).unwrap();
            let want = grouped_gemm(&x, &d, Gather::Tokens, &ExpertWeights::Fp8(q_cpu.clone()), DType::F32).unwrap();
            let got =
                grouped_gemm(&to_gpu(&x), &dg, Gather::Tokens, &ExpertWeights::Fp8(q_gpu.clone()), DType::F32).unwrap();
            let want = want.index_select(&d.inv, 0).unwrap();
            let got = got.index_select(&dg.inv, 0).unwrap();
            assert_close(&format!("fp8 grouped {experts}x{n}x{kdim}"), &got, &want, 2e-3);
        }
    }
}

/// Random block tables over a shuffled pool: every sequence gets distinct blocks.
fn tables(rng: &mut Rng, lens: &[usize], num_blocks: usize) -> (Vec<u32>, usize) {
    let max_blocks = lens.iter().map(|l| l.div_ceil(BLOCK_TOKENS)).max().unwrap_or(1).max(1);
    let mut free: Vec<u32> = (0..num_blocks as u32).collect();
    for i in (1..free.len()).rev() {
        free.swap(i, rng.below(i + 1));
    }
    let mut t = vec![0u32; lens.len() * max_blocks];
    let mut next = 0;
    for (b, l) in lens.iter().enumerate() {
        for j in 0..l.div_ceil(BLOCK_TOKENS) {
            t[b * max_blocks + j] = free[next];
            next += 1;
        }
    }
    (t, max_blocks)
}

#[test]
fn paged_mha_and_writes_match_reference() {
    let mut rng = Rng::fresh("paged_mha");
    for dtype in [DType::F32, DType::BF16] {
        for (heads, kvh, dim) in [(10, 10, 128), (12, 4, 64), (3, 1, 80)] {
            let lens = [1usize, 17, 300, 64, 1029];
            let num_blocks = lens.iter().map(|l| l.div_ceil(BLOCK_TOKENS)).sum::<usize>() + 3;
            let (tab, max_blocks) = tables(&mut rng, &lens, num_blocks);
            let k_pool = rng.tensor(&[num_blocks, kvh, BLOCK_TOKENS, dim], 1.0, dtype);
            let v_pool = rng.tensor(&[num_blocks, kvh, BLOCK_TOKENS, dim], 1.0, dtype);
            let q = rng.tensor(&[lens.len(), heads, dim], 1.0, dtype);
            let tab_t = Tensor::from_vec(tab.clone(), (lens.len(), max_blocks), &Device::Cpu).unwrap();
            let lens_t =
                Tensor::from_vec(lens.iter().map(|&l| l as u32).collect::<Vec<_>>(), lens.len(), &Device::Cpu).unwrap();
            let scale = 1.0 / (dim as f32).sqrt();
            // Write each sequence's last token through the kernel on both devices.
            let new_k = rng.tensor(&[lens.len(), kvh, dim], 1.0, dtype);
            let slots: Vec<u32> = lens
                .iter()
                .enumerate()
                .map(|(b, &l)| {
                    tab[b * max_blocks + (l - 1) / BLOCK_TOKENS] * BLOCK_TOKENS as u32 + ((l - 1) % BLOCK_TOKENS) as u32
                })
                .collect();
            let slots = Tensor::from_vec(slots, lens.len(), &Device::Cpu).unwrap();
            let (kc, kg) = (k_pool.copy().unwrap(), to_gpu(&k_pool));
            write_paged(&kc, &new_k, &slots).unwrap();
            write_paged(&kg, &to_gpu(&new_k), &to_gpu(&slots)).unwrap();
            assert_eq!(values(&kg), values(&kc), "write_paged {dtype:?}");
            let want = paged_attention_mha(&q, &kc, &v_pool, &tab_t, &lens_t, scale).unwrap();
            let got = paged_attention_mha(&to_gpu(&q), &kg, &to_gpu(&v_pool), &to_gpu(&tab_t), &to_gpu(&lens_t), scale)
                .unwrap();
            assert_close(&format!("paged_mha {dtype:?} h{heads}/{kvh} d{dim}"), &got, &want, tol(dtype));
        }
    }
}

#[test]
fn paged_mla_matches_reference() {
    let mut rng = Rng::fresh("paged_mla");
    for dtype in [DType::F32, DType::BF16] {
        for (heads, rank, rope_dim) in [(16, 512, 64), (5, 96, 32), (1, 33, 8)] {
            let lens = [2usize, 16, 333, 1000];
            let num_blocks = lens.iter().map(|l| l.div_ceil(BLOCK_TOKENS)).sum::<usize>() + 1;
            let (tab, max_blocks) = tables(&mut rng, &lens, num_blocks);
            let lat = rng.tensor(&[num_blocks, BLOCK_TOKENS, rank], 1.0, dtype);
            let kpe = rng.tensor(&[num_blocks, BLOCK_TOKENS, rope_dim], 1.0, dtype);
            let qa = rng.tensor(&[lens.len(), heads, rank], 0.2, dtype);
            let qp = rng.tensor(&[lens.len(), heads, rope_dim], 0.5, dtype);
            let tab_t = Tensor::from_vec(tab, (lens.len(), max_blocks), &Device::Cpu).unwrap();
            let lens_t =
                Tensor::from_vec(lens.iter().map(|&l| l as u32).collect::<Vec<_>>(), lens.len(), &Device::Cpu).unwrap();
            let scale = 0.07;
            let new = rng.tensor(&[3, rank], 1.0, dtype);
            let slots = Tensor::new(&[0u32, 17, (num_blocks * BLOCK_TOKENS - 1) as u32], &Device::Cpu).unwrap();
            let (lc, lg) = (lat.copy().unwrap(), to_gpu(&lat));
            write_paged(&lc, &new, &slots).unwrap();
            write_paged(&lg, &to_gpu(&new), &to_gpu(&slots)).unwrap();
            assert_eq!(values(&lg), values(&lc), "write_paged mla {dtype:?}");
            let want = paged_attention_mla(&qa, &qp, &lc, &kpe, &tab_t, &lens_t, scale).unwrap();
            let got = paged_attention_mla(
                &to_gpu(&qa),
                &to_gpu(&qp),
                &lg,
                &to_gpu(&kpe),
                &to_gpu(&tab_t),
                &to_gpu(&lens_t),
                scale,
            )
            .unwrap();
            assert_close(&format!("paged_mla {dtype:?} h{heads} r{rank}"), &got, &want, tol(dtype));
        }
    }
}
