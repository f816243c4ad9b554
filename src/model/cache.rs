//! The decoder's KV cache: one preallocated, growable buffer per layer, written in place.
//!
//! - MHA layers keep K and V per KV head: `[kv_heads, capacity, head_dim]` each.
//! - MLA layers keep only what the absorbed attention reads: the normalised latent
//!   `kv_a_layernorm(c_kv)` `[capacity, kv_lora_rank]` and the roped shared key
//!   `[capacity, qk_rope_head_dim]`; never per-head K/V.
//!
//! Attention reads a narrowed view of the first `len` rows (no copy).

use candle_core::{DType, Device, Result, Tensor};

/// Rows added whenever a buffer has to grow beyond its initial capacity.
const GROWTH_ROWS: usize = 512;

/// One layer's cached state.
#[derive(Debug, Clone)]
pub enum LayerCache {
    /// Full keys and values per KV head.
    Mha {
        /// `[kv_heads, capacity, head_dim]`.
        k: Tensor,
        /// `[kv_heads, capacity, head_dim]`.
        v: Tensor,
    },
    /// The compressed MLA state.
    Mla {
        /// `[capacity, kv_lora_rank]`.
        latent: Tensor,
        /// `[capacity, qk_rope_head_dim]`.
        k_pe: Tensor,
    },
}

/// Shape of one layer's cache rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLayout {
    /// K and V of `kv_heads` heads of `head_dim`.
    Mha {
        /// KV heads.
        kv_heads: usize,
        /// Head width.
        head_dim: usize,
    },
    /// Latent of `rank` plus a shared rope key of `rope_dim`.
    Mla {
        /// `kv_lora_rank`.
        rank: usize,
        /// `qk_rope_head_dim`.
        rope_dim: usize,
    },
}

impl CacheLayout {
    /// Values stored per token in one layer.
    pub fn values_per_token(self) -> usize {
        match self {
            CacheLayout::Mha { kv_heads, head_dim } => 2 * kv_heads * head_dim,
            CacheLayout::Mla { rank, rope_dim } => rank + rope_dim,
        }
    }

    fn alloc(self, capacity: usize, dtype: DType, device: &Device) -> Result<LayerCache> {
        Ok(match self {
            CacheLayout::Mha { kv_heads, head_dim } => LayerCache::Mha {
                k: Tensor::zeros((kv_heads, capacity, head_dim), dtype, device)?,
                v: Tensor::zeros((kv_heads, capacity, head_dim), dtype, device)?,
            },
            CacheLayout::Mla { rank, rope_dim } => LayerCache::Mla {
                latent: Tensor::zeros((capacity, rank), dtype, device)?,
                k_pe: Tensor::zeros((capacity, rope_dim), dtype, device)?,
            },
        })
    }
}

/// The cache of all layers for one sequence.
#[derive(Debug, Clone)]
pub struct KvCache {
    layout: CacheLayout,
    layers: Vec<LayerCache>,
    len: usize,
    capacity: usize,
    dtype: DType,
    device: Device,
}

impl KvCache {
    /// An empty cache with room for `capacity` tokens (grows when needed).
    pub fn new(layout: CacheLayout, num_layers: usize, capacity: usize, dtype: DType, device: &Device) -> Result<Self> {
        let capacity = capacity.max(1);
        let layers = (0..num_layers).map(|_| layout.alloc(capacity, dtype, device)).collect::<Result<_>>()?;
        Ok(KvCache { layout, layers, len: 0, capacity, dtype, device: device.clone() })
    }

    /// Tokens cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows allocated per layer.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The row layout.
    pub fn layout(&self) -> CacheLayout {
        self.layout
    }

    /// Layer `idx`'s buffers (full capacity; rows past `len()` are unused).
    pub fn layer(&self, idx: usize) -> &LayerCache {
        &self.layers[idx]
    }

    /// Bytes of cached state in use: `len() * values_per_token * layers * dtype size`.
    pub fn used_bytes(&self) -> usize {
        self.len * self.layout.values_per_token() * self.layers.len() * self.dtype.size_in_bytes()
    }

    /// Bytes allocated (capacity rows).
    pub fn allocated_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match l {
                LayerCache::Mha { k, v } => k.elem_count() + v.elem_count(),
                LayerCache::Mla { latent, k_pe } => latent.elem_count() + k_pe.elem_count(),
            })
            .sum::<usize>()
            * self.dtype.size_in_bytes()
    }

    /// Makes room for `extra` more tokens, reallocating (and copying) when needed.
    pub fn reserve(&mut self, extra: usize) -> Result<()> {
        let need = self.len + extra;
        if need <= self.capacity {
            return Ok(());
        }
        let new_cap = need.max(self.capacity + GROWTH_ROWS);
        for layer in self.layers.iter_mut() {
            let mut fresh = self.layout.alloc(new_cap, self.dtype, &self.device)?;
            match (&mut fresh, &*layer) {
                (LayerCache::Mha { k, v }, LayerCache::Mha { k: ok, v: ov }) => {
                    k.slice_set(&ok.narrow(1, 0, self.len)?.contiguous()?, 1, 0)?;
                    v.slice_set(&ov.narrow(1, 0, self.len)?.contiguous()?, 1, 0)?;
                }
                (LayerCache::Mla { latent, k_pe }, LayerCache::Mla { latent: ol, k_pe: ok }) => {
                    latent.slice_set(&ol.narrow(0, 0, self.len)?.contiguous()?, 0, 0)?;
                    k_pe.slice_set(&ok.narrow(0, 0, self.len)?.contiguous()?, 0, 0)?;
                }
                _ => candle_core::bail!("cache layout mismatch"),
            }
            *layer = fresh;
        }
        self.capacity = new_cap;
        Ok(())
    }

    /// Writes MHA rows `k`, `v` `[kv_heads, n, head_dim]` for layer `idx` at the current end
    /// and returns views of all `len + n` rows. [`Self::advance`] commits the length.
    pub fn append_mha(&mut self, idx: usize, k_new: &Tensor, v_new: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = k_new.dim(1)?;
        let end = self.len + n;
        match &self.layers[idx] {
            LayerCache::Mha { k, v } => {
                k.slice_set(&k_new.contiguous()?, 1, self.len)?;
                v.slice_set(&v_new.contiguous()?, 1, self.len)?;
                Ok((k.narrow(1, 0, end)?, v.narrow(1, 0, end)?))
            }
            LayerCache::Mla { .. } => candle_core::bail!("MHA append on an MLA cache"),
        }
    }

    /// Writes MLA rows `latent` `[n, rank]`, `k_pe` `[n, rope_dim]` for layer `idx` and
    /// returns views of all `len + n` rows.
    pub fn append_mla(&mut self, idx: usize, latent_new: &Tensor, k_pe_new: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = latent_new.dim(0)?;
        let end = self.len + n;
        match &self.layers[idx] {
            LayerCache::Mla { latent, k_pe } => {
                latent.slice_set(&latent_new.contiguous()?, 0, self.len)?;
                k_pe.slice_set(&k_pe_new.contiguous()?, 0, self.len)?;
                Ok((latent.narrow(0, 0, end)?, k_pe.narrow(0, 0, end)?))
            }
            LayerCache::Mha { .. } => candle_core::bail!("MLA append on an MHA cache"),
        }
    }

    /// Commits `n` tokens written by every layer in this step.
    pub fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// Forgets all tokens (keeps the buffers).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}
