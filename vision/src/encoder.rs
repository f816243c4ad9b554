//! The public vision encoder: preprocessing → SAM → CLIP-L (OCR-1) or Qwen2 encoder (OCR-2)
//! → projector → the exact `image_embeds` sequence the decoder scatters into its `<image>` slots.
//!
//! Layouts (official `modeling_deepseekocr.py` / `modeling_deepseekocr2.py`):
//! - OCR-1: local tiles stitched into one `(h_t·g) × (w_t·g)` grid + an `image_newline` column,
//!   then the global `g × g` grid + newline column, then `view_seperator`; without tiles only
//!   the global part and the separator.
//! - OCR-2: the query outputs of every tile in tile order, then the global ones, then
//!   `view_seperator` (no newlines).

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use docseek_kernels::linear::Linear;
use image::RgbImage;

use crate::clip::{self, ClipEncoder};
use crate::config::{Architecture, VisionConfig};
use crate::error::{Result, VisionError};
use crate::mode::ModeSpec;
use crate::preprocess::{make_views, tile_grid, to_tensor, Views};
use crate::qwen2_encoder::{self, Qwen2Encoder};
use crate::sam::{self, SamEncoder};
use crate::tiling::TileGrid;

/// Prefix of the SAM tensors.
pub const SAM_PREFIX: &str = "model.sam_model";
/// Prefix of the CLIP tensors (OCR-1).
pub const CLIP_PREFIX: &str = "model.vision_model";
/// Prefix of the Qwen2 encoder tensors (OCR-2).
pub const QWEN2_PREFIX: &str = "model.qwen2_model";
/// Prefix of the projector.
pub const PROJECTOR_PREFIX: &str = "model.projector.layers";
/// The newline vector appended to each grid row (OCR-1).
pub const NEWLINE_NAME: &str = "model.image_newline";
/// The separator closing each image (the typo is the official name).
pub const SEPARATOR_NAME: &str = "model.view_seperator";

/// Every vision tensor of a checkpoint with its official name and shape (for writing random
/// or tiny checkpoints).
pub fn tensor_specs(cfg: &VisionConfig) -> Vec<(String, Vec<usize>)> {
    let mut v = sam::tensor_specs(&cfg.sam, SAM_PREFIX);
    if let Some(c) = &cfg.clip {
        v.extend(clip::tensor_specs(c, CLIP_PREFIX));
    }
    if let Some(q) = &cfg.qwen2 {
        v.extend(qwen2_encoder::tensor_specs(q, &cfg.sam, QWEN2_PREFIX));
    }
    let p = &cfg.projector;
    v.push((format!("{PROJECTOR_PREFIX}.weight"), vec![p.n_embed, p.input_dim]));
    v.push((format!("{PROJECTOR_PREFIX}.bias"), vec![p.n_embed]));
    if cfg.arch == Architecture::Ocr1 {
        v.push((NEWLINE_NAME.to_string(), vec![p.n_embed]));
    }
    v.push((SEPARATOR_NAME.to_string(), vec![p.n_embed]));
    v
}

/// Image slots (`<image>` tokens) an image of `width`×`height` takes in `spec`, without running
/// the model. OCR-1: `g·(g+1) + 1 [+ (w_t·t + 1)·(h_t·t)]`; OCR-2: `g² + 1 [+ n_tiles·t²]`.
pub fn slot_count(cfg: &VisionConfig, width: u32, height: u32, spec: &ModeSpec) -> usize {
    let g = cfg.sam.out_grid(spec.global_size() as usize);
    let t = cfg.sam.out_grid(spec.tile_size as usize);
    let grid = tile_grid(width, height, spec);
    match cfg.arch {
        Architecture::Ocr1 => {
            let local = grid.map_or(0, |gr| (gr.w as usize * t + 1) * (gr.h as usize * t));
            g * (g + 1) + 1 + local
        }
        Architecture::Ocr2 => g * g + 1 + grid.map_or(0, |gr| gr.count() as usize * t * t),
    }
}

