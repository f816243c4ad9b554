//! The paged KV cache of batched decoding: one pool of fixed-size blocks per layer, shared by
//! every running sequence, with one allocator under a byte budget (`--kv-cache-mb`), so
//! memory is taken as sequences grow instead of reserved for the longest possible page.
//!
//! Layout (the team contract; engineer F's CUDA kernels read the same):
//! - block size [`BLOCK_SIZE`] = 16 tokens; token `t` of a sequence lives in block
//!   `table[t / 16]`, row `t % 16`;
//! - MHA layers: a K pool and a V pool, each `[num_blocks, kv_heads, 16, head_dim]`;
//! - MLA layers: a latent pool `[num_blocks, 16, kv_lora_rank]` (the normalised latent) and a
//!   rotary-key pool `[num_blocks, 16, qk_rope_head_dim]`.
//!
//! New rows are written in place with `scatter_set` on a row view of the pool (device
//! generic); attention reads the pools in place through the paged kernel
//! ([`docseek_kernels::paged`]) or, on devices without one, gathers one sequence's rows.
//! Nothing copies a whole pool.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};

use super::cache::CacheLayout;

pub use docseek_kernels::paged::BLOCK_SIZE;

/// Names a sequence in the cache.
pub type SeqId = u64;

/// Smallest default budget.
const MIN_DEFAULT_BUDGET: usize = 64 << 20;
/// Largest default budget.
const MAX_DEFAULT_BUDGET: usize = 16 << 30;
/// Default budget on devices whose free memory is not known here.
const DEVICE_DEFAULT_BUDGET: usize = 2 << 30;
/// Largest default budget on a GPU.
const MAX_DEVICE_BUDGET: usize = 64 << 30;

/// The default KV budget: half of the memory available now (Linux `MemAvailable`) on the CPU,
/// clamped to 64 MiB..16 GiB; on a GPU half of its free memory now (the weights are loaded by
/// then; the other half is for activations), clamped to 64 MiB..64 GiB, or 2 GiB where the
/// free memory is not known.
pub fn default_budget_bytes(device: &Device) -> usize {
    if !device.is_cpu() {
        return docseek_kernels::device_memory(device)
            .map_or(DEVICE_DEFAULT_BUDGET, |(free, _)| free / 2)
            .clamp(MIN_DEFAULT_BUDGET, MAX_DEVICE_BUDGET);
    }
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<usize>().ok())
            .map(|kb| kb * 1024)
    });
    available.map_or(MIN_DEFAULT_BUDGET * 16, |a| a / 2).clamp(MIN_DEFAULT_BUDGET, MAX_DEFAULT_BUDGET)
}

/// A zero tensor whose pages the OS maps on first write. candle's CPU `zeros` fills 16-bit
/// floats element by element (`vec![bf16::ZERO; n]`), which touches the whole KV budget at
/// start-up (half the free memory by default); zeroed `u16` memory comes from `calloc` and is
/// reinterpreted without a copy. Other dtypes and devices use `Tensor::zeros`.
pub fn untouched_zeros<S: Into<candle_core::Shape>>(shape: S, dtype: DType, device: &Device) -> Result<Tensor> {
    use half::vec::HalfBitsVecExt;
    let shape = shape.into();
    if !device.is_cpu() {
        return Tensor::zeros(shape, dtype, device);
    }
    let n = shape.elem_count();
    match dtype {
        DType::BF16 => Tensor::from_vec(vec![0u16; n].reinterpret_into::<half::bf16>(), shape, device),
        DType::F16 => Tensor::from_vec(vec![0u16; n].reinterpret_into::<half::f16>(), shape, device),
        _ => Tensor::zeros(shape, dtype, device),
    }
}

/// Hands out block ids; a freed block is reused first.
#[derive(Debug, Clone)]
pub struct BlockAllocator {
    free: Vec<u32>,
    total: usize,
}

impl BlockAllocator {
    /// An allocator over blocks `0..total`.
    pub fn new(total: usize) -> Self {
        BlockAllocator { free: (0..total as u32).rev().collect(), total }
    }

    /// A free block, if any.
    pub fn alloc(&mut self) -> Option<u32> {
        self.free.pop()
    }

    /// Returns a block.
    pub fn release(&mut self, block: u32) {
        debug_assert!((block as usize) < self.total && !self.free.contains(&block));
        self.free.push(block);
    }

