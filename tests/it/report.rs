//! `zeekml report` on warehouses the real binary built: a trained model,
//! the beacon stages and scheduled scoring on a real capture, and
//! warehouses missing tables.

use std::path::Path;

use crate::{generate, scalar, uwf_pipeline, zeekml};

const SECTIONS: [&str; 6] = ["model", "data", "runs", "beacons", "hosts", "alerts"];

/// Runs `zeekml report` and returns the page and the command's output.
fn report(wh: &Path, out: &Path) -> (String, String) {
    let run = zeekml()
        .args(["report", "--warehouse"])
        .arg(wh)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run zeekml report");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let html = std::fs::read_to_string(out).expect("report written");
    (html, String::from_utf8_lossy(&run.stdout).into_owned())
}

/// The HTML of one `<section id="...">`.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let open = format!("<section id=\"{id}\">");
    let start = html
        .find(&open)
        .unwrap_or_else(|| panic!("no section {id}"));
    let end = html[start..].find("</section>").expect("section end") + start;
    &html[start..end]
}

/// The texts of the SVG `<text>` elements in `html`, trimmed.
fn svg_texts(html: &str) -> Vec<String> {
    html.split("<text ")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// A whole number as the report prints it (thousands separated by commas).
fn thousands(text: &str) -> String {
    let groups: Vec<&str> = text
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).unwrap())
        .collect();
    groups.join(",")
}

/// The page fetches nothing: no scripts, no external style or font, and
/// the only `http://` text is the SVG namespace name on each inline
/// `<svg>` (an identifier the browser never requests).
fn assert_self_contained(html: &str) {
    let lower = html.to_lowercase();
    for banned in [
        "<script", "<link", "<img", "<iframe", "@import", "url(", "src=", "https://",
    ] {
        assert!(!lower.contains(banned), "the report contains {banned}");
    }
    let without_ns = lower.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !without_ns.contains("http://"),
        "an http:// reference besides the SVG namespace"
    );
    for (i, _) in lower.match_indices("href=\"") {
        assert!(
            lower[i + 6..].starts_with('#'),
            "a link that is not to a section: {}",
            &lower[i..i + 40]
        );
    }
}

#[test]
fn report_draws_every_section_with_the_metrics_figures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("uwf");
    let wh = tmp.path().join("wh");
    generate(&data, 30_000, 7);
    let pipeline = uwf_pipeline(tmp.path(), Some("{ rule = \"best_f1\" }"), "");
    crate::run_with_input(&pipeline, &data, &wh);
    // The NjRAT capture: scored by the model into `alerts`, and through the
    // beacon stages into `beacons`, `beacon_conns` and `hosts`.
    crate::score_njrat_day(tmp.path(), &wh);

    let out = tmp.path().join("report.html");
    let (html, stdout) = report(&wh, &out);
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..40]);
    for id in SECTIONS {
        let s = section(&html, id);
        assert!(s.contains("<svg"), "section {id} has no chart");
        assert!(!s.contains("class=\"note\">Not in this warehouse"), "{id}");
        assert!(stdout.contains(&format!("{id:<8} ")), "{stdout}");
    }
    assert!(!stdout.contains("failed"), "{stdout}");
    assert!(!stdout.contains("left out"), "{stdout}");
    assert_self_contained(&html);

    // The legends' areas are the metrics table's, at the same rounding.
    let model = section(&html, "model");
    let texts = svg_texts(model);
    for split in ["dedup", "random_stratified"] {
        let auc: f64 = scalar(
            &wh,
            &format!("SELECT roc_auc FROM metrics WHERE split = '{split}'"),
        )
        .parse()
        .expect("roc_auc");
        let ap: f64 = scalar(
            &wh,
            &format!("SELECT pr_auc FROM metrics WHERE split = '{split}'"),
        )
        .parse()
        .expect("pr_auc");
        let roc_legend = format!("{split} (AUC {auc:.6})");
        let pr_legend = format!("{split} (AP {ap:.6})");
        assert!(texts.contains(&roc_legend), "{roc_legend} not in {texts:?}");
        assert!(texts.contains(&pr_legend), "{pr_legend} not in {texts:?}");
        assert!(model.contains(&format!("<td class=\"num\">{auc:.6}</td>")));
    }
    // The confusion matrix at the card's threshold is the deployed split's
    // metrics row.
    for (cell, column) in [("TP", "tp"), ("FP", "fp"), ("TN", "tn"), ("FN", "fn")] {
        let n = scalar(
            &wh,
            &format!("SELECT {column} FROM metrics WHERE split = 'dedup'"),
        );
        let text = format!("{cell} {}", thousands(&n));
        assert!(texts.contains(&text), "{text} not in {texts:?}");
    }
    // The NjRAT C&C pair leads the beacons, with its connection histogram.
    let beacons = section(&html, "beacons");
    assert!(beacons.contains("192.168.1.115 → 41.108.179.197"));
    assert!(beacons.matches("<svg").count() >= 2);
    // The alerts are the 992 scored connections of that day.
    assert!(section(&html, "alerts").contains("<td>2017-03-08</td><td class=\"num\">992</td>"));

    // Without `beacons` and `scored`, their charts give way to notes and
    // the rest is drawn as before.
    std::fs::remove_dir_all(wh.join("beacons")).expect("drop beacons");
    std::fs::remove_dir_all(wh.join("scored")).expect("drop scored");
    let (html, stdout) = report(&wh, &out);
    let beacons = section(&html, "beacons");
    assert!(!beacons.contains("<svg"));
    assert!(beacons.contains("Not in this warehouse: no `beacons` table."));
    assert!(
        stdout.contains("beacons  left out: Not in this warehouse"),
        "{stdout}"
    );
    let model = section(&html, "model");
    assert!(model.contains("No `scored` table"));
    assert!(!model.contains("(AUC "));
    assert!(model.contains("<svg"), "feature importance is still drawn");
    for id in ["data", "runs", "hosts", "alerts"] {
        assert!(section(&html, id).contains("<svg"), "{id}");
    }
}

#[test]
fn an_empty_warehouse_gives_a_note_per_section() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wh = tmp.path().join("wh");
    std::fs::create_dir_all(&wh).expect("mkdir");
    let (html, stdout) = report(&wh, &tmp.path().join("report.html"));
    assert_self_contained(&html);
    assert!(!html.contains("<svg"));
    for id in SECTIONS {
        assert!(
            section(&html, id).contains("class=\"note\">Not in this warehouse"),
            "{id}"
        );
    }
    assert_eq!(
        stdout.matches("left out").count(),
        SECTIONS.len(),
        "{stdout}"
    );
    // A warehouse directory that does not exist is an error, not a page.
    zeekml()
        .args(["report", "--warehouse"])
        .arg(tmp.path().join("nowhere"))
        .arg("--out")
        .arg(tmp.path().join("r.html"))
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "warehouse directory does not exist",
        ));
}
