//! Finding and opening a checkpoint: `--model` is a local folder or a Hugging Face hub id.
//!
//! Hub ids are fetched with `hf-hub` into the standard cache (`HF_HOME`, default
//! `~/.cache/huggingface/hub`), with a progress bar on stderr; files already cached are used
//! without network. `HF_HUB_OFFLINE=1` forbids the network: a model missing from the cache is
//! then one clear error saying how to get it. Weights are one `model.safetensors` or the shards
//! named by `model.safetensors.index.json`, read tensor by tensor and converted to the chosen
//! dtype.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use docseek_kernels::linear::Quant;

use super::config::DeepseekV2Config;
use super::decoder::DeepseekDecoder;
use super::device::{DeviceSpec, Dtype};
use super::quant_store::{saved_path, LoadContext, SavedQuant};
use super::weights::{SharedSafetensors, StreamingSafetensors};
use super::ModelError;

/// Files every checkpoint folder needs besides the weights.
const REQUIRED_FILES: [&str; 2] = ["config.json", "tokenizer.json"];
/// The shard index of sharded checkpoints.
const INDEX_FILE: &str = "model.safetensors.index.json";
/// The single-file weights name.
const SINGLE_FILE: &str = "model.safetensors";

/// Parses `--device`: `cpu`, `cuda`, `cuda:N` (see [`DeviceSpec`]) and opens it.
pub fn parse_device(spec: &str) -> Result<Device, ModelError> {
    spec.parse::<DeviceSpec>().map_err(ModelError::Config)?.open()
}

/// Parses `--dtype` (see [`Dtype`]); `None` picks [`Dtype::default_for`] the device.
pub fn parse_dtype(spec: Option<&str>, device: &Device) -> Result<DType, ModelError> {
    let dtype = match spec {
        Some(s) => s.parse::<Dtype>().map_err(ModelError::Config)?,
        None => Dtype::default_for(device),
    };
    Ok(dtype.candle())
}

/// Parses `--quant` (`none`, `q8`, `q4`; `None` is `none`) and checks it against the device.
pub fn parse_quant(spec: Option<&str>, device: &Device) -> Result<Quant, ModelError> {
    let q = match spec {
        None => Quant::None,
        Some(s) => s.parse::<Quant>().map_err(ModelError::Config)?,
    };
    check_quant(Some(q), device)
}

/// `--quant` (`None` is `none`) checked against the device: quantized weights run on the CPU
/// only.
pub fn check_quant(quant: Option<Quant>, device: &Device) -> Result<Quant, ModelError> {
    let q = quant.unwrap_or_default();
    if q != Quant::None && !device.is_cpu() {
        return Err(ModelError::Config(format!("--quant {q} runs on the CPU only")));
    }
    Ok(q)
}

/// Whether `HF_HUB_OFFLINE` asks for no network.
fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes" | "ON" | "on"))
}

/// Resolves `--model` to a local folder holding config.json, tokenizer.json and the weights.
pub fn resolve_model_dir(model: &str, revision: &str) -> Result<PathBuf, ModelError> {
    let path = Path::new(model);
    if path.is_dir() {
        check_folder(path)?;
        return Ok(path.to_path_buf());
    }
    if path.exists() || model.starts_with('.') || model.starts_with('/') || model.split('/').count() != 2 {
        return Err(ModelError::Fetch(format!(
            "--model '{model}' is neither a model folder nor a hub id like deepseek-ai/DeepSeek-OCR"
        )));
    }
    fetch_from_hub(model, revision)
}

fn check_folder(dir: &Path) -> Result<(), ModelError> {
    for f in REQUIRED_FILES {
        if !dir.join(f).is_file() {
            return Err(ModelError::Fetch(format!("model folder {} has no {f}", dir.display())));
        }
    }
    weight_files(dir).map(|_| ())
}

