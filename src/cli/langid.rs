//! `docseek langid`: the language and script of each input line (one result per line, in
//! order; `und` for empty or undecidable lines), as text or JSON, optionally with spans.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use docseek_langs::{Detection, LanguageDetector, ProfileDetector};
use serde::Serialize;

/// Arguments of `docseek langid`.
#[derive(Debug, clap::Args)]
pub struct LangidArgs {
    /// Input file, or `-` for standard input. Each line is detected on its own.
    #[arg(default_value = "-")]
    pub input: String,
    /// Print one JSON object per line: {"code", "bcp47", "name", "script", "confidence"}, plus
    /// "alternatives" (code, bcp47, script, confidence) when the line fits a second language.
    #[arg(long)]
    pub json: bool,
    /// Add the runs of each line by script and language (byte offsets into the line).
    #[arg(long)]
    pub spans: bool,
}

/// A span as printed: byte offsets into the line, language, script.
#[derive(Debug, Serialize)]
struct SpanOut<'a> {
    start: usize,
    end: usize,
    code: &'a str,
    script: &'a str,
}

/// One output line in JSON.
#[derive(Debug, Serialize)]
struct LineOut<'a> {
    #[serde(flatten)]
    detection: &'a Detection,
    #[serde(skip_serializing_if = "Option::is_none")]
    spans: Option<Vec<SpanOut<'a>>>,
}

/// Runs `docseek langid`.
pub fn run(args: LangidArgs) -> anyhow::Result<ExitCode> {
    let reader: Box<dyn Read> = if args.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&args.input).with_context(|| format!("cannot open {}", args.input))?)
    };
    let detector = ProfileDetector::global();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).with_context(|| format!("cannot read {}", args.input))?;
        if n == 0 {
            break;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        // Invalid UTF-8 is replaced (U+FFFD) so every input line still gets one result.
        let line = String::from_utf8_lossy(&buf);
        write_result(&mut out, detector, &line, &args)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_result(out: &mut impl Write, detector: &ProfileDetector, line: &str, args: &LangidArgs) -> anyhow::Result<()> {
    let mut d = detector.detect(line);
    d.confidence = (d.confidence * 1e4).round() / 1e4;
    let spans = args.spans.then(|| detector.spans(line));
    if args.json {
        let spans_out = spans.as_ref().map(|v| {
            v.iter().map(|s| SpanOut { start: s.start, end: s.end, code: &s.code, script: &s.script }).collect()
        });
        serde_json::to_writer(&mut *out, &LineOut { detection: &d, spans: spans_out })?;
        writeln!(out)?;
    } else {
        write!(out, "{}\t{}\t{:.4}\t{}", d.code, d.script, d.confidence, d.name)?;
        for s in spans.iter().flatten() {
            write!(out, "\t{}..{}:{}/{}", s.start, s.end, s.code, s.script)?;
        }
        writeln!(out)?;
    }
    Ok(())
}
