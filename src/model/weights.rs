//! A `VarBuilder` backend that reads safetensors tensors on demand with positioned reads, and
//! hands out memory-mapped views of the tensors the CPU kernels read in place.
//!
//! candle's mmap backend keeps every touched page of the files mapped until the builder is
//! dropped, so loading a bf16 checkpoint as f32 peaks at (f32 weights + the whole mapped
//! file). Reading each tensor into a short-lived buffer instead keeps the peak at the loaded
//! weights plus one tensor; the files stay in the page cache, outside the process's RSS.
//! Linear weights that the kernels use as they are stored (bf16) are not copied at all: the
//! file is mapped once ([`StreamingSafetensors::mapped`]) and the layer reads the mapping, so a
//! bf16 model loads in the time it takes to read the small tensors.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use memmap2::Mmap;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Largest safetensors header accepted (the format's own limit is 100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

#[derive(Debug, Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    start: u64,
    len: u64,
}

/// Tensors of one or more safetensors files, located by name, read when asked for.
#[derive(Debug)]
pub struct StreamingSafetensors {
    files: Vec<(PathBuf, File)>,
    entries: HashMap<String, Entry>,
    maps: Vec<OnceLock<Option<Arc<Mmap>>>>,
    fingerprint: String,
}

/// A tensor's bytes inside a mapped file.
#[derive(Debug, Clone)]
pub struct MappedTensor {
    /// The file's mapping.
    pub map: Arc<Mmap>,
    /// Byte offset of the tensor's data.
    pub offset: usize,
    /// Stored dtype.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

fn dtype_of(s: &str) -> Option<DType> {
    Some(match s {
        "F32" => DType::F32,
        "BF16" => DType::BF16,
        "F16" => DType::F16,
        "F64" => DType::F64,
        "U8" => DType::U8,
        "U32" => DType::U32,
        "I64" => DType::I64,
        _ => return None,
    })
}

impl StreamingSafetensors {
    /// Indexes the headers of `paths` (later files win on duplicate names).
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::new();
        let mut entries = HashMap::new();
        let mut hasher = Sha256::new();
        for (i, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
            let mut len = [0u8; 8];
            file.read_exact_at(&mut len, 0)?;
            let n = u64::from_le_bytes(len);
            if n > MAX_HEADER_BYTES {
                candle_core::bail!("{}: safetensors header of {n} bytes is too large", path.display());
            }
            let mut header = vec![0u8; n as usize];
            file.read_exact_at(&mut header, 8)?;
            hasher.update(file.metadata()?.len().to_le_bytes());
            hasher.update(&header);
            let map: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)
                .map_err(|e| candle_core::Error::Msg(format!("{}: bad safetensors header: {e}", path.display())))?;
            for (name, v) in map {
                if name == "__metadata__" {
                    continue;
                }
                let h: HeaderEntry = serde_json::from_value(v)
                    .map_err(|e| candle_core::Error::Msg(format!("{}: tensor {name}: {e}", path.display())))?;
                let dtype = dtype_of(&h.dtype)
                    .ok_or_else(|| candle_core::Error::Msg(format!("tensor {name}: unsupported dtype {}", h.dtype)))?;
                let [a, b] = h.data_offsets;
                let expect = h.shape.iter().product::<usize>() as u64 * dtype.size_in_bytes() as u64;
                if b < a || b - a != expect {
                    candle_core::bail!("{}: tensor {name} has inconsistent offsets", path.display());
                }
                entries.insert(name, Entry { file: i, dtype, shape: h.shape, start: 8 + n + a, len: b - a });
            }
            files.push((path.clone(), file));
        }
        let maps = files.iter().map(|_| OnceLock::new()).collect();
        let fingerprint = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(StreamingSafetensors { files, entries, maps, fingerprint })
    }

    /// A digest of the files' sizes and headers (names, dtypes, shapes, offsets): what a saved
    /// quantized model records to check it was made from these weights.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Stored dtype and shape of a tensor.
    pub fn info(&self, name: &str) -> Option<(DType, &[usize])> {
        self.entries.get(name).map(|e| (e.dtype, e.shape.as_slice()))
    }

    /// The tensor's bytes in a read-only mapping of its file (mapped on first use), or `None`
    /// when there is no such tensor or the file cannot be mapped.
    pub fn mapped(&self, name: &str) -> Option<MappedTensor> {
        let e = self.entries.get(name)?;
        let map = self.maps[e.file]
            .get_or_init(|| {
                // SAFETY: the checkpoint is opened read-only and treated as immutable while the
                // model is loaded, as every safetensors loader does.
                unsafe { Mmap::map(&self.files[e.file].1) }.ok().map(Arc::new)
            })
            .clone()?;
        Some(MappedTensor { map, offset: e.start as usize, dtype: e.dtype, shape: e.shape.clone() })
    }

    /// Rows `rows` of a 2-D tensor as f32 values (read with one positioned read, so
    /// quantizing a large weight needs only a slice of it in memory at a time).
    pub fn read_rows_f32(&self, name: &str, rows: std::ops::Range<usize>) -> Result<Vec<f32>> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() }.bt())?;
        let [n, k] = e.shape[..] else { candle_core::bail!("{name} is not 2-D") };
        if rows.end > n {
            candle_core::bail!("{name}: rows {rows:?} of {n}");
        }
        let es = e.dtype.size_in_bytes();
        let mut buf = vec![0u8; rows.len() * k * es];
        let (path, file) = &self.files[e.file];
        file.read_exact_at(&mut buf, e.start + (rows.start * k * es) as u64)
            .map_err(|err| candle_core::Error::Msg(format!("{}: reading {name}: {err}", path.display())))?;
        Tensor::from_raw_buffer(&buf, e.dtype, &[rows.len(), k], &Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()
    }

    /// Names of every tensor.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    fn read(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() }.bt())?;
        let (path, file) = &self.files[e.file];
        let mut buf = vec![0u8; e.len as usize];
        file.read_exact_at(&mut buf, e.start)
            .map_err(|err| candle_core::Error::Msg(format!("{}: reading {name}: {err}", path.display())))?;
        let t = Tensor::from_raw_buffer(&buf, e.dtype, &e.shape, &Device::Cpu)?;
        drop(buf);
        t.to_dtype(dtype)?.to_device(dev)
    }
}

/// A [`StreamingSafetensors`] shared between a `VarBuilder` and the linear-weight loader
/// ([`super::quant_store::LoadContext`]).
#[derive(Debug, Clone)]
pub struct SharedSafetensors(pub Arc<StreamingSafetensors>);

impl SimpleBackend for SharedSafetensors {
    fn get(&self, s: Shape, name: &str, h: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.0.get(s, name, h, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.0.read(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.entries.contains_key(name)
    }
}

impl SimpleBackend for StreamingSafetensors {
    fn get(&self, s: Shape, name: &str, _h: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let t = self.read(name, dtype, dev)?;
        if t.shape() != &s {
            Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: t.shape().clone(),
            }
            .bt())?
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.read(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }
}
