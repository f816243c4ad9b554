//! CLIP-L/14 of DeepSeek-OCR (`model.vision_model.*`, official `clip_sdpa.py`), fed with SAM
//! features instead of its own patch embeddings.
//!
//! Tokens = [CLS ; SAM features (row-major)] + position table (the 16×16 part resized with
//! antialiased bicubic in f32 when the grid differs; the CLS row is kept) → `pre_layrnorm` →
//! pre-LN blocks (fused qkv, full attention, quick-GELU MLP) → no post-norm. The output keeps
//! the CLS token at index 0; the caller drops it.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, VarBuilder};
use docseek_kernels::cpu::vmath::Activation;
use docseek_kernels::linear::Linear;

use crate::attention::sdpa;
use crate::config::ClipConfig;
use crate::error::{Result, VisionError};
use crate::interp::resize_bicubic_aa;
use crate::linear::linear;

/// Input channels of the (unused) patch embedding conv.
const IN_CHANS: usize = 3;

/// Official tensor names and shapes of the CLIP part.
pub fn tensor_specs(c: &ClipConfig, prefix: &str) -> Vec<(String, Vec<usize>)> {
    let w = c.width;
    let mut v = vec![
        (format!("{prefix}.embeddings.class_embedding"), vec![w]),
        (format!("{prefix}.embeddings.patch_embedding.weight"), vec![w, IN_CHANS, c.patch_size, c.patch_size]),
        (format!("{prefix}.embeddings.position_embedding.weight"), vec![c.num_positions(), w]),
        (format!("{prefix}.pre_layrnorm.weight"), vec![w]),
        (format!("{prefix}.pre_layrnorm.bias"), vec![w]),
    ];
    for i in 0..c.layers {
        let l = format!("{prefix}.transformer.layers.{i}");
        for n in ["layer_norm1", "layer_norm2"] {
            v.push((format!("{l}.{n}.weight"), vec![w]));
            v.push((format!("{l}.{n}.bias"), vec![w]));
        }
        v.push((format!("{l}.self_attn.qkv_proj.weight"), vec![3 * w, w]));
        v.push((format!("{l}.self_attn.qkv_proj.bias"), vec![3 * w]));
        v.push((format!("{l}.self_attn.out_proj.weight"), vec![w, w]));
        v.push((format!("{l}.self_attn.out_proj.bias"), vec![w]));
        v.push((format!("{l}.mlp.fc1.weight"), vec![c.ffn_hidden_size, w]));
        v.push((format!("{l}.mlp.fc1.bias"), vec![c.ffn_hidden_size]));
        v.push((format!("{l}.mlp.fc2.weight"), vec![w, c.ffn_hidden_size]));
        v.push((format!("{l}.mlp.fc2.bias"), vec![w]));
    }
    v
}

fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    Ok((x * candle_nn::ops::sigmoid(&(x * 1.702)?)?)?)
}

