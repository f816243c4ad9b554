//! The Qwen2-style encoder of DeepSeek-OCR-2 (`model.qwen2_model.*`, official
//! `deepencoderv2.py` / `qwen2_d2e.py`): a Qwen2 decoder stack used as an encoder over
//! `[SAM tokens (n) ; learned queries (n)]`.
//!
//! Layers: RMSNorm → GQA attention (q/k/v with bias, o without, NeoX RoPE with θ from the
//! config, positions `0..2n`) → residual → RMSNorm → SwiGLU → residual; final RMSNorm. Mask:
//! SAM tokens attend to all SAM tokens and no query; query `i` attends to all SAM tokens and
//! queries `0..=i`. The output is the `n` query positions. The query table is chosen by token
//! count (`query_768` for 768-px tiles, `query_1024` for 1024-px views).

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{RmsNorm, VarBuilder};
use docseek_kernels::linear::Linear;
use docseek_kernels::moe_op::{swiglu, SwiGlu};

use crate::attention::{sdpa, Bias};
use crate::config::{Qwen2EncoderConfig, SamConfig};
use crate::error::{Result, VisionError};
use crate::linear::{linear, linear_no_bias};

/// View sides the official model has learned query tables for, with their tensor names.
pub const QUERY_TABLES: [(usize, &str); 2] = [(768, "query_768"), (1024, "query_1024")];

/// Official tensor names and shapes of the Qwen2 encoder (prefix `model.qwen2_model`).
pub fn tensor_specs(c: &Qwen2EncoderConfig, sam: &SamConfig, prefix: &str) -> Vec<(String, Vec<usize>)> {
    let (d, hd) = (c.dim, c.head_dim());
    let kv = c.kv_heads * hd;
    let mut v = Vec::new();
    for (side, name) in QUERY_TABLES {
        let g = sam.out_grid(side);
        v.push((format!("{prefix}.{name}.weight"), vec![g * g, d]));
    }
    for i in 0..c.layers {
        let l = format!("{prefix}.model.model.layers.{i}");
        v.push((format!("{l}.input_layernorm.weight"), vec![d]));
        v.push((format!("{l}.post_attention_layernorm.weight"), vec![d]));
        v.push((format!("{l}.self_attn.q_proj.weight"), vec![c.heads * hd, d]));
        v.push((format!("{l}.self_attn.q_proj.bias"), vec![c.heads * hd]));
        v.push((format!("{l}.self_attn.k_proj.weight"), vec![kv, d]));
        v.push((format!("{l}.self_attn.k_proj.bias"), vec![kv]));
        v.push((format!("{l}.self_attn.v_proj.weight"), vec![kv, d]));
        v.push((format!("{l}.self_attn.v_proj.bias"), vec![kv]));
        v.push((format!("{l}.self_attn.o_proj.weight"), vec![d, c.heads * hd]));
        v.push((format!("{l}.mlp.gate_proj.weight"), vec![c.intermediate_size, d]));
        v.push((format!("{l}.mlp.up_proj.weight"), vec![c.intermediate_size, d]));
        v.push((format!("{l}.mlp.down_proj.weight"), vec![d, c.intermediate_size]));
    }
    v.push((format!("{prefix}.model.model.norm.weight"), vec![d]));
    v
}

