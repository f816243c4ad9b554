//! Routing: direction, line joining, de-hyphenation, normalisation, support, and the
//! per-document aggregate.

use docseek_langs::router::Dir;
use docseek_langs::{DocumentLanguages, LanguageDetector, LineJoin, ProfileDetector, Router, Support};

fn route(text: &str) -> docseek_langs::ProcessedText {
    let d = ProfileDetector::global().detect(text);
    Router::global().process(text, &d)
}

#[test]
fn right_to_left_scripts_get_rtl_and_keep_logical_order() {
    let r = Router::global();
    for (code, script) in
        [("arb", "Arab"), ("heb", "Hebr"), ("pes", "Arab"), ("urd", "Arab"), ("div", "Thaa"), ("aii", "Syrc")]
    {
        assert_eq!(r.profile(code, script).dir, Dir::Rtl, "{code}");
    }
    for (code, script) in [("eng", "Latn"), ("cmn", "Hans"), ("hin", "Deva"), ("rus", "Cyrl")] {
        assert_eq!(r.profile(code, script).dir, Dir::Ltr, "{code}");
    }
    assert_eq!(r.profile("und", "Zyyy").dir, Dir::Auto);

    let text = "يظهر التقرير الفصلي أن الإيرادات\nنمت هذا العام بنسبة 12% أسرع من المتوقع.";
    let p = route(text);
    assert_eq!(p.code, "arb");
    assert_eq!(p.dir, Dir::Rtl);
    assert_eq!(p.dir.html(), "rtl");
    // Logical order is kept: the text is the input with the line break joined by a space.
    assert_eq!(p.text, text.replace('\n', " "));
}

#[test]
fn cjk_lines_join_without_spaces_and_others_with() {
    let p = route("季度报告显示，今年的收入增长\n速度超过了预期，利润也明显提高。");
    assert_eq!(p.code, "cmn");
    assert_eq!(p.text, "季度报告显示，今年的收入增长速度超过了预期，利润也明显提高。");
    assert_eq!(p.lines_joined, 1);

    let p = route("四半期報告書によると、今年の売上高は\n予想よりも速く伸びました。");
    assert_eq!(p.code, "jpn");
    assert!(!p.text.contains(' ') && !p.text.contains('\n'), "{}", p.text);

    let p = route("รายงานรายไตรมาสแสดงให้เห็นว่า\nรายได้ปีนี้เติบโตเร็วกว่าที่คาดไว้");
    assert_eq!(p.code, "tha");
    assert!(!p.text.contains(' '), "{}", p.text);

    // Korean writes spaces between words: lines join with a space.
    let p = route("분기 보고서에 따르면 올해 매출은\n예상보다 빠르게 증가했습니다.");
    assert_eq!(p.code, "kor");
    assert_eq!(p.text, "분기 보고서에 따르면 올해 매출은 예상보다 빠르게 증가했습니다.");

    // A Latin word at a break inside Chinese keeps a space.
    assert_eq!(Router::global().profile("cmn", "Hans").line_join, LineJoin::None);
    let d = ProfileDetector::global().detect("我们使用的模型是一个大型的语言模型");
    assert_eq!(
        Router::global().process("我们使用的模型是\nTransformer 架构", &d).text,
        "我们使用的模型是 Transformer 架构"
    );
}

#[test]
fn dehyphenation_only_for_hyphenating_languages() {
    let p = route("The committee considered the recom-\nmendation of the working group carefully.");
    assert_eq!(p.code, "eng");
    assert_eq!(p.text, "The committee considered the recommendation of the working group carefully.");
    assert_eq!(p.hyphens_removed, 1);

    // An upper-case continuation keeps the hyphen (a compound or a name), joined without space.
    let p = route("The meeting was chaired by Jean-\nPaul Sartre and the committee of the group.");
    assert!(p.text.contains("Jean-Paul"), "{}", p.text);
    assert_eq!(p.hyphens_removed, 0);

    let p = route("Der Ausschuss hat die Empfeh-\nlung der Arbeitsgruppe sorgfältig geprüft.");
    assert_eq!(p.code, "deu");
    assert!(p.text.contains("Empfehlung"), "{}", p.text);

    // Vietnamese does not hyphenate: a line-final hyphen stays.
    let r = Router::global();
    assert!(!r.profile("vie", "Latn").dehyphenate);
    assert!(!r.profile("arb", "Arab").dehyphenate);
    assert!(!r.profile("cmn", "Hans").dehyphenate);
    let d = ProfileDetector::global().detect("Mọi người sinh ra đều được tự do và bình đẳng về nhân phẩm");
    assert_eq!(d.code, "vie");
    assert_eq!(r.process("tự do -\nbình đẳng", &d).text, "tự do -bình đẳng");

    // A soft hyphen at a break always goes.
    let d = ProfileDetector::global().detect("The committee considered the recommendation carefully");
    assert_eq!(r.process("recom\u{AD}\nmendation", &d).text, "recommendation");
}

#[test]
fn paragraphs_stay_apart_and_normalisation_is_safe() {
    let d = ProfileDetector::global().detect("The committee considered the recommendation carefully");
    let p = Router::global().process("First line\nsecond line\n\nNew paragraph ﬁnal x²  \n", &d);
    assert_eq!(p.text, "First line second line\n\nNew paragraph final x²");
    let mut keep = Router::global().clone();
    keep.join_lines = false;
    assert_eq!(keep.process("a\u{301}\nb", &d).text, "á\nb");
}

#[test]
fn support_levels_and_document_aggregate() {
    let r = Router::global();
    assert_eq!(r.profile("eng", "Latn").support, Support::Good);
    assert_eq!(r.profile("chr", "Cher").support, Support::Fallback);

    let det = ProfileDetector::global();
    let mut doc = DocumentLanguages::new();
    doc.add_text(det, "يظهر التقرير الفصلي أن الإيرادات نمت هذا العام بوتيرة أسرع من المتوقع بكثير.");
    doc.add_text(det, "يظهر التقرير الفصلي أن الإيرادات نمت هذا العام.");
    doc.add_text(det, "Quarterly report 2024");
    doc.add_text(det, "12.5%");
    assert_eq!(doc.primary().code, "arb");
    assert_eq!(doc.dir(r), Dir::Rtl);
    let langs = doc.languages();
    assert_eq!(langs[0].code, "arb");
    assert!((langs.iter().map(|l| l.share).sum::<f32>() - 1.0).abs() < 1e-4);
}
