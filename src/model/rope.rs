//! Rotary position embeddings of the two attention paths.
//!
//! - MHA (`use_mla: false`): transformers' `LlamaRotaryEmbedding` + `rotate_half` (NeoX
//!   layout) over the full head dim.
//! - MLA: `DeepseekV2RotaryEmbedding` / `DeepseekV2YarnRotaryEmbedding` over the
//!   `qk_rope_head_dim` part. The reference de-interleaves the pair layout
//!   (`view(d/2, 2).transpose`) and then applies `rotate_half`; rotating the pairs in place
//!   (candle's `rope_i`) gives the same values in a permuted order, and since q and k are
//!   permuted alike their dot products are the same.
//!
//! Tables are computed per call for the positions in use, with the product `t * inv_freq` in
//! f32 as the reference does, so long positions round the same way.

use candle_core::{DType, Device, Result, Tensor};

use super::config::{DeepseekV2Config, RopeScaling};

/// Pair layout of the rotated dims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// First half / second half (`rotate_half`).
    Neox,
    /// Adjacent pairs (the MLA de-interleave + `rotate_half`).
    Interleaved,
}

/// Inverse frequencies and the cos/sin scale of one attention path.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    inv_freq: Vec<f32>,
    /// Divides positions (linear scaling).
    position_scale: f32,
    /// Multiplies cos and sin (YaRN `mscale / mscale_all_dim`).
    cos_sin_scale: f32,
    layout: RopeLayout,
}

/// YaRN's attention-scale helper (`yarn_get_mscale`).
pub fn yarn_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

fn yarn_correction_dim(rotations: f64, dim: usize, base: f64, max_pos: usize) -> f64 {
    (dim as f64 * (max_pos as f64 / (rotations * 2.0 * std::f64::consts::PI)).ln()) / (2.0 * base.ln())
}

/// `base^(i/dim)` for even `i`, rounded to f32 as the reference's f32 `pow` gives it.
fn base_powers(dim: usize, base: f64) -> Vec<f32> {
    (0..dim)
        .step_by(2)
        .map(|i| {
            let exponent = (i as f32) / (dim as f32);
            base.powf(exponent as f64) as f32
        })
        .collect()
}

fn default_inv_freq(dim: usize, base: f64) -> Vec<f32> {
    base_powers(dim, base).into_iter().map(|p| 1.0f32 / p).collect()
}

impl RotaryEmbedding {
    /// The MHA path: NeoX rotation over `hidden_size / num_heads` dims.
    pub fn for_mha(cfg: &DeepseekV2Config) -> Self {
        let position_scale = match &cfg.rope_scaling {
            Some(s) if s.kind == "linear" => s.factor as f32,
            _ => 1.0,
        };
        RotaryEmbedding {
            inv_freq: default_inv_freq(cfg.mha_head_dim(), cfg.rope_theta),
            position_scale,
            cos_sin_scale: 1.0,
            layout: RopeLayout::Neox,
        }
    }

    /// The MLA path: interleaved rotation over `qk_rope_head_dim`, YaRN when configured.
    pub fn for_mla(cfg: &DeepseekV2Config) -> Self {
        let dim = cfg.qk_rope_head_dim;
        let base = cfg.rope_theta;
        match &cfg.rope_scaling {
            Some(s) if s.kind == "yarn" => Self::yarn(dim, base, s),
            Some(s) if s.kind == "linear" => RotaryEmbedding {
                inv_freq: default_inv_freq(dim, base),
                position_scale: s.factor as f32,
                cos_sin_scale: 1.0,
                layout: RopeLayout::Interleaved,
            },
            _ => RotaryEmbedding {
                inv_freq: default_inv_freq(dim, base),
                position_scale: 1.0,
                cos_sin_scale: 1.0,
                layout: RopeLayout::Interleaved,
            },
        }
    }

