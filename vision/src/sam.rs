//! SAM-ViT-B image encoder with the Vary 16x compressor (`model.sam_model.*`), shared by
//! DeepSeek-OCR and DeepSeek-OCR-2 (official `deepencoder.py` / `sam_vary_sdpa.py`).
//!
//! Patch embedding (conv k=s=patch) → absolute position table (resized with antialiased bicubic
//! in f32 when the grid is not the trained one) → blocks (pre-LN, windowed attention with zero
//! padding and no mask, or global attention; decomposed relative positions from the unscaled q;
//! exact GELU MLP) → neck (1×1 conv, LayerNorm2d, 3×3 conv, LayerNorm2d) → `net_2`, `net_3`
//! (3×3, stride 2). Output `[B, C_out, S/64, S/64]`. Every dimension comes from [`SamConfig`].

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Module, Tensor};
use candle_nn::{Conv2dConfig, LayerNorm, VarBuilder};
use docseek_kernels::cpu::vmath::Activation;
use docseek_kernels::linear::Linear;

use crate::attention::{sdpa, Bias};
use crate::config::SamConfig;
use crate::error::{Result, VisionError};
use crate::interp::{resize_bicubic_aa, resize_rows_linear};
use crate::linear::{from_weight, linear, Conv3x3};

/// LayerNorm epsilon of the SAM blocks and neck.
const SAM_LN_EPS: f64 = 1e-6;
/// Input channels (RGB).
const IN_CHANS: usize = 3;

/// Official tensor names and shapes of the SAM part.
pub fn tensor_specs(c: &SamConfig, prefix: &str) -> Vec<(String, Vec<usize>)> {
    let (w, p, g) = (c.width, c.patch_size, c.pos_grid());
    let mut v = vec![
        (format!("{prefix}.patch_embed.proj.weight"), vec![w, IN_CHANS, p, p]),
        (format!("{prefix}.patch_embed.proj.bias"), vec![w]),
        (format!("{prefix}.pos_embed"), vec![1, g, g, w]),
    ];
    for i in 0..c.layers {
        let b = format!("{prefix}.blocks.{i}");
        let rel = if c.global_attn_indexes.contains(&i) { 2 * g - 1 } else { 2 * c.window_size - 1 };
        for n in ["norm1", "norm2"] {
            v.push((format!("{b}.{n}.weight"), vec![w]));
            v.push((format!("{b}.{n}.bias"), vec![w]));
        }
        v.push((format!("{b}.attn.qkv.weight"), vec![3 * w, w]));
        v.push((format!("{b}.attn.qkv.bias"), vec![3 * w]));
        v.push((format!("{b}.attn.proj.weight"), vec![w, w]));
        v.push((format!("{b}.attn.proj.bias"), vec![w]));
        v.push((format!("{b}.attn.rel_pos_h"), vec![rel, c.head_dim()]));
        v.push((format!("{b}.attn.rel_pos_w"), vec![rel, c.head_dim()]));
        v.push((format!("{b}.mlp.lin1.weight"), vec![c.mlp_dim(), w]));
        v.push((format!("{b}.mlp.lin1.bias"), vec![c.mlp_dim()]));
        v.push((format!("{b}.mlp.lin2.weight"), vec![w, c.mlp_dim()]));
        v.push((format!("{b}.mlp.lin2.bias"), vec![w]));
    }
    let n = c.neck_channels;
    v.push((format!("{prefix}.neck.0.weight"), vec![n, w, 1, 1]));
    v.push((format!("{prefix}.neck.1.weight"), vec![n]));
    v.push((format!("{prefix}.neck.1.bias"), vec![n]));
    v.push((format!("{prefix}.neck.2.weight"), vec![n, n, 3, 3]));
    v.push((format!("{prefix}.neck.3.weight"), vec![n]));
    v.push((format!("{prefix}.neck.3.bias"), vec![n]));
    let (c2, c3) = (c.downsample_channels[0], c.downsample_channels[1]);
    v.push((format!("{prefix}.net_2.weight"), vec![c2, n, 3, 3]));
    v.push((format!("{prefix}.net_3.weight"), vec![c3, c2, 3, 3]));
    v
}

/// A learned table with its f32 copy, resized on demand and cached per target size.
struct ResizableTable {
    rows: Vec<f32>,
    cache: Mutex<HashMap<usize, Tensor>>,
}

impl ResizableTable {
    fn new(t: &Tensor) -> Result<Self> {
        Ok(Self { rows: t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?, cache: Mutex::new(HashMap::new()) })
    }
}

