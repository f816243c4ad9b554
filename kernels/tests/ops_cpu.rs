//! The device-generic ops on the CPU (their reference path) against candle's own ops, which the
//! decoder's generic path uses: same rotary layouts, same RMSNorm, paged attention equal to
//! dense attention over the same keys, FP8 matmul equal to a matmul of the dequantised weight.

mod common;

use candle_core::{DType, Device, Tensor, D};
use common::{assert_close, Rng};
use docseek_kernels::ops::attention::{paged_attention_mha, paged_attention_mla, write_paged, BLOCK_TOKENS};
use docseek_kernels::ops::fp8::{fp8_matmul, Fp8Matrix};
use docseek_kernels::ops::norm::{add_rms_norm, rms_norm, silu_mul};
use docseek_kernels::ops::rope::{rope, RopeStyle};

#[test]
fn rms_norm_matches_candle() {
    let mut rng = Rng::fresh("cpu rms_norm");
    let x = rng.tensor(&[7, 96], 1.0, DType::F32);
    let w = (rng.tensor(&[96], 0.1, DType::F32) + 1.0).unwrap();
    let want = candle_nn::ops::rms_norm(&x, &w, 1e-6).unwrap();
    assert_close("rms_norm f32", &rms_norm(&x, &w, 1e-6).unwrap(), &want, 1e-6);
    let r = rng.tensor(&[7, 96], 1.0, DType::F32);
    let (h, y) = add_rms_norm(&x, &r, &w, 1e-6).unwrap();
    assert_close("residual", &h, &(&x + &r).unwrap(), 0.0);
    assert_close("add_rms_norm", &y, &candle_nn::ops::rms_norm(&h, &w, 1e-6).unwrap(), 1e-6);
}

#[test]
fn silu_mul_matches_candle() {
    let mut rng = Rng::fresh("cpu silu_mul");
    let gu = rng.tensor(&[5, 2 * 33], 2.0, DType::F32);
    let g = gu.narrow(D::Minus1, 0, 33).unwrap();
    let u = gu.narrow(D::Minus1, 33, 33).unwrap();
    let want = (candle_nn::ops::silu(&g).unwrap() * u).unwrap();
    assert_close("silu_mul", &silu_mul(&gu).unwrap(), &want, 1e-6);
}

#[test]
fn rope_layouts_match_candle_rope_and_rope_i() {
    let mut rng = Rng::fresh("cpu rope");
    let (tokens, heads, dim, start) = (6, 3, 16, 11);
    let x = rng.tensor(&[tokens, heads, dim], 1.0, DType::F32);
    let rows = start + tokens;
    let cos = rng.tensor(&[rows, dim / 2], 1.0, DType::F32);
    let sin = rng.tensor(&[rows, dim / 2], 1.0, DType::F32);
    let pos: Vec<u32> = (start as u32..rows as u32).collect();
    let pos = Tensor::new(pos.as_slice(), &Device::Cpu).unwrap();
    // candle's layout: [batch, heads, tokens, dim] with tables of the positions in use.
    let x4 = x.transpose(0, 1).unwrap().unsqueeze(0).unwrap().contiguous().unwrap();
    let (c, s) = (cos.narrow(0, start, tokens).unwrap(), sin.narrow(0, start, tokens).unwrap());
    for (style, want) in [
        (RopeStyle::Neox, candle_nn::rotary_emb::rope(&x4, &c, &s).unwrap()),
        (RopeStyle::Interleaved, candle_nn::rotary_emb::rope_i(&x4, &c, &s).unwrap()),
    ] {
        let want = want.squeeze(0).unwrap().transpose(0, 1).unwrap();
        assert_close(&format!("rope {style:?}"), &rope(&x, &pos, &cos, &sin, style).unwrap(), &want, 1e-6);
    }
}

