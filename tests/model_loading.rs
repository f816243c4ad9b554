//! Model loading: local folders (single file and sharded), the hub cache in offline mode
//! (one clear error when the model is missing), bad `--model` values.

use std::path::Path;

use candle_core::{DType, Device};
use docseek::model::loader::{open_weights, resolve_model_dir, weight_files};
use docseek::model::synth::{config_json, decoder_tensor_specs, write_config_and_tokenizer, write_weights, SynthDtype};
use docseek::model::Architecture;
use docseek::model::{DeepseekDecoder, DeepseekV2Config, LogitsFor, ModelConfig};

fn decoder_cfg() -> DeepseekV2Config {
    serde_json::from_value(config_json(Architecture::Ocr1, false)["language_config"].clone()).unwrap()
}

fn run_decoder(dir: &Path) -> Vec<f32> {
    let cfg = ModelConfig::from_dir(dir).unwrap();
    let vb = open_weights(dir, DType::F32, &Device::Cpu).unwrap();
    let dec = DeepseekDecoder::load(&cfg.decoder, vb).unwrap();
    let mut cache = dec.new_cache(4).unwrap();
    let logits = dec.forward(&dec.embed(&[0, 128815, 128815, 17]).unwrap(), &mut cache, LogitsFor::Last).unwrap();
    logits.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn single_file_and_sharded_folders_load_the_same_weights() {
    let cfg = decoder_cfg();
    let specs = decoder_tensor_specs(&cfg);
    let single = tempfile::tempdir().unwrap();
    write_config_and_tokenizer(single.path(), &config_json(Architecture::Ocr1, false)).unwrap();
    write_weights(&single.path().join("model.safetensors"), &specs, SynthDtype::F32, 7, None).unwrap();
    assert_eq!(resolve_model_dir(single.path().to_str().unwrap(), "main").unwrap(), single.path());

    // The same tensors split over two shards named by an index, as the hub repos ship them.
    let sharded = tempfile::tempdir().unwrap();
    write_config_and_tokenizer(sharded.path(), &config_json(Architecture::Ocr1, false)).unwrap();
    let (a, b) = specs.split_at(specs.len() / 2);
    let names = ["model-00001-of-000002.safetensors", "model-00002-of-000002.safetensors"];
    write_weights(&sharded.path().join(names[0]), a, SynthDtype::F32, 7, None).unwrap();
    write_weights(&sharded.path().join(names[1]), b, SynthDtype::F32, 7, None).unwrap();
    let map: serde_json::Map<String, serde_json::Value> = a
        .iter()
        .map(|(n, _)| (n.clone(), names[0].into()))
        .chain(b.iter().map(|(n, _)| (n.clone(), names[1].into())))
        .collect();
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(sharded.path().join("model.safetensors.index.json"), index.to_string()).unwrap();
    assert_eq!(weight_files(sharded.path()).unwrap().len(), 2);

    assert_eq!(run_decoder(single.path()), run_decoder(sharded.path()));

    // A shard named by the index but missing is reported by name.
    std::fs::remove_file(sharded.path().join(names[1])).unwrap();
    let err = resolve_model_dir(sharded.path().to_str().unwrap(), "main").unwrap_err().to_string();
    assert!(err.contains(names[1]), "{err}");
}

#[test]
fn offline_hub_id_without_cache_is_one_clear_error() {
    let home = tempfile::tempdir().unwrap();
    // This is the only test in this binary that touches the environment.
    std::env::set_var("HF_HOME", home.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let err = resolve_model_dir("deepseek-ai/DeepSeek-OCR", "main").unwrap_err().to_string();
    std::env::remove_var("HF_HUB_OFFLINE");
    assert!(err.contains("deepseek-ai/DeepSeek-OCR"), "{err}");
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(err.contains("huggingface-cli download"), "{err}");
    assert!(err.contains("--model"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");

    // The same id, cached in the standard layout (refs/main -> snapshots/<commit>/...), loads
    // offline without network.
    let repo = home.path().join("hub").join("models--acme--tiny-ocr");
    let snap = repo.join("snapshots").join("0123abcd");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "0123abcd").unwrap();
    write_config_and_tokenizer(&snap, &config_json(Architecture::Ocr1, false)).unwrap();
    write_weights(&snap.join("model.safetensors"), &decoder_tensor_specs(&decoder_cfg()), SynthDtype::Bf16, 1, None)
        .unwrap();
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let dir = resolve_model_dir("acme/tiny-ocr", "main");
    std::env::remove_var("HF_HUB_OFFLINE");
    assert_eq!(dir.unwrap(), snap);

    // Neither a folder nor a hub id.
    let err = resolve_model_dir("./no/such/folder", "main").unwrap_err().to_string();
    assert!(err.contains("neither a model folder nor a hub id"), "{err}");
    // A folder without weights.
    let empty = tempfile::tempdir().unwrap();
    write_config_and_tokenizer(empty.path(), &config_json(Architecture::Ocr2, false)).unwrap();
    let err = resolve_model_dir(empty.path().to_str().unwrap(), "main").unwrap_err().to_string();
    assert!(err.contains("no .safetensors weights"), "{err}");
}
