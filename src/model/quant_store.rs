//! How the decoder's linear weights are stored when a model loads (`--quant none|q8|q4`), and
//! the saved quantized form that makes a quantized load fast.
//!
//! [`LoadContext`] is installed for the duration of one model load on the loading thread
//! ([`LoadContext::run`]); [`super::layers::Linear::load`] asks it for each weight by its full
//! name ([`linear_weight`]):
//! - no quantization, bf16 model on the CPU, bf16 in the file: a view of the memory-mapped
//!   checkpoint (no copy);
//! - q8/q4: the block-quantized weight from the saved file when one matches the checkpoint,
//!   otherwise quantized from the checkpoint now. `lm_head` is kept at q8 under q4 (the output
//!   layer is the most sensitive to rounding, as in llama.cpp's Q4_K_M).
//!
//! The saved form is one safetensors file, `docseek-q8.safetensors` / `docseek-q4.safetensors`
//! beside the checkpoint (`docseek quantize` writes it): `{name}.qs` (U8 `[rows, row_bytes]`)
//! and `{name}.scales` (F16 `[rows, blocks]`) per weight, and in its metadata the format and
//! the checkpoint's fingerprint ([`StreamingSafetensors::fingerprint`]); a file made from other
//! weights is ignored. It is memory-mapped and used in place.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use candle_core::{DType, Device, Result};
use docseek_kernels::cpu::quant::{blocks_per_row, QFormat};
use docseek_kernels::linear::{quantize_rows, LinearWeight, Quant};
use docseek_kernels::storage::Storage;
use memmap2::Mmap;

use super::weights::StreamingSafetensors;

/// Metadata key of the quantized file's format.
const META_FORMAT: &str = "docseek_quant";
/// Metadata key of the source checkpoint's fingerprint.
const META_SOURCE: &str = "docseek_source";
/// Weight kept at q8 when the rest is q4.
const OUTPUT_LAYER: &str = "lm_head.weight";

/// The saved quantized file of `dir` for `quant` (`docseek-q8.safetensors`).
pub fn saved_path(dir: &Path, quant: Quant) -> PathBuf {
    dir.join(format!("docseek-{}.safetensors", quant.name()))
}

/// A mapped saved quantized model.
#[derive(Debug)]
pub struct SavedQuant {
    map: Arc<Mmap>,
    entries: HashMap<String, (usize, Vec<usize>)>,
}

impl SavedQuant {
    /// Maps `path` if it exists, holds `quant` weights and was made from weights with
    /// `fingerprint`; `Ok(None)` otherwise.
    pub fn open(path: &Path, quant: Quant, fingerprint: &str) -> Result<Option<SavedQuant>> {
        let Ok(file) = std::fs::File::open(path) else { return Ok(None) };
        // SAFETY: a read-only mapping of a file docseek wrote; treated as immutable.
        let map = Arc::new(unsafe { Mmap::map(&file)? });
        let st = safetensors::SafeTensors::deserialize(&map)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&map)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        let info = meta.metadata().clone().unwrap_or_default();
        if info.get(META_FORMAT).map(String::as_str) != Some(quant.name())
            || info.get(META_SOURCE).map(String::as_str) != Some(fingerprint)
        {
            tracing::warn!(
                "{} was made from other weights or another format; quantizing at load instead",
                path.display()
            );
            return Ok(None);
        }
        let base = map.as_ptr() as usize;
        let entries = st
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, (view.data().as_ptr() as usize - base, view.shape().to_vec())))
            .collect();
        Ok(Some(SavedQuant { map: map.clone(), entries }))
    }

    /// The weight `name` (`[rows, cols]`), if saved.
    fn get(&self, name: &str, format: QFormat, rows: usize, cols: usize) -> Option<LinearWeight> {
        let (qo, qshape) = self.entries.get(&format!("{name}.qs"))?;
        let (so, sshape) = self.entries.get(&format!("{name}.scales"))?;
        let (rb, bp) = (format.row_bytes(cols), blocks_per_row(cols));
        if qshape != &[rows, rb] || sshape != &[rows, bp] {
            return None;
        }
        let qs = Storage::mapped(self.map.clone(), *qo, rows * rb)?;
        let scales = Storage::mapped(self.map.clone(), *so, rows * bp)?;
        Some(LinearWeight::Quant { format, qs, scales, rows, cols })
    }
}

