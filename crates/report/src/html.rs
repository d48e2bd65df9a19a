//! The page around the charts: escaping, tables and the section layout.

use std::fmt::Write as _;

/// Text made safe for HTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole number with thousands separators.
pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).unwrap_or_default())
        .collect();
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", groups.join(","))
}

/// An optional float with `decimals` decimals, empty when unset.
pub(crate) fn float(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(String::new, |v| format!("{v:.decimals$}"))
}

/// An HTML table; cells are escaped here. Columns whose header is in
/// `numeric` are right-aligned.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>], numeric: &[&str]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (h, cell) in headers.iter().zip(row) {
            let class = if numeric.contains(h) {
                " class=\"num\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A paragraph of escaped text.
pub(crate) fn para(class: &str, text: &str) -> String {
    format!("<p class=\"{class}\">{}</p>", escape(text))
}

/// A chart with its caption.
pub(crate) fn figure(svg: &str, caption: &str) -> String {
    format!(
        "<figure>{svg}<figcaption>{}</figcaption></figure>",
        escape(caption)
    )
}

const STYLE: &str = "
body { font-family: sans-serif; margin: 24px auto; max-width: 1320px; color: #222; padding: 0 16px; }
h1 { margin-bottom: 4px; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
h3 { margin: 20px 0 6px; }
nav a { margin-right: 14px; }
.source { color: #555; font-size: 14px; }
.note { background: #fff6d9; border-left: 4px solid #e0b000; padding: 8px 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-size: 13px; color: #555; max-width: 620px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
";

/// One section of the page.
pub(crate) struct Block {
    pub id: &'static str,
    pub title: &'static str,
    pub body: String,
}

/// The whole page: a title, links to the sections, the sections.
pub(crate) fn page(warehouse: &str, tables: &[String], blocks: &[Block]) -> String {
    let mut out =
        String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<title>zeekml report</title>\n<style>");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n<h1>zeekml report</h1>\n");
    out.push_str(&para(
        "source",
        &format!(
            "Warehouse {warehouse}; tables: {}.",
            if tables.is_empty() {
                "none".to_string()
            } else {
                tables.join(", ")
            }
        ),
    ));
    out.push_str("\n<nav>");
    for b in blocks {
        let _ = write!(out, "<a href=\"#{}\">{}</a>", b.id, escape(b.title));
    }
    out.push_str("</nav>\n");
    for b in blocks {
        let _ = write!(
            out,
            "<section id=\"{}\">\n<h2>{}</h2>\n{}\n</section>\n",
            b.id,
            escape(b.title),
            b.body
        );
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_numbers() {
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(float(Some(0.98745470), 6), "0.987455");
        assert_eq!(float(None, 6), "");
    }

    #[test]
    fn tables_escape_cells() {
        let t = table(
            &["a", "n"],
            &[vec!["<x>".to_string(), "1".to_string()]],
            &["n"],
        );
        assert_eq!(
            t,
            "<table><thead><tr><th>a</th><th>n</th></tr></thead><tbody><tr><td>&lt;x&gt;</td><td class=\"num\">1</td></tr></tbody></table>"
        );
    }
}