struct SamAttention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
    head_dim: usize,
    rel_h: (ResizableTable, usize),
    rel_w: (ResizableTable, usize),
}

impl SamAttention {
    fn load(c: &SamConfig, vb: VarBuilder) -> Result<Self> {
        let w = c.width;
        let hd = c.head_dim();
        let rh = vb.get_unchecked("rel_pos_h")?;
        let rw = vb.get_unchecked("rel_pos_w")?;
        for (name, t) in [("rel_pos_h", &rh), ("rel_pos_w", &rw)] {
            if t.rank() != 2 || t.dim(1)? != hd {
                return Err(VisionError::Config(format!("{name} has shape {:?}, want [_, {hd}]", t.dims())));
            }
        }
        Ok(Self {
            qkv: linear(w, 3 * w, vb.pp("qkv"))?,
            proj: linear(w, w, vb.pp("proj"))?,
            heads: c.heads,
            head_dim: hd,
            rel_h: (ResizableTable::new(&rh)?, rh.dim(0)?),
            rel_w: (ResizableTable::new(&rw)?, rw.dim(0)?),
        })
    }

    /// `get_rel_pos(size, size, table)` gathered to `[size, size, head_dim]`.
    fn rel_pos(&self, table: &(ResizableTable, usize), size: usize, like: &Tensor) -> Result<Tensor> {
        let (tab, rows) = table;
        if let Some(t) = tab.cache.lock().expect("cache lock").get(&size) {
            return Ok(t.clone());
        }
        let need = 2 * size - 1;
        let resized =
            if *rows != need { resize_rows_linear(&tab.rows, *rows, self.head_dim, need) } else { tab.rows.clone() };
        let mut idx = Vec::with_capacity(size * size);
        for i in 0..size {
            for j in 0..size {
                idx.push((i + size - 1 - j) as u32);
            }
        }
        let table = Tensor::from_vec(resized, (need, self.head_dim), like.device())?.to_dtype(like.dtype())?;
        let idx = Tensor::from_vec(idx, size * size, like.device())?;
        let t = table.index_select(&idx, 0)?.reshape((size, size, self.head_dim))?;
        tab.cache.lock().expect("cache lock").insert(size, t.clone());
        Ok(t)
    }

    /// The resized `[2*size-1, head_dim]` tables (h, w) used for a `size`×`size` attention grid.
    fn rel_tables(&self, size: usize) -> (Vec<f32>, Vec<f32>) {
        let f = |(tab, rows): &(ResizableTable, usize)| {
            if *rows != 2 * size - 1 {
                resize_rows_linear(&tab.rows, *rows, self.head_dim, 2 * size - 1)
            } else {
                tab.rows.clone()
            }
        };
        (f(&self.rel_h), f(&self.rel_w))
    }

    /// `x: [B, H, W, C]` → the heads' outputs `[B, H, W, C]` before the output projection
    /// (the block projects after un-windowing, with its residual).
    fn forward_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let (nh, hd) = (self.heads, self.head_dim);
        let qkv = self.qkv.forward(x)?.reshape((b, h * w, 3, nh, hd))?.permute((2, 0, 3, 1, 4))?;
        let bn = b * nh;
        let q = qkv.get(0)?.reshape((bn, h * w, hd))?;
        let k = qkv.get(1)?.reshape((bn, h * w, hd))?;
        let v = qkv.get(2)?.reshape((bn, h * w, hd))?;
        // Decomposed relative positions from the unscaled q.
        let rh = self.rel_pos(&self.rel_h, h, &q)?; // [h, kh, hd]
        let rw = self.rel_pos(&self.rel_w, w, &q)?; // [w, kw, hd]
        let q4 = q.reshape((bn, h, w, hd))?;
        let rel_h = q4
            .permute((1, 0, 2, 3))?
            .reshape((h, bn * w, hd))?
            .matmul(&rh.transpose(1, 2)?.contiguous()?)? // [h, bn*w, kh]
            .reshape((h, bn, w, h))?
            .permute((1, 0, 2, 3))?; // [bn, h, w, kh]
        let rel_w = q4
            .permute((2, 0, 1, 3))?
            .reshape((w, bn * h, hd))?
            .matmul(&rw.transpose(1, 2)?.contiguous()?)? // [w, bn*h, kw]
            .reshape((w, bn, h, w))?
            .permute((1, 2, 0, 3))?; // [bn, h, w, kw]
        let rel_h = rel_h.reshape((bn, h * w, h))?;
        let rel_w = rel_w.reshape((bn, h * w, w))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let out = sdpa(&q, &k, &v, Some(Bias::Decomposed { h: &rel_h, w: &rel_w }), scale)?;
        Ok(out.reshape((b, nh, h, w, hd))?.permute((0, 2, 3, 1, 4))?.reshape((b, h, w, c))?)
    }
}