/// Intermediate tensors of one encode (the fixtures' stage tensors).
#[derive(Debug, Clone)]
pub struct Stages {
    /// SAM output of the global view `[1, C, g, g]`.
    pub sam_global: Tensor,
    /// SAM output of the tiles `[n, C, t, t]`.
    pub sam_tiles: Option<Tensor>,
    /// CLIP output with CLS (OCR-1) or encoder query outputs (OCR-2), global view.
    pub feat_global: Tensor,
    /// Same for the tiles.
    pub feat_tiles: Option<Tensor>,
    /// Projector output of the global view `[1, g², D]`.
    pub proj_global: Tensor,
    /// Projector output of the tiles `[n, t², D]`.
    pub proj_tiles: Option<Tensor>,
    /// The full slot sequence `[slots, D]`.
    pub image_embeds: Tensor,
}

enum Tower {
    Clip(ClipEncoder),
    Qwen2(Qwen2Encoder),
}

/// A loaded DeepSeek-OCR or DeepSeek-OCR-2 vision encoder.
pub struct VisionEncoder {
    cfg: VisionConfig,
    sam: SamEncoder,
    tower: Tower,
    projector: Linear,
    newline: Option<Tensor>,
    separator: Tensor,
    device: Device,
    dtype: DType,
}

impl VisionEncoder {
    /// Loads from a checkpoint's `config.json` text and a `VarBuilder` rooted at the checkpoint
    /// (official names, e.g. `model.sam_model.pos_embed`). The architecture comes from the config.
    pub fn load(config_json: &str, vb: VarBuilder) -> Result<Self> {
        Self::from_config(&VisionConfig::from_json_str(config_json)?, vb)
    }