/// Dense softmax(q k^T * scale) v per head over `[tokens, dim]` keys and values.
fn dense_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Tensor {
    let s = (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap();
    candle_nn::ops::softmax_last_dim(&s).unwrap().matmul(v).unwrap()
}

#[test]
fn paged_mha_equals_dense_attention_over_the_same_tokens() {
    let mut rng = Rng::fresh("cpu paged_mha");
    let (heads, kvh, dim, len) = (4usize, 2usize, 8usize, 37usize);
    let blocks = len.div_ceil(BLOCK_TOKENS) + 2;
    // Sequence blocks in a scrambled order inside the pool.
    let table: Vec<u32> = (0..len.div_ceil(BLOCK_TOKENS) as u32).map(|b| (b * 2 + 1) % blocks as u32).collect();
    let k = rng.tensor(&[len, kvh, dim], 1.0, DType::F32);
    let v = rng.tensor(&[len, kvh, dim], 1.0, DType::F32);
    let k_pool = Tensor::zeros((blocks, kvh, BLOCK_TOKENS, dim), DType::F32, &Device::Cpu).unwrap();
    let v_pool = k_pool.zeros_like().unwrap();
    let slots: Vec<u32> =
        (0..len).map(|t| table[t / BLOCK_TOKENS] * BLOCK_TOKENS as u32 + (t % BLOCK_TOKENS) as u32).collect();
    let slots = Tensor::new(slots.as_slice(), &Device::Cpu).unwrap();
    write_paged(&k_pool, &k, &slots).unwrap();
    write_paged(&v_pool, &v, &slots).unwrap();
    let q = rng.tensor(&[1, heads, dim], 1.0, DType::F32);
    let tables = Tensor::from_vec(table.clone(), (1, table.len()), &Device::Cpu).unwrap();
    let lens = Tensor::new(&[len as u32], &Device::Cpu).unwrap();
    let scale = 1.0 / (dim as f64).sqrt();
    let got = paged_attention_mha(&q, &k_pool, &v_pool, &tables, &lens, scale as f32).unwrap();
    for h in 0..heads {
        let g = h / (heads / kvh);
        let qh = q.narrow(1, h, 1).unwrap().squeeze(0).unwrap();
        let kg = k.narrow(1, g, 1).unwrap().squeeze(1).unwrap();
        let vg = v.narrow(1, g, 1).unwrap().squeeze(1).unwrap();
        let want = dense_attention(&qh, &kg, &vg, scale);
        assert_close(&format!("paged_mha head {h}"), &got.narrow(1, h, 1).unwrap().squeeze(0).unwrap(), &want, 1e-5);
    }
}

#[test]
fn paged_mla_equals_dense_latent_attention() {
    let mut rng = Rng::fresh("cpu paged_mla");
    let (heads, rank, rope_dim, len) = (3usize, 12usize, 4usize, 20usize);
    let blocks = 3;
    let table = [2u32, 0];
    let lat = rng.tensor(&[len, rank], 1.0, DType::F32);
    let kpe = rng.tensor(&[len, rope_dim], 1.0, DType::F32);
    let lat_pool = Tensor::zeros((blocks, BLOCK_TOKENS, rank), DType::F32, &Device::Cpu).unwrap();
    let kpe_pool = Tensor::zeros((blocks, BLOCK_TOKENS, rope_dim), DType::F32, &Device::Cpu).unwrap();
    let slots: Vec<u32> =
        (0..len).map(|t| table[t / BLOCK_TOKENS] * BLOCK_TOKENS as u32 + (t % BLOCK_TOKENS) as u32).collect();
    let slots = Tensor::new(slots.as_slice(), &Device::Cpu).unwrap();
    write_paged(&lat_pool, &lat, &slots).unwrap();
    write_paged(&kpe_pool, &kpe, &slots).unwrap();
    let qa = rng.tensor(&[1, heads, rank], 0.5, DType::F32);
    let qp = rng.tensor(&[1, heads, rope_dim], 0.5, DType::F32);
    let tables = Tensor::new(&[table], &Device::Cpu).unwrap();
    let lens = Tensor::new(&[len as u32], &Device::Cpu).unwrap();
    let got = paged_attention_mla(&qa, &qp, &lat_pool, &kpe_pool, &tables, &lens, 0.3).unwrap();
    // Dense: scores = (qa c^T + qp kpe^T) * scale, out = softmax(scores) c.
    let s = ((qa.squeeze(0).unwrap().matmul(&lat.t().unwrap()).unwrap()
        + qp.squeeze(0).unwrap().matmul(&kpe.t().unwrap()).unwrap())
    .unwrap()
        * 0.3)
        .unwrap();
    let want = candle_nn::ops::softmax_last_dim(&s).unwrap().matmul(&lat).unwrap();
    assert_close("paged_mla", &got.squeeze(0).unwrap(), &want, 1e-5);
}

#[test]
fn fp8_matmul_equals_matmul_of_the_dequantised_weight() {
    let mut rng = Rng::fresh("cpu fp8");
    let w = rng.tensor(&[70, 200], 0.1, DType::F32);
    let q = Fp8Matrix::quantize(&w).unwrap();
    let deq = q.dequantize().unwrap().squeeze(0).unwrap();
    let x = rng.tensor(&[9, 200], 1.0, DType::F32);
    let want = x.matmul(&deq.t().unwrap()).unwrap();
    assert_close("fp8_matmul", &fp8_matmul(&x, &q).unwrap(), &want, 1e-5);
    // The quantisation itself stays within e4m3's step of each block's scale.
    assert_close("fp8 dequantised weight", &deq, &w, 1.0 / 14.0);
}
