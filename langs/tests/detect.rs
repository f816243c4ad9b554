//! Detection on everyday sentences (not from the training corpus) across scripts, and the
//! honest `und` cases.

use docseek_langs::{LanguageDetector, ProfileDetector};

#[test]
fn sentences_in_many_scripts_get_their_language() {
    let cases = [
        ("The quarterly report shows that revenue grew faster than expected this year.", "eng", "Latn"),
        ("Le rapport trimestriel montre que le chiffre d'affaires a augmenté plus vite que prévu.", "fra", "Latn"),
        ("Der Quartalsbericht zeigt, dass der Umsatz in diesem Jahr schneller gewachsen ist.", "deu", "Latn"),
        ("El informe trimestral muestra que los ingresos crecieron más rápido de lo esperado.", "spa", "Latn"),
        ("Kwartalny raport pokazuje, że przychody rosły szybciej, niż się spodziewano.", "pol", "Latn"),
        ("Ripoti ya robo mwaka inaonyesha kwamba mapato yaliongezeka kwa kasi kuliko ilivyotarajiwa.", "swh", "Latn"),
        ("Квартальный отчёт показывает, что выручка в этом году росла быстрее, чем ожидалось.", "rus", "Cyrl"),
        ("Квартальний звіт показує, що виручка цього року зростала швидше, ніж очікувалося.", "ukr", "Cyrl"),
        ("يظهر التقرير الفصلي أن الإيرادات نمت هذا العام بوتيرة أسرع من المتوقع.", "arb", "Arab"),
        ("گزارش فصلی نشان می‌دهد که درآمد امسال سریع‌تر از انتظار رشد کرده است.", "pes", "Arab"),
        ("הדוח הרבעוני מראה שההכנסות גדלו השנה מהר מהצפוי.", "heb", "Hebr"),
        ("तिमाही रिपोर्ट से पता चलता है कि इस साल राजस्व उम्मीद से तेज़ी से बढ़ा है।", "hin", "Deva"),
        ("রিপোর্টে দেখা যাচ্ছে যে এই বছর আয় প্রত্যাশার চেয়ে দ্রুত বেড়েছে।", "ben", "Beng"),
        ("รายงานรายไตรมาสแสดงให้เห็นว่ารายได้ปีนี้เติบโตเร็วกว่าที่คาดไว้", "tha", "Thai"),
        ("ეს ანგარიში აჩვენებს, რომ შემოსავალი მოსალოდნელზე სწრაფად გაიზარდა.", "kat", "Geor"),
        ("Η τριμηνιαία έκθεση δείχνει ότι τα έσοδα αυξήθηκαν ταχύτερα από το αναμενόμενο.", "ell", "Grek"),
        ("季度报告显示，今年的收入增长速度超过了预期，利润也明显提高。", "cmn", "Hans"),
        ("季度報告顯示，今年的收入增長速度超過了預期，利潤也明顯提高。", "cmn", "Hant"),
        ("四半期報告書によると、今年の売上高は予想よりも速く伸びました。", "jpn", "Jpan"),
        ("분기 보고서에 따르면 올해 매출은 예상보다 빠르게 증가했습니다.", "kor", "Kore"),
        ("ሪፖርቱ እንደሚያሳየው ገቢው በዚህ ዓመት ከተጠበቀው በላይ በፍጥነት አድጓል።", "amh", "Ethi"),
        ("ཚན་རིག་དང་ལག་རྩལ་གྱི་ཡར་རྒྱས་ལ་བརྟེན་ནས་འཚོ་བའི་ཆ་རྐྱེན་ལེགས་སུ་ཕྱིན་ཡོད།", "bod", "Tibt"),
    ];
    let det = ProfileDetector::global();
    let mut wrong = Vec::new();
    for (text, code, script) in cases {
        let d = det.detect(text);
        if d.code != code || d.script != script {
            wrong.push(format!("{code}/{script} -> {}/{} ({:.2}): {text}", d.code, d.script, d.confidence));
        }
        assert!((0.0..=1.0).contains(&d.confidence));
    }
    assert!(wrong.is_empty(), "misdetected:\n{}", wrong.join("\n"));
}

#[test]
fn text_without_two_letters_is_und() {
    let det = ProfileDetector::global();
    for text in ["", "   ", "2024-12-31", "§ 12.3 (b)", "x"] {
        let d = det.detect(text);
        assert_eq!(d.code, "und", "{text:?} -> {d:?}");
        assert_eq!(d.confidence, 0.0);
    }
    assert_eq!(det.detect("12.5%").script, "Zyyy");
}