/// Writes `weights` (quantized, all of `quant`'s formats) to `path` with the checkpoint's
/// `fingerprint`.
pub fn save(path: &Path, quant: Quant, fingerprint: &str, weights: &[(String, LinearWeight)]) -> Result<()> {
    struct Bytes<'a> {
        dtype: safetensors::Dtype,
        shape: Vec<usize>,
        data: &'a [u8],
    }
    impl safetensors::View for Bytes<'_> {
        fn dtype(&self) -> safetensors::Dtype {
            self.dtype
        }
        fn shape(&self) -> &[usize] {
            &self.shape
        }
        fn data(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Borrowed(self.data)
        }
        fn data_len(&self) -> usize {
            self.data.len()
        }
    }
    let mut views = Vec::new();
    for (name, w) in weights {
        let LinearWeight::Quant { format, qs, scales, rows, cols } = w else { continue };
        let sc = scales.as_slice();
        // SAFETY: f16 is two plain bytes.
        let sc_bytes = unsafe { std::slice::from_raw_parts(sc.as_ptr() as *const u8, sc.len() * 2) };
        views.push((
            format!("{name}.qs"),
            Bytes { dtype: safetensors::Dtype::U8, shape: vec![*rows, format.row_bytes(*cols)], data: qs.as_slice() },
        ));
        views.push((
            format!("{name}.scales"),
            Bytes { dtype: safetensors::Dtype::F16, shape: vec![*rows, blocks_per_row(*cols)], data: sc_bytes },
        ));
    }
    let meta = HashMap::from([
        (META_FORMAT.to_string(), quant.name().to_string()),
        (META_SOURCE.to_string(), fingerprint.to_string()),
    ]);
    let tmp = path.with_extension("safetensors.partial");
    safetensors::serialize_to_file(views, Some(meta), &tmp)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// What one model load uses to build its linear weights.
#[derive(Debug)]
pub struct LoadContext {
    store: Arc<StreamingSafetensors>,
    quant: Quant,
    saved: Option<SavedQuant>,
    record: bool,
    recorded: RefCell<Vec<(String, LinearWeight)>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<LoadContext>>> = const { RefCell::new(None) };
}

impl LoadContext {
    /// Linear weights of `store` under `quant`, from `saved` when given.
    pub fn new(store: Arc<StreamingSafetensors>, quant: Quant, saved: Option<SavedQuant>) -> Self {
        LoadContext { store, quant, saved, record: false, recorded: RefCell::new(Vec::new()) }
    }

    /// Also keeps every quantized weight built ([`LoadContext::recorded`]), to save them.
    pub fn recording(mut self) -> Self {
        self.record = true;
        self
    }