struct Qwen2Layer {
    ln1: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln2: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// RMSNorm (candle accumulates in f32 for half types, as transformers' `Qwen2RMSNorm`).
fn rms_norm(norm: &RmsNorm, x: &Tensor) -> Result<Tensor> {
    Ok(norm.forward(x)?)
}

/// The encoder with its learned query tables.
pub struct Qwen2Encoder {
    cfg: Qwen2EncoderConfig,
    queries: Vec<Tensor>,
    layers: Vec<Qwen2Layer>,
    norm: RmsNorm,
}

impl Qwen2Encoder {
    /// Loads from `vb` at the `model.qwen2_model` prefix.
    pub fn load(cfg: &Qwen2EncoderConfig, vb: VarBuilder) -> Result<Self> {
        let (d, hd) = (cfg.dim, cfg.head_dim());
        let kv = cfg.kv_heads * hd;
        let eps = cfg.rms_norm_eps;
        let mut queries = Vec::new();
        for (_, name) in QUERY_TABLES {
            let t = vb.pp(name).get_unchecked("weight")?;
            if t.rank() != 2 || t.dim(1)? != d {
                return Err(VisionError::Config(format!("{name} has shape {:?}, want [_, {d}]", t.dims())));
            }
            queries.push(t);
        }
        let lvb = vb.pp("model.model");
        let layers = (0..cfg.layers)
            .map(|i| {
                let l = lvb.pp("layers").pp(i);
                let a = l.pp("self_attn");
                let m = l.pp("mlp");
                Ok(Qwen2Layer {
                    ln1: candle_nn::rms_norm(d, eps, l.pp("input_layernorm"))?,
                    q: linear(d, cfg.heads * hd, a.pp("q_proj"))?,
                    k: linear(d, kv, a.pp("k_proj"))?,
                    v: linear(d, kv, a.pp("v_proj"))?,
                    o: linear_no_bias(cfg.heads * hd, d, a.pp("o_proj"))?,
                    ln2: candle_nn::rms_norm(d, eps, l.pp("post_attention_layernorm"))?,
                    gate: linear_no_bias(d, cfg.intermediate_size, m.pp("gate_proj"))?,
                    up: linear_no_bias(d, cfg.intermediate_size, m.pp("up_proj"))?,
                    down: linear_no_bias(cfg.intermediate_size, d, m.pp("down_proj"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { cfg: cfg.clone(), queries, layers, norm: candle_nn::rms_norm(d, eps, lvb.pp("norm"))? })
    }

    /// Whether a view producing `n` SAM tokens has a query table.
    pub fn supports_tokens(&self, n: usize) -> bool {
        self.queries.iter().any(|q| q.dim(0).ok() == Some(n))
    }

    /// `cos, sin: [L, head_dim]` of NeoX RoPE for positions `0..len`, computed in f32.
    fn rope(&self, len: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let hd = self.cfg.head_dim();
        let inv: Vec<f32> =
            (0..hd / 2).map(|i| 1.0 / (self.cfg.rope_theta as f32).powf((2 * i) as f32 / hd as f32)).collect();
        let mut freqs = Vec::with_capacity(len * hd);
        for p in 0..len {
            for _ in 0..2 {
                freqs.extend(inv.iter().map(|f| p as f32 * f));
            }
        }
        let f = Tensor::from_vec(freqs, (len, hd), device)?;
        Ok((f.cos()?, f.sin()?))
    }

    /// The custom mask as an additive `[1, 2n, 2n]` bias.
    fn mask(n: usize, device: &Device) -> Result<Tensor> {
        let l = 2 * n;
        let mut m = vec![f32::NEG_INFINITY; l * l];
        for i in 0..l {
            for j in 0..l {
                let allowed = if i < n { j < n } else { j < n || j <= i };
                if allowed {
                    m[i * l + j] = 0.0;
                }
            }
        }
        Ok(Tensor::from_vec(m, (1, l, l), device)?)
    }

    /// `sam: [B, dim, g, g]` → query outputs `[B, g², dim]` after the final norm.
    pub fn forward(&self, sam: &Tensor) -> Result<Tensor> {
        let (b, c, gh, gw) = sam.dims4()?;
        let n = gh * gw;
        let d = self.cfg.dim;
        if c != d {
            return Err(VisionError::Config(format!("encoder dim {d} cannot consume SAM features {:?}", sam.dims())));
        }
        let query = self.queries.iter().find(|q| q.dim(0).ok() == Some(n)).ok_or_else(|| {
            VisionError::Unsupported(format!("no learned query table for {n} tokens ({gh}x{gw} grid)"))
        })?;
        let x = sam.flatten_from(2)?.transpose(1, 2)?;
        let q = query.unsqueeze(0)?.broadcast_as((b, n, d))?.to_dtype(x.dtype())?;
        let mut h = Tensor::cat(&[&x, &q], 1)?.contiguous()?;
        let l = 2 * n;
        let (cos, sin) = self.rope(l, h.device())?;
        let mask = Self::mask(n, h.device())?;
        let (nh, nkv, hd) = (self.cfg.heads, self.cfg.kv_heads, self.cfg.head_dim());
        for layer in &self.layers {
            let xn = rms_norm(&layer.ln1, &h)?;
            let split = |t: Tensor, heads: usize| -> Result<Tensor> {
                Ok(t.reshape((b, l, heads, hd))?.transpose(1, 2)?.contiguous()?)
            };
            let qh = apply_rope(&split(layer.q.forward(&xn)?, nh)?, &cos, &sin)?;
            let kh = apply_rope(&split(layer.k.forward(&xn)?, nkv)?, &cos, &sin)?;
            let vh = split(layer.v.forward(&xn)?, nkv)?;
            let rep = nh / nkv;
            let expand = |t: Tensor| -> Result<Tensor> {
                Ok(t.unsqueeze(2)?.broadcast_as((b, nkv, rep, l, hd))?.reshape((b * nh, l, hd))?)
            };
            let a = sdpa(
                &qh.reshape((b * nh, l, hd))?,
                &expand(kh)?,
                &expand(vh)?,
                Some(Bias::Full(&mask)),
                1.0 / (hd as f64).sqrt(),
            )?;
            let a = a.reshape((b, nh, l, hd))?.transpose(1, 2)?.reshape((b, l, nh * hd))?;
            h = (h + layer.o.forward(&a)?)?;
            let xn = rms_norm(&layer.ln2, &h)?;
            let mlp = SwiGlu { gate: &layer.gate, up: &layer.up, down: &layer.down };
            let m = if mlp.is_kernel() {
                swiglu(&xn.reshape((b * l, d))?, &mlp)?.reshape((b, l, d))?
            } else {
                layer.down.forward(&(layer.gate.forward(&xn)?.silu()? * layer.up.forward(&xn)?)?)?
            };
            h = (h + m)?;
        }
        let h = rms_norm(&self.norm, &h)?;
        Ok(h.narrow(1, n, n)?.contiguous()?)
    }
}

/// NeoX rotary embedding: `x·cos + rotate_half(x)·sin` on `[B, H, L, hd]`, in f32.
fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let hd = xf.dim(D::Minus1)?;
    let x1 = xf.narrow(D::Minus1, 0, hd / 2)?;
    let x2 = xf.narrow(D::Minus1, hd / 2, hd / 2)?;
    let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    let y = (xf.broadcast_mul(cos)? + rot.broadcast_mul(sin)?)?;
    Ok(y.to_dtype(dtype)?)
}