#[test]
fn short_han_is_chinese_with_japanese_as_the_alternative() {
    let d = ProfileDetector::global().detect("合計金額");
    assert_eq!((d.code.as_ref(), d.script.as_ref()), ("cmn", "Hant"), "{d:?}");
    assert!(d.confidence <= docseek_langs::detector::SHORT_HAN_CHINESE, "{d:?}");
    assert_eq!(d.alternatives.first().map(|a| a.code.as_ref()), Some("jpn"), "{d:?}");
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["alternatives"][0]["code"], "jpn");
}

#[test]
fn single_words_and_word_pairs_get_a_calibrated_answer() {
    let det = ProfileDetector::global();
    let cases = [
        ("Wahrscheinlichkeit", "deu"),
        ("gouvernement", "fra"),
        ("ayuntamiento", "spa"),
        ("the weather", "eng"),
        ("przedsiębiorstwo", "pol"),
        ("kuitenkin", "fin"),
        ("правительство", "rus"),
    ];
    let mut wrong = Vec::new();
    for (text, code) in cases {
        let d = det.detect(text);
        if d.code != code {
            wrong.push(format!("{text} -> {d:?}"));
        }
        assert!(d.confidence > 0.0 && d.confidence <= 1.0);
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn close_neighbours_are_told_apart_by_their_words() {
    let det = ProfileDetector::global();
    let cases = [
        ("Vlada je u četvrtak usvojila prijedlog zakona o proračunu za sljedeću godinu.", "hrv"),
        ("Влада је у четвртак усвојила предлог закона о буџету за следећу годину.", "srp"),
        ("Kerajaan akan memperkenalkan dasar baharu untuk membantu peniaga kecil tahun hadapan.", "zlm"),
        ("Pemerintah akan memperkenalkan kebijakan baru untuk membantu pedagang kecil tahun depan.", "ind"),
        ("Regjeringa vil leggja fram eit nytt forslag om skatt for kommunane i haust.", "nno"),
        ("Regjeringen vil legge frem et nytt forslag om skatt for kommunene i høst.", "nob"),
    ];
    let mut wrong = Vec::new();
    for (text, code) in cases {
        let d = det.detect(text);
        if d.code != code {
            wrong.push(format!("{code}: {text} -> {d:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn script_variants_are_detected() {
    // Held-out UDHR paragraphs (index 4 of each file, never trained on).
    let cases = [
        ("БУДУЋИ да је битно да се унапрећује развој пријатељских односа измећу народа,", "bos", "Cyrl"),
        (
            "Бирлешен Миллетлер Гурамасы өз Уставында адамың эсасы хукукларына, адамзат шахсыетиниң гымматына",
            "tuk",
            "Cyrl",
        ),
        ("döletler ara dosttluq munasiwetning tereqqiyatini algha sürüsh zörürluki.", "uig", "Latn"),
        ("بهاواساڽ عداله ڤنتيڠ باڬي مماجوكن ڤركمبڠن ڤرهوبوڠن ڤرصحابتن د انتارا نڬارا٢.", "zlm", "Arab"),
        ("人權沛得法律保衞抵每𠊛空𦄾沛浽亂如羅辦法𡳳窮抵挵吏制度強權吧壓逼、", "vie", "Hani"),
    ];
    let det = ProfileDetector::global();
    let mut wrong = Vec::new();
    for (text, code, script) in cases {
        let d = det.detect(text);
        if (d.code.as_ref(), d.script.as_ref()) != (code, script) {
            wrong.push(format!("{code}-{script}: {text} -> {d:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn mixed_text_lowers_confidence() {
    let det = ProfileDetector::global();
    let pure = det.detect("Квартальный отчёт показывает рост выручки");
    let mixed = det.detect("Квартальный отчёт показывает рост выручки quarterly report shows revenue growth");
    assert_eq!(pure.code, "rus");
    assert!(mixed.confidence < pure.confidence, "{mixed:?} vs {pure:?}");
}

#[test]
fn kanji_only_japanese_and_weak_chinese_evidence() {
    let det = ProfileDetector::global();
    // Shinjitai 変 is not used in Chinese: a kana-less Japanese table heading.
    let d = det.detect("連結株主資本等変動計算書");
    assert_eq!((d.code.as_ref(), d.script.as_ref()), ("jpn", "Jpan"));
    // Chinese with strong Simplified evidence is more confident than without any.
    let strong = det.detect("季度报告显示今年的收入增长速度超过了预期");
    let weak = det.detect("人人生而自由在尊严和权利上一律平等");
    assert_eq!(strong.code, "cmn");
    assert!(strong.confidence > weak.confidence, "{strong:?} {weak:?}");
}