struct ClipLayer {
    ln1: LayerNorm,
    qkv: Linear,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl ClipLayer {
    fn load(c: &ClipConfig, vb: VarBuilder) -> Result<Self> {
        let w = c.width;
        let eps = c.layernorm_epsilon;
        Ok(Self {
            ln1: candle_nn::layer_norm(w, eps, vb.pp("layer_norm1"))?,
            qkv: linear(w, 3 * w, vb.pp("self_attn.qkv_proj"))?,
            out: linear(w, w, vb.pp("self_attn.out_proj"))?,
            ln2: candle_nn::layer_norm(w, eps, vb.pp("layer_norm2"))?,
            fc1: linear(w, c.ffn_hidden_size, vb.pp("mlp.fc1"))?,
            fc2: linear(c.ffn_hidden_size, w, vb.pp("mlp.fc2"))?,
            heads: c.heads,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, w) = x.dims3()?;
        let (nh, hd) = (self.heads, w / self.heads);
        let qkv = self.qkv.forward(&self.ln1.forward(x)?)?.reshape((b, l, 3, nh, hd))?.permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.reshape((b * nh, l, hd))?;
        let k = qkv.get(1)?.reshape((b * nh, l, hd))?;
        let v = qkv.get(2)?.reshape((b * nh, l, hd))?;
        let a = sdpa(&q, &k, &v, None, 1.0 / (hd as f64).sqrt())?;
        let a = a.reshape((b, nh, l, hd))?.transpose(1, 2)?.reshape((b, l, w))?;
        let x = self.out.forward_residual(&a, x)?;
        let xn = self.ln2.forward(&x)?;
        let hidden = if self.fc1.is_kernel() {
            self.fc1.forward_act(&xn, Activation::QuickGelu)?
        } else {
            quick_gelu(&self.fc1.forward(&xn)?)?
        };
        Ok(self.fc2.forward_residual(&hidden, &x)?)
    }
}

/// The CLIP-L tower consuming SAM features.
pub struct ClipEncoder {
    cfg: ClipConfig,
    class_embedding: Tensor,
    positions: Tensor,
    positions_f32: Vec<f32>,
    pos_cache: Mutex<HashMap<usize, Tensor>>,
    pre_ln: LayerNorm,
    layers: Vec<ClipLayer>,
}

impl ClipEncoder {
    /// Loads from `vb` at the `model.vision_model` prefix. The unused patch-embedding conv is
    /// not read.
    pub fn load(cfg: &ClipConfig, vb: VarBuilder) -> Result<Self> {
        let w = cfg.width;
        let positions = vb.get((cfg.num_positions(), w), "embeddings.position_embedding.weight")?;
        Ok(Self {
            cfg: cfg.clone(),
            class_embedding: vb.get(w, "embeddings.class_embedding")?,
            positions_f32: positions.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            positions,
            pos_cache: Mutex::new(HashMap::new()),
            pre_ln: candle_nn::layer_norm(w, cfg.layernorm_epsilon, vb.pp("pre_layrnorm"))?,
            layers: (0..cfg.layers)
                .map(|i| ClipLayer::load(cfg, vb.pp("transformer.layers").pp(i)))
                .collect::<Result<Vec<_>>>()?,
        })
    }

    /// The `[1 + grid², W]` position table for a `grid`×`grid` token grid (`get_abs_pos`).
    pub fn positions_for(&self, grid: usize) -> Result<Tensor> {
        let g = self.cfg.pos_grid();
        if grid == g {
            return Ok(self.positions.clone());
        }
        if let Some(t) = self.pos_cache.lock().expect("cache lock").get(&grid) {
            return Ok(t.clone());
        }
        let w = self.cfg.width;
        let cpu = Device::Cpu;
        let patch = Tensor::from_slice(&self.positions_f32[w..], (g, g, w), &cpu)?
            .permute((2, 0, 1))?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let out = resize_bicubic_aa(&patch, w, g, g, grid, grid);
        let patch = Tensor::from_vec(out, (w, grid * grid), &cpu)?.t()?;
        let cls = Tensor::from_slice(&self.positions_f32[..w], (1, w), &cpu)?;
        let t = Tensor::cat(&[&cls, &patch], 0)?
            .contiguous()?
            .to_device(self.positions.device())?
            .to_dtype(self.positions.dtype())?;
        self.pos_cache.lock().expect("cache lock").insert(grid, t.clone());
        Ok(t)
    }

    /// `sam: [B, W, g, g]` → `[B, 1 + g², W]` (CLS first, no post-norm).
    pub fn forward(&self, sam: &Tensor) -> Result<Tensor> {
        let (b, c, gh, gw) = sam.dims4()?;
        if c != self.cfg.width || gh != gw {
            return Err(VisionError::Config(format!(
                "CLIP width {} cannot consume SAM features {:?}",
                self.cfg.width,
                sam.dims()
            )));
        }
        let patches = sam.flatten_from(2)?.transpose(1, 2)?;
        let cls = self.class_embedding.reshape((1, 1, c))?.broadcast_as((b, 1, c))?;
        let x = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.positions_for(gh)?.unsqueeze(0)?)?;
        let mut x = self.pre_ln.forward(&x.contiguous()?)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }
}
