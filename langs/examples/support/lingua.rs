//! The lingua model crates (crates.io `lingua-<language>-language-model` 1.3.0, Apache-2.0) as
//! training data and held-out test data, shared by the examples. `langs/data/fetch-lingua.sh`
//! downloads them into the cargo registry; this finds them there.
//!
//! A crate's `models/ngrams.fst` maps each lower-cased in-word character n-gram (orders 1-5) to
//! the bits of an f64 natural log: of the unigram's relative frequency for order 1, else of the
//! n-gram's count over its (n-1)-prefix's count. Chaining the prefixes gives the n-gram's count
//! relative to the unigram total, which normalised per order is the distribution we train on.
//! `testdata/{sentences,word-pairs,single-words}.txt` (1000 lines each) are only evaluated on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use docseek_langs::inventory::Inventory;
use docseek_langs::ngram::{hash_chars, is_mark, is_word_char, MAX_ORDER};
use docseek_langs::training::ExternalRow;
use fst::{IntoStreamer, Streamer};

/// The bundled mapping of lingua languages to inventory rows.
const TABLE: &str = include_str!("../../data/lingua.tsv");
/// The model crates' version.
pub const VERSION: &str = "1.3.0";

/// One row of `data/lingua.tsv`.
#[derive(Debug, Clone)]
pub struct LinguaRow {
    /// lingua's language name (as in the crate name).
    pub lingua: String,
    /// Our inventory row key (`code-Script`).
    pub row: String,
    /// `train`, `train-cyrl-latn`, `train-latn-cyrl` or `eval`.
    pub usage: String,
}

/// The rows of `data/lingua.tsv`.
pub fn table() -> Vec<LinguaRow> {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            LinguaRow { lingua: f[0].into(), row: f[1].into(), usage: f[2].into() }
        })
        .collect()
}

/// The languages of the held-out test set: one row per lingua language (no transliterated rows).
pub fn test_languages() -> Vec<LinguaRow> {
    table().into_iter().filter(|r| r.usage == "train" || r.usage == "eval").collect()
}

/// The unpacked crate of a lingua language in the cargo registry.
pub fn crate_dir(lingua: &str) -> Result<PathBuf, String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let name = format!("lingua-{lingua}-language-model-{VERSION}");
    let src = home.join("registry/src");
    for index in std::fs::read_dir(&src).map_err(|e| format!("{}: {e}", src.display()))?.flatten() {
        let dir = index.path().join(&name);
        if dir.is_dir() {
            return Ok(dir);
        }
    }
    Err(format!("{name} not found under {}: run langs/data/fetch-lingua.sh", src.display()))
}