    fn yarn(dim: usize, base: f64, s: &RopeScaling) -> Self {
        let powers = base_powers(dim, base);
        let low = yarn_correction_dim(s.beta_fast, dim, base, s.original_max_position_embeddings).floor();
        let high = yarn_correction_dim(s.beta_slow, dim, base, s.original_max_position_embeddings).ceil();
        let (low, high) = (low.max(0.0), high.min(dim as f64 - 1.0));
        let high = if low == high { high + 0.001 } else { high };
        let inv_freq = powers
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let fe = 1.0f32 / p;
                let fi = 1.0f32 / ((s.factor as f32) * p);
                let ramp = ((i as f32 - low as f32) / (high as f32 - low as f32)).clamp(0.0, 1.0);
                let mask = 1.0 - ramp;
                fi * (1.0 - mask) + fe * mask
            })
            .collect();
        let cos_sin_scale = (yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim)) as f32;
        RotaryEmbedding { inv_freq, position_scale: 1.0, cos_sin_scale, layout: RopeLayout::Interleaved }
    }

    /// Pair layout.
    pub fn layout(&self) -> RopeLayout {
        self.layout
    }

    /// `(cos, sin)` tables `[len, dim/2]` for positions `start..start+len`, in `dtype`.
    pub fn tables(&self, start: usize, len: usize, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let positions: Vec<usize> = (start..start + len).collect();
        self.tables_at(&positions, dtype, device)
    }

    /// `(cos, sin)` tables `[positions.len(), dim/2]` for arbitrary positions (one row per
    /// token of a batch of sequences), in `dtype`.
    pub fn tables_at(&self, positions: &[usize], dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let len = positions.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for &p in positions {
            let t = p as f32 / self.position_scale;
            for &f in &self.inv_freq {
                let angle = (t * f) as f64;
                cos.push((angle.cos() as f32) * self.cos_sin_scale);
                sin.push((angle.sin() as f32) * self.cos_sin_scale);
            }
        }
        let cos = Tensor::from_vec(cos, (len, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (len, half), device)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }

    /// Rotates `x` `[heads, len, dim]` (contiguous) with tables from [`Self::tables`].
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let x4 = x.unsqueeze(0)?.contiguous()?;
        let y = match self.layout {
            RopeLayout::Neox => candle_nn::rotary_emb::rope(&x4, cos, sin)?,
            RopeLayout::Interleaved => candle_nn::rotary_emb::rope_i(&x4, cos, sin)?,
        };
        y.squeeze(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yarn_matches_reference_values() {
        // mla-tiny's scaling: factor 40, mscale = mscale_all_dim = 0.707 -> cos/sin scale 1.
        let s = RopeScaling {
            kind: "yarn".into(),
            factor: 40.0,
            original_max_position_embeddings: 4096,
            beta_fast: 32.0,
            beta_slow: 1.0,
            mscale: 0.707,
            mscale_all_dim: 0.707,
        };
        let r = RotaryEmbedding::yarn(8, 10000.0, &s);
        assert!((r.cos_sin_scale - 1.0).abs() < 1e-7);
        // The highest frequency is extrapolated (unchanged), the lowest interpolated (/40).
        assert_eq!(r.inv_freq[0], 1.0);
        let base_low = default_inv_freq(8, 10000.0)[3];
        assert!((r.inv_freq[3] - base_low / 40.0).abs() < 1e-9);
        assert!((yarn_mscale(40.0, 0.707) - (0.1 * 0.707 * 40f64.ln() + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn interleaved_rotation_preserves_dot_products_of_neox_after_deinterleave() {
        // Rotating adjacent pairs equals de-interleave + rotate_half up to a permutation.
        let dev = Device::Cpu;
        let cfg = DeepseekV2Config::from_json(r#"{"qk_rope_head_dim":4}"#).unwrap();
        let r = RotaryEmbedding::for_mla(&cfg);
        let (cos, sin) = r.tables(3, 1, DType::F32, &dev).unwrap();
        let x = Tensor::new(&[[[1f32, 2., 3., 4.]]], &dev).unwrap();
        let y: Vec<f32> = r.apply(&x, &cos, &sin).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let c: Vec<f32> = cos.flatten_all().unwrap().to_vec1().unwrap();
        let s: Vec<f32> = sin.flatten_all().unwrap().to_vec1().unwrap();
        let expect = [1. * c[0] - 2. * s[0], 2. * c[0] + 1. * s[0], 3. * c[1] - 4. * s[1], 4. * c[1] + 3. * s[1]];
        for (a, b) in y.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