    /// Free blocks.
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// All blocks.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// One layer's pools.
#[derive(Debug, Clone)]
pub enum PoolLayer {
    /// MHA: `[num_blocks, kv_heads, 16, head_dim]` each.
    Mha {
        /// Keys.
        k: Tensor,
        /// Values.
        v: Tensor,
    },
    /// MLA: `[num_blocks, 16, rank]` and `[num_blocks, 16, rope_dim]`.
    Mla {
        /// Normalised latents.
        latent: Tensor,
        /// Roped shared keys.
        k_pe: Tensor,
    },
}

/// A sequence's blocks and cached length.
#[derive(Debug, Clone, Default)]
struct SeqBlocks {
    table: Vec<u32>,
    len: usize,
}

/// Blocks of `tokens` tokens.
pub fn blocks_for(tokens: usize) -> usize {
    tokens.div_ceil(BLOCK_SIZE)
}

/// Where the rows of one batched forward go: flat row indices into the pools' row views,
/// shaped like the rows written (for `scatter_set`). Built once per forward, used by every
/// layer.
#[derive(Debug, Clone)]
pub enum RowSlots {
    /// MHA: `[tokens * kv_heads, head_dim]` indices into `[num_blocks * kv_heads * 16, head_dim]`.
    Mha(Tensor),
    /// MLA: `[tokens, rank]` and `[tokens, rope_dim]` indices into `[num_blocks * 16, _]`.
    Mla(Tensor, Tensor),
}

/// The paged cache of every layer for many sequences.
#[derive(Debug)]
pub struct PagedKvCache {
    layout: CacheLayout,
    layers: Vec<PoolLayer>,
    blocks: BlockAllocator,
    seqs: HashMap<SeqId, SeqBlocks>,
    dtype: DType,
    device: Device,
}

impl PagedKvCache {
    /// Bytes one block takes over all layers.
    pub fn block_bytes(layout: CacheLayout, num_layers: usize, dtype: DType) -> usize {
        BLOCK_SIZE * layout.values_per_token() * num_layers * dtype.size_in_bytes()
    }

    /// A cache of `num_blocks` blocks per layer. Pools are zero-filled lazily by the OS on
    /// the CPU ([`untouched_zeros`]), so memory is touched as blocks are first written.
    pub fn new(
        layout: CacheLayout,
        num_layers: usize,
        num_blocks: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let layers = (0..num_layers)
            .map(|_| {
                Ok(match layout {
                    CacheLayout::Mha { kv_heads, head_dim } => PoolLayer::Mha {
                        k: untouched_zeros((num_blocks, kv_heads, BLOCK_SIZE, head_dim), dtype, device)?,
                        v: untouched_zeros((num_blocks, kv_heads, BLOCK_SIZE, head_dim), dtype, device)?,
                    },
                    CacheLayout::Mla { rank, rope_dim } => PoolLayer::Mla {
                        latent: untouched_zeros((num_blocks, BLOCK_SIZE, rank), dtype, device)?,
                        k_pe: untouched_zeros((num_blocks, BLOCK_SIZE, rope_dim), dtype, device)?,
                    },
                })
            })
            .collect::<Result<_>>()?;
        Ok(PagedKvCache {
            layout,
            layers,
            blocks: BlockAllocator::new(num_blocks),
            seqs: HashMap::new(),
            dtype,
            device: device.clone(),
        })
    }

    /// A cache with as many blocks as `budget_bytes` holds (at least one).
    pub fn with_budget(
        layout: CacheLayout,
        num_layers: usize,
        budget_bytes: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let per = Self::block_bytes(layout, num_layers, dtype).max(1);
        Self::new(layout, num_layers, (budget_bytes / per).max(1), dtype, device)
    }

    /// The row layout.
    pub fn layout(&self) -> CacheLayout {
        self.layout
    }

    /// Element dtype of the pools.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Device of the pools.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Layer `idx`'s pools.
    pub fn layer(&self, idx: usize) -> &PoolLayer {
        &self.layers[idx]
    }

    /// Blocks per layer.
    pub fn num_blocks(&self) -> usize {
        self.blocks.total()
    }

    /// Blocks not held by any sequence.
    pub fn free_blocks(&self) -> usize {
        self.blocks.free()
    }

    /// Bytes of the whole cache (all blocks, all layers).
    pub fn capacity_bytes(&self) -> usize {
        self.num_blocks() * Self::block_bytes(self.layout, self.layers.len(), self.dtype)
    }

    /// Bytes of the blocks held by sequences.
    pub fn used_bytes(&self) -> usize {
        (self.num_blocks() - self.free_blocks()) * Self::block_bytes(self.layout, self.layers.len(), self.dtype)
    }

    /// Tokens cached for `seq` (None: unknown sequence).
    pub fn len(&self, seq: SeqId) -> Option<usize> {
        self.seqs.get(&seq).map(|s| s.len)
    }