    /// Runs `f` (a model load) with this context installed on the current thread.
    pub fn run<R>(self: &Rc<Self>, f: impl FnOnce() -> R) -> R {
        struct Reset(Option<Rc<LoadContext>>);
        impl Drop for Reset {
            fn drop(&mut self) {
                let prev = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = prev);
            }
        }
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        let _reset = Reset(prev);
        f()
    }

    /// The quantized weights built under [`LoadContext::recording`], by name.
    pub fn recorded(&self) -> Vec<(String, LinearWeight)> {
        self.recorded.borrow().clone()
    }

    fn weight(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        dtype: DType,
        device: &Device,
    ) -> Option<Result<LinearWeight>> {
        if !device.is_cpu() {
            return None;
        }
        let (stored, shape) = self.store.info(name)?;
        if shape != [rows, cols] {
            return None;
        }
        let quant = match (self.quant, name) {
            (Quant::Q4, OUTPUT_LAYER) => Quant::Q8,
            (q, _) => q,
        };
        match quant.format() {
            None if dtype == DType::BF16 && stored == DType::BF16 => {
                let m = self.store.mapped(name)?;
                // Fault the pages in now (they are in the page cache when the file is warm),
                // so the first forward pass does not pay for it; advisory only.
                let page = 4096;
                let start = m.offset / page * page;
                let _ = m.map.advise_range(memmap2::Advice::PopulateRead, start, m.offset - start + rows * cols * 2);
                let data = Storage::mapped(m.map, m.offset, rows * cols)?;
                Some(Ok(LinearWeight::Bf16 { data, rows, cols }))
            }
            None => None,
            Some(format) => {
                if let Some(w) = self.saved.as_ref().and_then(|s| s.get(name, format, rows, cols)) {
                    return Some(Ok(w));
                }
                Some(self.quantize(name, format, rows, cols).inspect(|w| {
                    if self.record {
                        self.recorded.borrow_mut().push((name.to_string(), w.clone()));
                    }
                }))
            }
        }
    }
}

impl LoadContext {
    /// Quantizes a stored weight a slice of rows at a time (at most [`QUANTIZE_CHUNK_VALUES`]
    /// values in memory as f32).
    fn quantize(&self, name: &str, format: QFormat, rows: usize, cols: usize) -> Result<LinearWeight> {
        let (rb, bp) = (format.row_bytes(cols), blocks_per_row(cols));
        let mut qs = vec![0u8; rows * rb];
        let mut scales = vec![half::f16::ZERO; rows * bp];
        let step = (QUANTIZE_CHUNK_VALUES / cols.max(1)).max(1);
        for r0 in (0..rows).step_by(step) {
            let r1 = (r0 + step).min(rows);
            let src = self.store.read_rows_f32(name, r0..r1)?;
            let (q, s) = quantize_rows(format, &src, r1 - r0, cols);
            qs[r0 * rb..r1 * rb].copy_from_slice(&q);
            scales[r0 * bp..r1 * bp].copy_from_slice(&s);
        }
        Ok(LinearWeight::Quant { format, qs: Storage::owned(qs), scales: Storage::owned(scales), rows, cols })
    }
}

/// The bf16 tensor `name` (`[rows, cols]`) as a view of the memory-mapped checkpoint, when a
/// load context is installed, the model is bf16 on the CPU and the file stores it as bf16; for
/// tables read a few rows at a time (the embeddings), so nothing is read or faulted in now.
pub fn mapped_bf16(name: &str, rows: usize, cols: usize, dtype: DType, device: &Device) -> Option<Storage<half::bf16>> {
    let ctx = CURRENT.with(|c| c.borrow().clone())?;
    if !device.is_cpu() || dtype != DType::BF16 {
        return None;
    }
    let (stored, shape) = ctx.store.info(name)?;
    if stored != DType::BF16 || shape != [rows, cols] {
        return None;
    }
    let m = ctx.store.mapped(name)?;
    Storage::mapped(m.map, m.offset, rows * cols)
}

/// Values of a weight converted to f32 at once while quantizing (16 MB).
const QUANTIZE_CHUNK_VALUES: usize = 4 << 20;

/// The weight `name` (`[rows, cols]`) as the current load context builds it, or `None` when
/// no context is installed or it leaves this weight to the `VarBuilder` (then the caller reads
/// it as a tensor).
pub fn linear_weight(
    name: &str,
    rows: usize,
    cols: usize,
    dtype: DType,
    device: &Device,
) -> Option<Result<LinearWeight>> {
    let ctx = CURRENT.with(|c| c.borrow().clone())?;
    ctx.weight(name, rows, cols, dtype, device)
}
