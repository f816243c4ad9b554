//! The language inventory: which (language, script) pairs the detector can answer, with their
//! BCP-47 tags, names and training sources. Data in `data/languages.tsv`, parsed once.

use std::sync::OnceLock;

use crate::script::HAN;
use crate::LangsError;

/// The bundled inventory table.
const LANGUAGES_TSV: &str = include_str!("../data/languages.tsv");

/// One (language, script) the detector can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageRow {
    /// ISO 639-3 code.
    pub code: &'static str,
    /// ISO 15924 script code (`Hans`/`Hant` for Chinese, `Jpan`, `Kore`).
    pub script: &'static str,
    /// BCP-47 tag.
    pub bcp47: &'static str,
    /// English name.
    pub name: &'static str,
    /// Corpus files (UDHR keys) the profile is trained from; empty for script-decided rows.
    pub sources: Vec<&'static str>,
}

impl LanguageRow {
    /// The row's unique key, `code-Script` (e.g. `cmn-Hant`).
    pub fn key(&self) -> String {
        format!("{}-{}", self.code, self.script)
    }

    /// The script class whose model decides this row (`Hani` for `Hans`/`Hant`).
    pub fn class(&self) -> &'static str {
        class_of_script(self.script)
    }
}

/// The detection class a row script belongs to.
pub fn class_of_script(script: &'static str) -> &'static str {
    match script {
        "Hans" | "Hant" => HAN,
        s => s,
    }
}

/// The parsed inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    rows: Vec<LanguageRow>,
}

impl Inventory {
    /// The bundled inventory, parsed on first use.
    pub fn global() -> &'static Inventory {
        static INVENTORY: OnceLock<Inventory> = OnceLock::new();
        INVENTORY.get_or_init(|| Inventory::parse(LANGUAGES_TSV).expect("bundled data/languages.tsv is valid (tested)"))
    }

    /// Parses an inventory table (tab-separated, `#` comments, one header line).
    pub fn parse(tsv: &'static str) -> Result<Self, LangsError> {
        let mut rows = Vec::new();
        let mut lines = tsv.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty());
        let header = lines.next().ok_or_else(|| LangsError::BadTable("empty inventory".into()))?;
        if header != "code\tscript\tbcp47\tname\tsources" {
            return Err(LangsError::BadTable(format!("unexpected header {header:?}")));
        }
        for line in lines {
            let f: Vec<&'static str> = line.split('\t').collect();
            if f.len() != 5 {
                return Err(LangsError::BadTable(format!("row needs 5 fields: {line:?}")));
            }
            let sources = if f[4] == "-" { Vec::new() } else { f[4].split(',').collect() };
            rows.push(LanguageRow { code: f[0], script: f[1], bcp47: f[2], name: f[3], sources });
        }
        let mut keys: Vec<String> = rows.iter().map(LanguageRow::key).collect();
        keys.sort();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(LangsError::BadTable(format!("duplicate row {}", w[0])));
        }
        Ok(Self { rows })
    }

    /// All rows, in table order.
    pub fn rows(&self) -> &[LanguageRow] {
        &self.rows
    }

    /// The row with key `code-Script`.
    pub fn by_key(&self, key: &str) -> Option<&LanguageRow> {
        self.rows.iter().find(|r| r.key() == key)
    }

    /// The first row of a language code (any script).
    pub fn by_code(&self, code: &str) -> Option<&LanguageRow> {
        self.rows.iter().find(|r| r.code == code)
    }

    /// The rows decided within a script class.
    pub fn rows_of_class<'a>(&'a self, class: &'a str) -> impl Iterator<Item = &'a LanguageRow> + 'a {
        self.rows.iter().filter(move |r| r.class() == class)
    }

    /// Number of distinct ISO 639-3 codes.
    pub fn language_count(&self) -> usize {
        let mut codes: Vec<&str> = self.rows.iter().map(|r| r.code).collect();
        codes.sort_unstable();
        codes.dedup();
        codes.len()
    }

    /// Distinct script classes.
    pub fn classes(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.rows.iter().map(LanguageRow::class).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_inventory_covers_over_200_languages_and_30_scripts() {
        let inv = Inventory::global();
        assert!(inv.language_count() >= 200, "{}", inv.language_count());
        assert!(inv.classes().len() >= 30, "{:?}", inv.classes());
        assert_eq!(inv.by_key("cmn-Hant").unwrap().bcp47, "zh-Hant");
        assert_eq!(inv.by_code("eng").unwrap().name, "English");
    }
}