/// The safetensors files of a folder: the shards of the index, or `model.safetensors`, or
/// (for hand-made folders) every `*.safetensors` file, sorted.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let index = dir.join(INDEX_FILE);
    if index.is_file() {
        let shards = shard_names(&std::fs::read_to_string(&index)?)?;
        let files: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(ModelError::Fetch(format!("shard {} named by {INDEX_FILE} is missing", missing.display())));
        }
        return Ok(files);
    }
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ModelError::Fetch(format!("model folder {} has no .safetensors weights", dir.display())));
    }
    Ok(files)
}

/// The distinct shard file names of an index json.
fn shard_names(index_json: &str) -> Result<Vec<String>, ModelError> {
    let v: serde_json::Value =
        serde_json::from_str(index_json).map_err(|e| ModelError::Config(format!("{INDEX_FILE}: {e}")))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::Config(format!("{INDEX_FILE} has no weight_map")))?;
    let set: BTreeSet<String> = map.values().filter_map(|s| s.as_str().map(str::to_string)).collect();
    Ok(set.into_iter().collect())
}

/// How to get a model onto a machine without network.
fn offline_hint(model: &str) -> String {
    let cache = hf_hub::Cache::from_env();
    format!(
        "model '{model}' is not in the Hugging Face cache ({}). Download it where there is network \
         (`huggingface-cli download {model}`, then copy the cache or set HF_HOME), or pass \
         --model /path/to/a/folder with config.json, tokenizer.json and the safetensors weights",
        cache.path().display()
    )
}

/// indicatif progress bar for hf-hub downloads.
struct DownloadBar(indicatif::ProgressBar);

impl hf_hub::api::Progress for DownloadBar {
    fn init(&mut self, size: usize, filename: &str) {
        self.0.set_length(size as u64);
        self.0.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        self.0.set_message(filename.to_string());
    }

    fn update(&mut self, size: usize) {
        self.0.inc(size as u64);
    }

    fn finish(&mut self) {
        self.0.finish();
    }
}

fn fetch_from_hub(model: &str, revision: &str) -> Result<PathBuf, ModelError> {
    let repo = hf_hub::Repo::with_revision(model.to_string(), hf_hub::RepoType::Model, revision.to_string());
    let cached = hf_hub::Cache::from_env().repo(repo.clone());
    let from_cache = |f: &str| cached.get(f);
    let api = if hub_offline() {
        None
    } else {
        let api = hf_hub::api::sync::ApiBuilder::from_env()
            .with_progress(false)
            .build()
            .map_err(|e| ModelError::Fetch(format!("hub client: {e}")))?;
        Some(api.repo(repo))
    };
    let get = |f: &str| -> Result<PathBuf, ModelError> {
        if let Some(p) = from_cache(f) {
            return Ok(p);
        }
        let Some(api) = &api else {
            return Err(ModelError::Fetch(format!("{} (HF_HUB_OFFLINE is set)", offline_hint(model))));
        };
        let bar = DownloadBar(indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr()));
        api.download_with_progress(f, bar)
            .map_err(|e| ModelError::Fetch(format!("downloading {f} of {model}: {e}. {}", offline_hint(model))))
    };
    let mut config = None;
    for f in REQUIRED_FILES {
        let p = get(f)?;
        if f == "config.json" {
            config = Some(p);
        }
    }
    // Sharded (index) or single file: prefer the index when it exists.
    match get(INDEX_FILE) {
        Ok(index) => {
            for shard in shard_names(&std::fs::read_to_string(&index)?)? {
                get(&shard)?;
            }
        }
        Err(_) => {
            get(SINGLE_FILE)?;
        }
    }
    let dir = config
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| ModelError::Fetch("cache layout without a snapshot folder".into()))?;
    check_folder(&dir)?;
    Ok(dir)
}

/// A `VarBuilder` over a folder's weights in `dtype` on `device`; tensors are read from the
/// files when a module asks for them (see [`super::weights`]).
pub fn open_weights(dir: &Path, dtype: DType, device: &Device) -> Result<VarBuilder<'static>, ModelError> {
    Ok(open_shared(dir, dtype, device)?.0)
}