    /// Loads with an already parsed config.
    pub fn from_config(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let sam = SamEncoder::load(&cfg.sam, vb.pp(SAM_PREFIX))?;
        let tower = match (&cfg.clip, &cfg.qwen2) {
            (Some(c), _) => Tower::Clip(ClipEncoder::load(c, vb.pp(CLIP_PREFIX))?),
            (_, Some(q)) => Tower::Qwen2(Qwen2Encoder::load(q, vb.pp(QWEN2_PREFIX))?),
            _ => return Err(VisionError::Config("no encoder tower configured".into())),
        };
        let p = &cfg.projector;
        let projector = crate::linear::linear(p.input_dim, p.n_embed, vb.pp(PROJECTOR_PREFIX))?;
        let newline = match cfg.arch {
            Architecture::Ocr1 => Some(vb.get(p.n_embed, NEWLINE_NAME)?),
            Architecture::Ocr2 => None,
        };
        let separator = vb.get(p.n_embed, SEPARATOR_NAME)?;
        Ok(Self {
            cfg: cfg.clone(),
            sam,
            tower,
            projector,
            newline,
            separator,
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    /// The parsed vision config.
    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    /// The SAM part (for stage checks and OCR-2 reuse).
    pub fn sam(&self) -> &SamEncoder {
        &self.sam
    }

    /// The CLIP tower, when this is an OCR-1 encoder.
    pub fn clip(&self) -> Option<&ClipEncoder> {
        match &self.tower {
            Tower::Clip(c) => Some(c),
            Tower::Qwen2(_) => None,
        }
    }

    /// Compute dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Width of the emitted vectors (decoder hidden size).
    pub fn llm_dim(&self) -> usize {
        self.cfg.llm_dim()
    }

    /// See [`slot_count`].
    pub fn slot_count(&self, width: u32, height: u32, spec: &ModeSpec) -> usize {
        slot_count(&self.cfg, width, height, spec)
    }

    /// Checks this checkpoint can run `spec` (OCR-2 has query tables for two view sizes only).
    pub fn check_spec(&self, spec: &ModeSpec) -> Result<()> {
        spec.validate()?;
        if let Tower::Qwen2(q) = &self.tower {
            let sides = [spec.global_size(), spec.tile_size];
            let used = if spec.crop_mode { &sides[..] } else { &sides[..1] };
            for &s in used {
                let g = self.cfg.sam.out_grid(s as usize);
                if !q.supports_tokens(g * g) {
                    return Err(VisionError::Unsupported(format!(
                        "DeepSeek-OCR-2 has no learned queries for {s} px views (use gundam or base)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Image → `[slots, llm_dim]`, exactly the sequence written into the `<image>` slots.
    pub fn encode(&self, img: &RgbImage, spec: &ModeSpec) -> Result<Tensor> {
        self.check_spec(spec)?;
        let views = make_views(img, spec)?;
        Ok(self.encode_views(&views)?.image_embeds)
    }

    /// Runs the model on prepared views and keeps every stage.
    pub fn encode_views(&self, views: &Views) -> Result<Stages> {
        let global = to_tensor(&[&views.global], self.dtype, &self.device)?;
        let (sam_global, feat_global, proj_global) = self.run_views(&global)?;
        let (sam_tiles, feat_tiles, proj_tiles) = if views.tiles.is_empty() {
            (None, None, None)
        } else {
            let refs: Vec<&RgbImage> = views.tiles.iter().collect();
            let x = to_tensor(&refs, self.dtype, &self.device)?;
            let (s, f, p) = self.run_views(&x)?;
            (Some(s), Some(f), Some(p))
        };
        let image_embeds = self.layout(&proj_global, proj_tiles.as_ref(), views.grid)?;
        Ok(Stages { sam_global, sam_tiles, feat_global, feat_tiles, proj_global, proj_tiles, image_embeds })
    }

    /// `x: [B, 3, S, S]` → (SAM, tower output, projector output).
    fn run_views(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let sam = self.sam.forward(x)?;
        match &self.tower {
            Tower::Clip(clip) => {
                let c = clip.forward(&sam)?;
                let n = c.dim(1)? - 1;
                let sam_flat = sam.flatten_from(2)?.transpose(1, 2)?;
                let feat = Tensor::cat(&[&c.narrow(1, 1, n)?, &sam_flat], 2)?.contiguous()?;
                let proj = self.projector.forward(&feat)?;
                Ok((sam, c, proj))
            }
            Tower::Qwen2(q) => {
                let e = q.forward(&sam)?;
                let proj = self.projector.forward(&e)?;
                Ok((sam, e, proj))
            }
        }
    }

    /// Arranges projector outputs into the slot sequence.
    fn layout(&self, global: &Tensor, tiles: Option<&Tensor>, grid: TileGrid) -> Result<Tensor> {
        let d = self.llm_dim();
        let sep = self.separator.reshape((1, d))?;
        let g = (global.dim(1)? as f64).sqrt() as usize;
        let Some(nl) = &self.newline else {
            // OCR-2: tiles in order, global, separator.
            let mut parts = Vec::new();
            if let Some(t) = tiles {
                parts.push(t.reshape(((), d))?);
            }
            parts.push(global.reshape(((), d))?);
            parts.push(sep);
            return Ok(Tensor::cat(&parts, 0)?);
        };
        let with_newlines = |grid2d: Tensor, rows: usize| -> Result<Tensor> {
            let col = nl.reshape((1, 1, d))?.broadcast_as((rows, 1, d))?;
            Ok(Tensor::cat(&[&grid2d, &col], 1)?.reshape(((), d))?)
        };
        let mut parts = Vec::new();
        if let Some(t) = tiles {
            let n = t.dim(0)?;
            let tg = (t.dim(1)? as f64).sqrt() as usize;
            let (wt, ht) = (grid.w as usize, grid.h as usize);
            if n != wt * ht || tg * tg != t.dim(1)? {
                return Err(VisionError::Config(format!("{n} tiles do not fill a {wt}x{ht} grid")));
            }
            let stitched = t.reshape((ht, wt, tg, tg, d))?.permute((0, 2, 1, 3, 4))?.reshape((ht * tg, wt * tg, d))?;
            parts.push(with_newlines(stitched, ht * tg)?);
        }
        parts.push(with_newlines(global.reshape((g, g, d))?, g)?);
        parts.push(sep);
        Ok(Tensor::cat(&parts, 0)?)
    }
}