/// The lines of a test file (`sentences`, `word-pairs`, `single-words`).
pub fn testdata(lingua: &str, kind: &str) -> Result<Vec<String>, String> {
    let path = crate_dir(lingua)?.join(format!("testdata/{kind}.txt"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

/// Serbian Cyrillic to Latin (Gaj's alphabet).
const CYRL_LATN: [(char, &str); 30] = [
    ('а', "a"),
    ('б', "b"),
    ('в', "v"),
    ('г', "g"),
    ('д', "d"),
    ('ђ', "đ"),
    ('е', "e"),
    ('ж', "ž"),
    ('з', "z"),
    ('и', "i"),
    ('ј', "j"),
    ('к', "k"),
    ('л', "l"),
    ('љ', "lj"),
    ('м', "m"),
    ('н', "n"),
    ('њ', "nj"),
    ('о', "o"),
    ('п', "p"),
    ('р', "r"),
    ('с', "s"),
    ('т', "t"),
    ('ћ', "ć"),
    ('у', "u"),
    ('ф', "f"),
    ('х', "h"),
    ('ц', "c"),
    ('ч', "č"),
    ('џ', "dž"),
    ('ш', "š"),
];

/// Serbian Cyrillic text in Gaj's Latin alphabet (other characters as they are; an upper-case
/// letter becomes an upper-case first letter: `Љ` is `Lj`).
pub fn serbian_to_latin(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let lower = c.to_lowercase().next().unwrap_or(c);
        match CYRL_LATN.iter().find(|(k, _)| *k == lower) {
            Some((_, latin)) if lower != c => {
                let mut l = latin.chars();
                out.extend(l.next().into_iter().flat_map(char::to_uppercase));
                out.extend(l);
            }
            Some((_, latin)) => out.push_str(latin),
            None => out.push(c),
        }
    }
    out
}

/// Transliterates an n-gram between the two scripts of Serbo-Croatian (`None`: a letter with
/// no counterpart).
fn transliterate(s: &str, usage: &str) -> Option<String> {
    match usage {
        "train-cyrl-latn" => {
            s.chars().map(|c| CYRL_LATN.iter().find(|(k, _)| *k == c).map(|(_, v)| *v)).collect::<Option<String>>()
        }
        "train-latn-cyrl" => {
            let chars: Vec<char> = s.chars().collect();
            let mut out = String::new();
            let mut i = 0;
            while i < chars.len() {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                if let Some((c, _)) = CYRL_LATN.iter().find(|(_, v)| v.chars().count() == 2 && *v == two) {
                    out.push(*c);
                    i += 2;
                } else {
                    out.push(CYRL_LATN.iter().find(|(_, v)| v.chars().eq([chars[i]]))?.0);
                    i += 1;
                }
            }
            Some(out)
        }
        _ => Some(s.to_string()),
    }
}

/// The in-word n-gram distribution of a lingua language for script class `class`: per order
/// 1 to [`MAX_ORDER`], (hash, probability within the order), n-grams of other scripts left out.
pub fn distribution(row: &LinguaRow, class: &str) -> Result<Vec<Vec<(u32, f32)>>, String> {
    let path = crate_dir(&row.lingua)?.join("models/ngrams.fst");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let map = fst::Map::new(bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut joint: HashMap<String, f64> = HashMap::new();
    let mut stream = map.into_stream();
    // Keys come in byte order, so every prefix is seen before the n-grams extending it.
    let mut keys = Vec::new();
    while let Some((k, v)) = stream.next() {
        keys.push((String::from_utf8_lossy(k).into_owned(), f64::from_bits(v)));
    }
    for (key, log_p) in &keys {
        let n = key.chars().count();
        let value = if n == 1 {
            *log_p
        } else {
            let prefix: String = key.chars().take(n - 1).collect();
            match joint.get(&prefix) {
                Some(p) => p + log_p,
                None => continue,
            }
        };
        joint.insert(key.clone(), value);
    }
    let mut per_order: Vec<HashMap<u32, f64>> = vec![HashMap::new(); MAX_ORDER];
    for (key, log_p) in &joint {
        let Some(t) = transliterate(key, &row.usage) else {
            continue;
        };
        let chars: Vec<char> = t.chars().collect();
        if chars.is_empty() || chars.len() > MAX_ORDER || !chars.iter().all(|&c| is_word_char(c, class) && !is_mark(c))
        {
            continue;
        }
        *per_order[chars.len() - 1].entry(hash_chars(&chars)).or_insert(0.0) += log_p.exp();
    }
    Ok(per_order
        .into_iter()
        .map(|m| {
            let total: f64 = m.values().sum();
            m.into_iter().map(|(h, p)| (h, (p / total) as f32)).collect()
        })
        .collect())
}

/// The external distributions of every `train*` row of the table that is in the inventory.
pub fn external(inventory: &Inventory) -> Result<docseek_langs::training::External, String> {
    let mut out = docseek_langs::training::External::new();
    for row in table().into_iter().filter(|r| r.usage.starts_with("train")) {
        let Some(inv) = inventory.by_key(&row.row) else {
            return Err(format!("{} not in the inventory", row.row));
        };
        let ext = ExternalRow { orders: distribution(&row, inv.class())?, prior: row.usage == "train" };
        out.insert(row.row.clone(), ext);
    }
    Ok(out)
}

/// The folder of the lingua crates, for messages.
pub fn describe() -> String {
    crate_dir("english").map_or_else(|e| e, |d| d.parent().unwrap_or(Path::new("?")).display().to_string())
}
