//! Mixed-language spans: byte offsets, scripts and languages of the runs of a block.

use docseek_langs::{LanguageDetector, ProfileDetector, Span};

fn describe<'a>(text: &'a str, spans: &[Span]) -> Vec<(&'a str, String, String)> {
    spans.iter().map(|s| (&text[s.start..s.end], s.code.to_string(), s.script.to_string())).collect()
}

fn assert_covers(text: &str, spans: &[Span]) {
    assert_eq!(spans.first().map(|s| s.start), Some(0));
    assert_eq!(spans.last().map(|s| s.end), Some(text.len()));
    for w in spans.windows(2) {
        assert_eq!(w[0].end, w[1].start);
    }
}

#[test]
fn chinese_paragraph_with_english_terms() {
    let text = "我们在这个项目中使用了 Transformer 模型，并且在大规模的数据集上进行了训练和评估。";
    let spans = ProfileDetector::global().spans(text);
    assert_covers(text, &spans);
    let d = describe(text, &spans);
    assert_eq!(d.len(), 3, "{d:?}");
    assert_eq!((d[0].1.as_str(), d[0].2.as_str()), ("cmn", "Hans"));
    assert_eq!(d[1].0, "Transformer ");
    assert_eq!(d[1].2, "Latn");
    assert_eq!(d[2].2, "Hans");
}

#[test]
fn arabic_line_with_western_digits_is_one_arabic_span() {
    let text = "نمت الإيرادات في عام 2024 بنسبة 12.5% مقارنة بالعام الماضي";
    let spans = ProfileDetector::global().spans(text);
    assert_eq!(describe(text, &spans), vec![(text, "arb".to_string(), "Arab".to_string())]);
}

#[test]
fn sentences_in_two_languages_of_one_script() {
    let en = "The annual report describes the results of the company in detail. ";
    let de = "Der Jahresbericht beschreibt die Ergebnisse des Unternehmens im Detail und sehr ausführlich.";
    let text = format!("{en}{de}");
    let spans = ProfileDetector::global().spans(&text);
    assert_covers(&text, &spans);
    let d = describe(&text, &spans);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!((d[0].0, d[0].1.as_str()), (en, "eng"));
    assert_eq!((d[1].0, d[1].1.as_str()), (de, "deu"));
}

#[test]
fn russian_with_a_greek_formula_and_symbols_only() {
    let text = "Коэффициент α равен отношению площадей, как показано выше в таблице.";
    let spans = ProfileDetector::global().spans(text);
    assert_covers(text, &spans);
    assert!(spans.iter().any(|s| s.script == "Grek" && &text[s.start..s.end] == "α "));
    assert_eq!(spans[0].code, "rus");

    let spans = ProfileDetector::global().spans("12 345,00 €");
    assert_eq!(spans.len(), 1);
    assert_eq!((spans[0].code.as_ref(), spans[0].script.as_ref()), ("und", "Zyyy"));
    assert!(ProfileDetector::global().spans("").is_empty());
}