    /// True when no sequence holds blocks.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// The block table of `seq` (empty for an unknown sequence).
    pub fn table(&self, seq: SeqId) -> &[u32] {
        self.seqs.get(&seq).map_or(&[], |s| &s.table)
    }

    /// More blocks `seq` needs to hold `tokens` tokens in all.
    pub fn blocks_needed(&self, seq: SeqId, tokens: usize) -> usize {
        let have = self.seqs.get(&seq).map_or(0, |s| s.table.len());
        blocks_for(tokens).saturating_sub(have)
    }

    /// Gives `seq` (registering it when new) blocks for `tokens` tokens in all; false, with
    /// nothing allocated, when too few blocks are free.
    pub fn reserve(&mut self, seq: SeqId, tokens: usize) -> bool {
        let need = self.blocks_needed(seq, tokens);
        if need > self.blocks.free() {
            return false;
        }
        let entry = self.seqs.entry(seq).or_default();
        for _ in 0..need {
            entry.table.push(self.blocks.alloc().expect("counted free blocks"));
        }
        true
    }

    /// Frees every block of `seq` and forgets it.
    pub fn release(&mut self, seq: SeqId) {
        if let Some(s) = self.seqs.remove(&seq) {
            for b in s.table {
                self.blocks.release(b);
            }
        }
    }

    /// Records that `seq` now caches `len` tokens (after a forward wrote them).
    pub fn set_len(&mut self, seq: SeqId, len: usize) -> Result<()> {
        match self.seqs.get_mut(&seq) {
            Some(s) if blocks_for(len) <= s.table.len() => {
                s.len = len;
                Ok(())
            }
            Some(_) => candle_core::bail!("sequence {seq}: {len} tokens exceed its blocks"),
            None => candle_core::bail!("sequence {seq} is not in the cache"),
        }
    }

    /// Copies the cached tokens of `src` into a new sequence `dst` (fresh blocks); false when
    /// too few blocks are free. Used to start many sequences from one prefill.
    pub fn fork(&mut self, src: SeqId, dst: SeqId) -> Result<bool> {
        let Some(from) = self.seqs.get(&src).cloned() else {
            candle_core::bail!("sequence {src} is not in the cache");
        };
        self.release(dst);
        if !self.reserve(dst, from.len) {
            return Ok(false);
        }
        let to = self.seqs[&dst].table.clone();
        if to.is_empty() {
            return Ok(true);
        }
        let src_ids = Tensor::from_slice(&from.table[..to.len()], to.len(), &self.device)?;
        for layer in &self.layers {
            let pools: Vec<&Tensor> = match layer {
                PoolLayer::Mha { k, v } => vec![k, v],
                PoolLayer::Mla { latent, k_pe } => vec![latent, k_pe],
            };
            for pool in pools {
                let rows = pool.index_select(&src_ids, 0)?;
                let width = rows.elem_count() / to.len().max(1);
                let view = pool.reshape((self.num_blocks(), width))?;
                let idx: Vec<u32> = to.iter().flat_map(|&b| std::iter::repeat_n(b, width)).collect();
                let idx = Tensor::from_vec(idx, (to.len(), width), &self.device)?;
                view.scatter_set(&idx, &rows.reshape((to.len(), width))?, 0)?;
            }
        }
        self.set_len(dst, from.len)?;
        Ok(true)
    }

    /// Row index of token `pos` of a sequence with `table` in a pool's row view, for KV head
    /// `g` of `kv_heads` (MLA: `kv_heads` 1).
    fn row_of(table: &[u32], pos: usize, g: usize, kv_heads: usize) -> u32 {
        ((table[pos / BLOCK_SIZE] as usize * kv_heads + g) * BLOCK_SIZE + pos % BLOCK_SIZE) as u32
    }

