//! `docseek ocr … --submit URL`: sends the inputs to a docseek service (one server or a
//! fleet's API nodes behind a load balancer) as jobs, waits for them, and writes their results
//! where a local run would (`<out>/<place in the input tree>.<format>`), with one line per
//! document on stderr. Jobs are submitted up to `--jobs` at a time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::options::OcrOptions;
use crate::pipeline::batch::discover::InputFile;
use crate::pipeline::OutputFormat;

/// Pause between polls of a job's state.
const POLL: Duration = Duration::from_millis(500);
/// Timeout of one HTTP request (uploads included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Pause before resubmitting a document refused with `429`, when no `Retry-After` came.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(2);

/// Where to send the documents and how.
#[derive(Debug, Clone)]
pub struct SubmitPlan {
    /// The service's base URL (`http://host:port`).
    pub url: String,
    /// Bearer key, when the service needs one.
    pub api_key: Option<String>,
    /// Output folder.
    pub out: PathBuf,
    /// Formats to fetch (`raw` is not served by the API).
    pub formats: Vec<OutputFormat>,
    /// Options sent with every document.
    pub options: OcrOptions,
    /// Documents in flight at once.
    pub parallel: usize,
}

/// The query string carrying `options` (the service's own defaults are not used).
fn option_query(options: &OcrOptions) -> anyhow::Result<String> {
    let Value::Object(map) = serde_json::to_value(options)? else { anyhow::bail!("options are not an object") };
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (key, value) in map {
        match value {
            Value::Null => {}
            Value::String(s) => {
                q.append_pair(&key, &s);
            }
            Value::Array(items) => {
                let joined: Vec<String> = items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
                if !joined.is_empty() {
                    q.append_pair(&key, &joined.join(","));
                }
            }
            other => {
                q.append_pair(&key, &other.to_string());
            }
        }
    }
    Ok(q.finish())
}

/// Submits every input, waits, and writes the results; the exit code says whether all did.
pub fn run(inputs: Vec<InputFile>, plan: SubmitPlan) -> anyhow::Result<ExitCode> {
    if let Some(raw) = plan.formats.iter().find(|f| **f == OutputFormat::Raw) {
        anyhow::bail!("--submit: the service does not serve the '{}' format; drop it from --format", raw.name());
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
        let query = option_query(&plan.options)?;
        let plan = std::sync::Arc::new(plan);
        let results: Vec<bool> = futures_util::StreamExt::collect(futures_util::StreamExt::buffered(
            futures_util::stream::iter(inputs.into_iter().map(|input| {
                let (client, plan, query) = (client.clone(), plan.clone(), query.clone());
                async move {
                    match one(&client, &plan, &query, &input).await {
                        Ok(state) => {
                            eprintln!("{state:<6} {}", input.path.display());
                            state == "done"
                        }
                        Err(e) => {
                            eprintln!("error  {}: {e:#}", input.path.display());
                            false
                        }
                    }
                }
            })),
            plan.parallel.max(1),
        ))
        .await;
        let failed = results.iter().filter(|ok| !**ok).count();
        eprintln!("{} documents, {} done, {failed} failed", results.len(), results.len() - failed);
        Ok(ExitCode::from(if failed == 0 { super::ocr::EXIT_OK } else { super::ocr::EXIT_SOME_FAILED }))
    })
}

fn authorize(req: reqwest::RequestBuilder, plan: &SubmitPlan) -> reqwest::RequestBuilder {
    match &plan.api_key {
        Some(key) => req.bearer_auth(key),
        None => req,
    }
}

/// Sends one document, waits for it and writes its outputs; returns its final state.
async fn one(client: &reqwest::Client, plan: &SubmitPlan, query: &str, input: &InputFile) -> anyhow::Result<String> {
    let bytes = tokio::fs::read(&input.path).await.with_context(|| format!("cannot read {}", input.path.display()))?;
    let base = plan.url.trim_end_matches('/');
    let name = input.path.file_name().and_then(|n| n.to_str()).unwrap_or("document");
    let url = format!(
        "{base}/v1/jobs?{query}&filename={}",
        form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    );
    let id = loop {
        let resp = authorize(client.post(&url).body(bytes.clone()), plan).send().await?;
        let status = resp.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_RETRY_AFTER);
            tokio::time::sleep(wait).await;
            continue;
        }
        let body: Value = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
        anyhow::ensure!(
            status.is_success(),
            "the service answered {status}: {}",
            body["error"]["message"].as_str().unwrap_or("")
        );
        break body["id"].as_str().context("no job id in the answer")?.to_string();
    };
    let state = loop {
        let resp = authorize(client.get(format!("{base}/v1/jobs/{id}")), plan).send().await?;
        let v: Value = serde_json::from_slice(&resp.bytes().await?)?;
        let state = v["state"].as_str().unwrap_or("").to_string();
        if ["done", "failed", "cancelled"].contains(&state.as_str()) {
            if state != "done" {
                anyhow::bail!("job {id} {state}: {}", v["error"]["message"].as_str().unwrap_or(""));
            }
            break state;
        }
        tokio::time::sleep(POLL).await;
    };
    for format in &plan.formats {
        let resp =
            authorize(client.get(format!("{base}/v1/jobs/{id}/result?format={}", format.name())), plan).send().await?;
        anyhow::ensure!(resp.status().is_success(), "fetching the {} result: {}", format.name(), resp.status());
        let body = resp.bytes().await?;
        write_atomically(&output_path(&plan.out, &input.rel, *format), &body)?;
    }
    Ok(state)
}

/// `<out>/<rel without extension><suffix>`, as the local batch run names outputs.
pub fn output_path(out: &Path, rel: &Path, format: OutputFormat) -> PathBuf {
    let stem = rel.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "document".into());
    out.join(rel.parent().unwrap_or(Path::new(""))).join(format!("{stem}{}", format.suffix()))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Written aside and renamed: never half a file under the final name.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_travel_as_query_fields() {
        let o = OcrOptions { languages: vec!["hrv".into(), "bos".into()], ..OcrOptions::default() };
        let q = option_query(&o).unwrap();
        let fields = crate::server::intake::query_fields(Some(&q));
        // The service reads them back into the same options.
        let back = crate::server::intake::options_from_fields(&OcrOptions::default(), &fields).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&o).unwrap());
        let p = output_path(Path::new("out"), Path::new("a/b/scan.pdf"), OutputFormat::Pdf);
        assert_eq!(p, Path::new("out/a/b/scan.ocr.pdf"));
    }
}