/// [`open_weights`], also returning the file index behind the `VarBuilder`.
pub fn open_shared(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<(VarBuilder<'static>, Arc<StreamingSafetensors>), ModelError> {
    let files = weight_files(dir)?;
    let store = Arc::new(StreamingSafetensors::open(&files)?);
    let vb = VarBuilder::from_backend(Box::new(SharedSafetensors(store.clone())), dtype, device.clone());
    Ok((vb, store))
}

/// Loads the decoder of a checkpoint folder with its linear weights stored per `quant`: bf16
/// weights mapped from the file without a copy, or q8/q4 from the saved quantized file
/// (`docseek quantize`) when one matches, else quantized now.
pub fn load_decoder(
    dir: &Path,
    cfg: &DeepseekV2Config,
    dtype: DType,
    device: &Device,
    quant: Quant,
) -> Result<DeepseekDecoder, ModelError> {
    let (vb, store) = open_shared(dir, dtype, device)?;
    let saved = match quant {
        Quant::None => None,
        q => SavedQuant::open(&saved_path(dir, q), q, store.fingerprint())?,
    };
    if quant != Quant::None && saved.is_none() {
        tracing::info!(
            "quantizing the decoder to {quant} at load (`docseek quantize` saves the result for fast loads)"
        );
    }
    let ctx = std::rc::Rc::new(LoadContext::new(store, quant, saved));
    Ok(ctx.run(|| DeepseekDecoder::load(cfg, vb))?)
}

/// Quantizes the decoder of `dir` to `quant` and saves it where [`load_decoder`] finds it
/// (`out`, default `dir/docseek-{quant}.safetensors`). Returns the path and the bytes of
/// quantized weights written.
pub fn quantize_to_file(
    dir: &Path,
    cfg: &DeepseekV2Config,
    quant: Quant,
    out: Option<&Path>,
) -> Result<(PathBuf, usize), ModelError> {
    if quant == Quant::None {
        return Err(ModelError::Config("nothing to save for --quant none".into()));
    }
    let (vb, store) = open_shared(dir, DType::BF16, &Device::Cpu)?;
    let fingerprint = store.fingerprint().to_string();
    let ctx = std::rc::Rc::new(LoadContext::new(store, quant, None).recording());
    let decoder = ctx.run(|| DeepseekDecoder::load(cfg, vb))?;
    drop(decoder);
    let weights = ctx.recorded();
    let bytes = weights.iter().map(|(_, w)| w.bytes()).sum();
    let path = out.map(Path::to_path_buf).unwrap_or_else(|| saved_path(dir, quant));
    super::quant_store::save(&path, quant, &fingerprint, &weights)?;
    Ok((path, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_dtypes_parse() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device("tpu").is_err());
        if !cfg!(feature = "cuda") {
            let e = parse_device("cuda:0").unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
            assert!(parse_device("auto").unwrap().is_cpu());
        }
        let native = docseek_kernels::cpu::Isa::active().has_native_bf16();
        assert_eq!(parse_dtype(None, &Device::Cpu).unwrap(), if native { DType::BF16 } else { DType::F32 });
        assert_eq!(parse_quant(Some("Q8"), &Device::Cpu).unwrap(), Quant::Q8);
        assert_eq!(parse_quant(None, &Device::Cpu).unwrap(), Quant::None);
        assert!(parse_quant(Some("q3"), &Device::Cpu).is_err());
        assert_eq!(parse_dtype(Some("BF16"), &Device::Cpu).unwrap(), DType::BF16);
        assert!(parse_dtype(Some("int4"), &Device::Cpu).is_err());
    }

    #[test]
    fn shard_index_lists_each_file_once() {
        let idx = r#"{"metadata":{},"weight_map":{"a":"model-00001-of-000002.safetensors","b":"model-00002-of-000002.safetensors","c":"model-00001-of-000002.safetensors"}}"#;
        assert_eq!(
            shard_names(idx).unwrap(),
            vec!["model-00001-of-000002.safetensors", "model-00002-of-000002.safetensors"]
        );
    }
}