    /// Slots of the rows `(seq, position)` in order, for [`Self::write_mha`] / [`Self::write_mla`].
    pub fn slots(&self, rows: &[(SeqId, usize)]) -> Result<RowSlots> {
        let tables: Vec<&[u32]> = rows.iter().map(|(s, _)| self.table(*s)).collect();
        for ((seq, pos), t) in rows.iter().zip(&tables) {
            if pos / BLOCK_SIZE >= t.len() {
                candle_core::bail!("sequence {seq}: no block for position {pos}");
            }
        }
        let n = rows.len();
        let expand = |idx: Vec<u32>, width: usize| -> Result<Tensor> {
            let count = idx.len();
            Tensor::from_vec(idx, (count, 1), &self.device)?.broadcast_as((count, width))?.contiguous()
        };
        Ok(match self.layout {
            CacheLayout::Mha { kv_heads, head_dim } => {
                let mut idx = Vec::with_capacity(n * kv_heads);
                for ((_, pos), t) in rows.iter().zip(&tables) {
                    idx.extend((0..kv_heads).map(|g| Self::row_of(t, *pos, g, kv_heads)));
                }
                RowSlots::Mha(expand(idx, head_dim)?)
            }
            CacheLayout::Mla { rank, rope_dim } => {
                let idx: Vec<u32> = rows.iter().zip(&tables).map(|((_, pos), t)| Self::row_of(t, *pos, 0, 1)).collect();
                RowSlots::Mla(expand(idx.clone(), rank)?, expand(idx, rope_dim)?)
            }
        })
    }

    /// Writes MHA rows `k`, `v` `[tokens, kv_heads * head_dim]` of layer `idx` into their slots.
    pub fn write_mha(&self, idx: usize, slots: &RowSlots, k_new: &Tensor, v_new: &Tensor) -> Result<()> {
        let (PoolLayer::Mha { k, v }, RowSlots::Mha(rows), CacheLayout::Mha { kv_heads, head_dim }) =
            (&self.layers[idx], slots, self.layout)
        else {
            candle_core::bail!("MHA write on an MLA cache");
        };
        let nrows = self.num_blocks() * kv_heads * BLOCK_SIZE;
        let tokens = k_new.dim(0)?;
        let src = |t: &Tensor| t.reshape((tokens * kv_heads, head_dim))?.contiguous();
        k.reshape((nrows, head_dim))?.scatter_set(rows, &src(k_new)?, 0)?;
        v.reshape((nrows, head_dim))?.scatter_set(rows, &src(v_new)?, 0)
    }

    /// Writes MLA rows `latent` `[tokens, rank]` and `k_pe` `[tokens, rope_dim]` of layer `idx`.
    pub fn write_mla(&self, idx: usize, slots: &RowSlots, latent_new: &Tensor, k_pe_new: &Tensor) -> Result<()> {
        let (PoolLayer::Mla { latent, k_pe }, RowSlots::Mla(lr, kr), CacheLayout::Mla { rank, rope_dim }) =
            (&self.layers[idx], slots, self.layout)
        else {
            candle_core::bail!("MLA write on an MHA cache");
        };
        let nrows = self.num_blocks() * BLOCK_SIZE;
        latent.reshape((nrows, rank))?.scatter_set(lr, &latent_new.contiguous()?, 0)?;
        k_pe.reshape((nrows, rope_dim))?.scatter_set(kr, &k_pe_new.contiguous()?, 0)
    }

