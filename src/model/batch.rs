//! Token-major batches for [`super::DeepseekDecoder::forward_batch`]: the rows of many
//! sequences in one `[T, hidden]` tensor, each run of rows a [`SeqChunk`] (a prefill chunk or
//! one decode token), and the per-forward plan every layer shares (row offsets, cache slots,
//! how each chunk's attention is computed).
//!
//! Attention is the only op that knows about sequences. On devices with the paged kernel
//! ([`docseek_kernels::paged::PagedAttention`]) runs of short chunks (decode rows) attend in
//! one kernel call, reading the pools in place; long chunks (prefill) gather their
//! sequence's rows and use the same matrix products as the single-sequence path, whose cost is
//! dominated by the products, not the gather.

use candle_core::{DType, Device, Result, Tensor};
use docseek_kernels::paged::{supports_dtype, PagedAttention, PagedChunk};

use super::cache::CacheLayout;
use super::paged_cache::{PagedKvCache, RowSlots, SeqId};

/// Longest chunk that goes through the paged kernel when it is available.
pub const KERNEL_MAX_ROWS: usize = 8;

/// A run of consecutive rows of one sequence in a batch: positions `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqChunk {
    /// The sequence (its blocks in the cache).
    pub seq: SeqId,
    /// Position of the first row; the cache must hold exactly `start` tokens of `seq`.
    pub start: usize,
    /// Rows (tokens) in this chunk, at least 1.
    pub len: usize,
}

/// How attention reads the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionPath {
    /// The paged kernel for short chunks where the device has it, gathering otherwise.
    #[default]
    Auto,
    /// Always gather (the device-generic path; tests compare the two).
    Gather,
}

/// One chunk as the layers see it.
#[derive(Debug, Clone)]
pub struct PlannedChunk {
    /// The sequence.
    pub seq: SeqId,
    /// First position.
    pub start: usize,
    /// Rows.
    pub len: usize,
    /// Offset of its first row in the batch.
    pub row: usize,
    /// Additive causal mask `[len, start + len]` for the gather path (None for one row).
    pub mask: Option<Tensor>,
}

/// How a group of chunks attends.
#[derive(Debug, Clone)]
pub enum Group {
    /// Consecutive short chunks in one paged-kernel call over batch rows `row..row + rows`.
    Kernel {
        /// The chunks' block tables and positions.
        chunks: Vec<PagedChunk>,
        /// First batch row.
        row: usize,
        /// Rows.
        rows: usize,
        /// On a GPU: the chunks' block tables `[chunks, max_blocks]` and context lengths
        /// `[chunks]` (u32, on the device) for the device's decode kernel (one row per chunk),
        /// built once per forward and shared by every layer.
        device: Option<DeviceTables>,
    },
    /// One chunk through gather + matrix products.
    Gather(usize),
}

/// Block tables and context lengths on the device (see [`Group::Kernel`]).
#[derive(Debug, Clone)]
pub struct DeviceTables {
    /// u32 `[chunks, max_blocks]`, rows padded with block 0 (never read past the length).
    pub tables: Tensor,
    /// u32 `[chunks]`: tokens each chunk's row attends to (its position + 1).
    pub lens: Tensor,
}

impl DeviceTables {
    fn new(chunks: &[PagedChunk], device: &Device) -> Result<Self> {
        let width = chunks.iter().map(|c| c.block_table.len()).max().unwrap_or(1).max(1);
        let mut tables = vec![0u32; chunks.len() * width];
        for (i, c) in chunks.iter().enumerate() {
            tables[i * width..i * width + c.block_table.len()].copy_from_slice(&c.block_table);
        }
        let lens: Vec<u32> = chunks.iter().map(|c| (c.start + c.rows) as u32).collect();
        Ok(DeviceTables {
            tables: Tensor::from_vec(tables, (chunks.len(), width), device)?,
            lens: Tensor::from_vec(lens, chunks.len(), device)?,
        })
    }
}

/// Whether `device` has the decode kernel of [`docseek_kernels::ops::attention`] for this cache
/// layout: CUDA builds on a GPU, MHA (the released checkpoints' attention; MLA batches gather).
fn device_decode_kernel(device: &Device, layout: CacheLayout) -> bool {
    cfg!(feature = "cuda") && device.is_cuda() && matches!(layout, CacheLayout::Mha { .. })
}

/// What every layer of one batched forward shares.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    /// The chunks, in row order.
    pub chunks: Vec<PlannedChunk>,
    /// Where each row's keys and values are written.
    pub slots: RowSlots,
    /// Attention groups, in row order.
    pub groups: Vec<Group>,
    /// Position of every row.
    pub positions: Vec<usize>,
}

impl BatchPlan {
    /// Plans `chunks` over `cache` (every chunk's blocks already reserved).
    pub fn new(chunks: &[SeqChunk], cache: &PagedKvCache, path: AttentionPath, dtype: DType) -> Result<Self> {
        let device = cache.device();
        let host_kernel = PagedAttention::is_supported(device) && supports_dtype(dtype);
        let device_kernel = !host_kernel && device_decode_kernel(device, cache.layout());
        let kernel = path == AttentionPath::Auto && (host_kernel || device_kernel);
        // The device kernel takes one query row per sequence (decode steps).
        let max_rows = if device_kernel { 1 } else { KERNEL_MAX_ROWS };
        let mut planned = Vec::with_capacity(chunks.len());
        let mut rows = Vec::new();
        let mut positions = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut row = 0;
        for (i, c) in chunks.iter().enumerate() {
            let short = kernel && c.len <= max_rows;
            let mask = if c.len > 1 && !short { Some(causal_mask(c.len, c.start, dtype, device)?) } else { None };
            planned.push(PlannedChunk { seq: c.seq, start: c.start, len: c.len, row, mask });
            rows.extend((c.start..c.start + c.len).map(|p| (c.seq, p)));
            positions.extend(c.start..c.start + c.len);
            if short {
                let pc = PagedChunk { block_table: cache.table(c.seq).to_vec(), start: c.start, rows: c.len };
                match groups.last_mut() {
                    Some(Group::Kernel { chunks, rows, .. }) => {
                        chunks.push(pc);
                        *rows += c.len;
                    }
                    _ => groups.push(Group::Kernel { chunks: vec![pc], row, rows: c.len, device: None }),
                }
            } else {
                groups.push(Group::Gather(i));
            }
            row += c.len;
        }
        if device_kernel {
            for g in &mut groups {
                if let Group::Kernel { chunks, device: tables, .. } = g {
                    *tables = Some(DeviceTables::new(chunks, device)?);
                }
            }
        }
        Ok(BatchPlan { chunks: planned, slots: cache.slots(&rows)?, groups, positions })
    }

    /// Total rows.
    pub fn rows(&self) -> usize {
        self.positions.len()
    }

    /// Batch row of the last token of each chunk.
    pub fn last_rows(&self) -> Vec<u32> {
        self.chunks.iter().map(|c| (c.row + c.len - 1) as u32).collect()
    }
}

/// Additive causal mask `[n, start + n]`: row i may see columns `0..=start + i`.
pub fn causal_mask(n: usize, start: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let total = start + n;
    let mut m = vec![0f32; n * total];
    for i in 0..n {
        for j in (start + i + 1)..total {
            m[i * total + j] = f32::NEG_INFINITY;
        }
    }
    Tensor::from_vec(m, (n, total), device)?.to_dtype(dtype)
}