struct SamBlock {
    norm1: LayerNorm,
    attn: SamAttention,
    norm2: LayerNorm,
    lin1: Linear,
    lin2: Linear,
    /// 0 for global attention.
    window: usize,
}

impl SamBlock {
    fn load(c: &SamConfig, window: usize, vb: VarBuilder) -> Result<Self> {
        let w = c.width;
        Ok(Self {
            norm1: candle_nn::layer_norm(w, SAM_LN_EPS, vb.pp("norm1"))?,
            attn: SamAttention::load(c, vb.pp("attn"))?,
            norm2: candle_nn::layer_norm(w, SAM_LN_EPS, vb.pp("norm2"))?,
            lin1: linear(w, c.mlp_dim(), vb.pp("mlp").pp("lin1"))?,
            lin2: linear(c.mlp_dim(), w, vb.pp("mlp").pp("lin2"))?,
            window,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let xn = self.norm1.forward(x)?;
        let a = if self.window > 0 {
            let ws = self.window;
            let (hp, wp) = (h.div_ceil(ws) * ws, w.div_ceil(ws) * ws);
            // Zero padding of the normalised tokens; padded tokens join attention unmasked.
            let xp = xn.pad_with_zeros(1, 0, hp - h)?.pad_with_zeros(2, 0, wp - w)?;
            let (nh, nw) = (hp / ws, wp / ws);
            let win =
                xp.reshape((b, nh, ws, nw, ws, c))?.permute((0, 1, 3, 2, 4, 5))?.reshape((b * nh * nw, ws, ws, c))?;
            let y = self.attn.forward_heads(&win)?;
            y.reshape((b, nh, nw, ws, ws, c))?
                .permute((0, 1, 3, 2, 4, 5))?
                .reshape((b, hp, wp, c))?
                .narrow(1, 0, h)?
                .narrow(2, 0, w)?
        } else {
            self.attn.forward_heads(&xn)?
        };
        // The projection is per token, so it runs after un-windowing (on the kept tokens
        // only), with the residual added to its f32 result.
        let x = self.attn.proj.forward_residual(&a.contiguous()?, x)?;
        let xn = self.norm2.forward(&x)?;
        let hidden = if self.lin1.is_kernel() {
            self.lin1.forward_act(&xn, Activation::GeluErf)?
        } else {
            self.lin1.forward(&xn)?.gelu_erf()?
        };
        Ok(self.lin2.forward_residual(&hidden, &x)?)
    }
}

/// The SAM-B encoder + neck + `net_2`/`net_3` compressor.
pub struct SamEncoder {
    cfg: SamConfig,
    /// The patch embedding (kernel = stride) as a product over `[3·p·p]` patches.
    patch: Linear,
    pos_embed: Tensor,
    pos_table: ResizableTable,
    blocks: Vec<SamBlock>,
    /// The 1×1 neck convolution as a product over channels.
    neck0: Linear,
    neck1: LayerNorm,
    neck2: Conv3x3,
    neck3: LayerNorm,
    net2: Conv3x3,
    net3: Conv3x3,
}

impl SamEncoder {
    /// Loads from `vb` at the `model.sam_model` prefix.
    pub fn load(cfg: &SamConfig, vb: VarBuilder) -> Result<Self> {
        let (w, p, g) = (cfg.width, cfg.patch_size, cfg.pos_grid());
        let patch_w = vb.get((w, IN_CHANS, p, p), "patch_embed.proj.weight")?.reshape((w, IN_CHANS * p * p))?;
        let patch_b = vb.get(w, "patch_embed.proj.bias")?;
        let pos_embed = vb.get((1, g, g, w), "pos_embed")?;
        let blocks = (0..cfg.layers)
            .map(|i| {
                let window = if cfg.global_attn_indexes.contains(&i) { 0 } else { cfg.window_size };
                SamBlock::load(cfg, window, vb.pp("blocks").pp(i))
            })
            .collect::<Result<Vec<_>>>()?;
        let n = cfg.neck_channels;
        let (c2, c3) = (cfg.downsample_channels[0], cfg.downsample_channels[1]);
        let k3 = Conv2dConfig { padding: 1, ..Default::default() };
        let s2 = Conv2dConfig { padding: 1, stride: 2, ..Default::default() };
        Ok(Self {
            cfg: cfg.clone(),
            patch: from_weight(patch_w, Some(patch_b))?,
            pos_table: ResizableTable::new(&pos_embed)?,
            pos_embed,
            blocks,
            neck0: from_weight(vb.get((n, w, 1, 1), "neck.0.weight")?.reshape((n, w))?, None)?,
            neck1: candle_nn::layer_norm(n, SAM_LN_EPS, vb.pp("neck.1"))?,
            neck2: Conv3x3::load(n, n, k3, vb.pp("neck.2"))?,
            neck3: candle_nn::layer_norm(n, SAM_LN_EPS, vb.pp("neck.3"))?,
            net2: Conv3x3::load(n, c2, s2, vb.pp("net_2"))?,
            net3: Conv3x3::load(c2, c3, s2, vb.pp("net_3"))?,
        })
    }

    /// The configuration this encoder was built from.
    pub fn config(&self) -> &SamConfig {
        &self.cfg
    }

    /// `get_abs_pos(pos_embed, grid)`: the `[1, grid, grid, C]` position table, resized with
    /// antialiased bicubic in f32 when `grid` differs from the trained grid.
    pub fn pos_embed_for(&self, grid: usize) -> Result<Tensor> {
        let g = self.cfg.pos_grid();
        if grid == g {
            return Ok(self.pos_embed.clone());
        }
        if let Some(t) = self.pos_table.cache.lock().expect("cache lock").get(&grid) {
            return Ok(t.clone());
        }
        let c = self.cfg.width;
        // NHWC → planar CHW for the resize, and back.
        let planar = Tensor::from_slice(&self.pos_table.rows, (g, g, c), &candle_core::Device::Cpu)?
            .permute((2, 0, 1))?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let out = resize_bicubic_aa(&planar, c, g, g, grid, grid);
        let t = Tensor::from_vec(out, (c, grid, grid), &candle_core::Device::Cpu)?
            .permute((1, 2, 0))?
            .unsqueeze(0)?
            .contiguous()?
            .to_device(self.pos_embed.device())?
            .to_dtype(self.pos_embed.dtype())?;
        self.pos_table.cache.lock().expect("cache lock").insert(grid, t.clone());
        Ok(t)
    }

    /// The `[2*grid-1, head_dim]` rel-pos tables (h, w) block `block` uses on a `grid`×`grid`
    /// attention extent (windowed blocks always use the window).
    pub fn rel_pos_tables(&self, block: usize, grid: usize) -> Option<(Vec<f32>, Vec<f32>)> {
        let b = self.blocks.get(block)?;
        let size = if b.window > 0 { b.window } else { grid };
        Some(b.attn.rel_tables(size))
    }

    /// `x: [B, 3, S, S]` normalised pixels → `[B, C_out, S/64, S/64]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, ch, hh, ww) = x.dims4()?;
        let p = self.cfg.patch_size;
        if ch != IN_CHANS || hh % p != 0 || ww % p != 0 {
            return Err(VisionError::Image(format!("SAM input {:?} is not [B, 3, k*{p}, k*{p}]", x.dims())));
        }
        let (gh, gw) = (hh / p, ww / p);
        if gh != gw {
            return Err(VisionError::Image(format!("SAM views are square; got {hh}x{ww}")));
        }
        let c = self.cfg.width;
        // Patch embedding as a matmul (kernel == stride): [B*gh*gw, 3*p*p] · Wᵀ.
        let patches = x
            .reshape((b, ch, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b * gh * gw, ch * p * p))?;
        let mut h = self.patch.forward(&patches)?.reshape((b, gh, gw, c))?;
        h = h.broadcast_add(&self.pos_embed_for(gh)?)?;
        for blk in &self.blocks {
            h = blk.forward(&h)?;
        }
        // Neck: 1×1 conv as a matmul on NHWC, LayerNorm2d = LayerNorm over channels.
        let y = self.neck0.forward(&h.reshape((b * gh * gw, c))?)?.reshape((b, gh, gw, ()))?;
        let y = self.neck1.forward(&y)?.permute((0, 3, 1, 2))?.contiguous()?;
        let y = self.neck2.forward(&y)?;
        let y = self.neck3.forward(&y.permute((0, 2, 3, 1))?.contiguous()?)?.permute((0, 3, 1, 2))?.contiguous()?;
        let y = self.net2.forward(&y)?;
        self.net3.forward(&y)
    }
}