    /// The first `len` cached tokens of `seq` in layer `idx`, gathered (a copy of this
    /// sequence's rows only): MHA `(k, v)` `[kv_heads, len, head_dim]`; MLA `(latent, k_pe)`
    /// `[len, rank]`, `[len, rope_dim]`. The device-generic attention path reads these.
    pub fn gather(&self, idx: usize, seq: SeqId, len: usize) -> Result<(Tensor, Tensor)> {
        let table = self.table(seq);
        if blocks_for(len) > table.len() {
            candle_core::bail!("sequence {seq}: {len} tokens exceed its blocks");
        }
        match (&self.layers[idx], self.layout) {
            (PoolLayer::Mha { k, v }, CacheLayout::Mha { kv_heads, head_dim }) => {
                let idx: Vec<u32> =
                    (0..kv_heads).flat_map(|g| (0..len).map(move |p| Self::row_of(table, p, g, kv_heads))).collect();
                let idx = Tensor::from_vec(idx, kv_heads * len, &self.device)?;
                let nrows = self.num_blocks() * kv_heads * BLOCK_SIZE;
                let take = |pool: &Tensor| -> Result<Tensor> {
                    pool.reshape((nrows, head_dim))?.index_select(&idx, 0)?.reshape((kv_heads, len, head_dim))
                };
                Ok((take(k)?, take(v)?))
            }
            (PoolLayer::Mla { latent, k_pe }, CacheLayout::Mla { rank, rope_dim }) => {
                let idx: Vec<u32> = (0..len).map(|p| Self::row_of(table, p, 0, 1)).collect();
                let idx = Tensor::from_vec(idx, len, &self.device)?;
                let nrows = self.num_blocks() * BLOCK_SIZE;
                Ok((
                    latent.reshape((nrows, rank))?.index_select(&idx, 0)?,
                    k_pe.reshape((nrows, rope_dim))?.index_select(&idx, 0)?,
                ))
            }
            _ => candle_core::bail!("cache layout mismatch"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_bytes() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kb = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap();
        kb.parse::<usize>().unwrap() * 1024
    }

    #[test]
    fn pools_are_zero_and_not_touched_until_written() {
        for dtype in [DType::BF16, DType::F16, DType::F32] {
            let t = untouched_zeros((3, 5, 7), dtype, &Device::Cpu).unwrap();
            assert_eq!((t.dims(), t.dtype()), (&[3, 5, 7][..], dtype));
            let sum: f32 = t.to_dtype(DType::F32).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert_eq!(sum, 0.0);
        }
        // A 1 GiB bf16 pool raises the resident set by far less than its size (other tests
        // running beside this one allocate too, hence the wide margin).
        let before = rss_bytes();
        let pool = untouched_zeros((1 << 29,), DType::BF16, &Device::Cpu).unwrap();
        let grown = rss_bytes().saturating_sub(before);
        assert!(grown < 256 << 20, "a 1 GiB pool made {grown} bytes resident");
        drop(pool);
    }

    #[test]
    fn allocator_budget_and_release() {
        let layout = CacheLayout::Mla { rank: 4, rope_dim: 2 };
        // 16 tokens * 6 values * 2 layers * 4 bytes = 768 bytes per block.
        assert_eq!(PagedKvCache::block_bytes(layout, 2, DType::F32), 768);
        let mut c = PagedKvCache::with_budget(layout, 2, 768 * 5 + 100, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(c.num_blocks(), 5);
        assert!(c.reserve(1, 33)); // 3 blocks
        assert_eq!(c.free_blocks(), 2);
        assert!(!c.reserve(2, 48)); // needs 3: refused, nothing taken
        assert_eq!(c.free_blocks(), 2);
        assert!(c.reserve(2, 20));
        assert_eq!(c.blocks_needed(1, 48), 0);
        assert_eq!(c.blocks_needed(1, 49), 1);
        assert!(c.set_len(1, 49).is_err());
        c.release(1);
        assert_eq!(c.free_blocks(), 3);
        assert_eq!(c.used_bytes(), 2 * 768);
        assert!(c.len(1).is_none());
    }

    #[test]
    fn writes_land_in_the_right_rows_and_gather_reads_them_back() {
        let layout = CacheLayout::Mha { kv_heads: 2, head_dim: 3 };
        let dev = Device::Cpu;
        let mut c = PagedKvCache::new(layout, 1, 6, DType::F32, &dev).unwrap();
        // Interleave two sequences' blocks.
        assert!(c.reserve(7, 16));
        assert!(c.reserve(9, 16));
        assert!(c.reserve(7, 20));
        let rows: Vec<(SeqId, usize)> = vec![(7, 17), (9, 0), (7, 18)];
        let slots = c.slots(&rows).unwrap();
        let k = Tensor::arange(0f32, 18., &dev).unwrap().reshape((3, 6)).unwrap();
        let v = (&k * -1.0).unwrap();
        c.write_mha(0, &slots, &k, &v).unwrap();
        c.set_len(7, 19).unwrap();
        let (gk, gv) = c.gather(0, 7, 19).unwrap();
        assert_eq!(gk.dims(), &[2, 19, 3]);
        // Position 17, head 1 of sequence 7 holds row 0's second head.
        let got: Vec<f32> = gk.get(1).unwrap().get(17).unwrap().to_vec1().unwrap();
        assert_eq!(got, vec![3., 4., 5.]);
        let got: Vec<f32> = gv.get(0).unwrap().get(18).unwrap().to_vec1().unwrap();
        assert_eq!(got, vec![-12., -13., -14.]);
        // The pool itself has the contract's layout: block table[1], head 1, row 1.
        let b = c.table(7)[1] as usize;
        let PoolLayer::Mha { k: pool, .. } = c.layer(0) else { unreachable!() };
        let row: Vec<f32> = pool.get(b).unwrap().get(1).unwrap().get(1).unwrap().to_vec1().unwrap();
        assert_eq!(row, vec![3., 4., 5.]);
        // A fork copies the cached rows into fresh blocks.
        assert!(c.fork(7, 11).unwrap());
        let (fk, _) = c.gather(0, 11, 19).unwrap();
        assert_ne!(c.table(11), c.table(7));
        let (a, b): (Vec<f32>, Vec<f32>) =
            (fk.flatten_all().unwrap().to_vec1().unwrap(), gk.flatten_all().unwrap().to_vec1().unwrap());
        assert_eq!(a, b);
    }
}
