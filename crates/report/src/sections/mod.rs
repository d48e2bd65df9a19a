//! The report's sections, each from its own tables.

pub(crate) mod activity;
pub(crate) mod data;
pub(crate) mod model;

use std::future::Future;
use std::pin::Pin;

use crate::error::Result;
use crate::html::{self, Block};
use crate::{SectionStatus, SectionSummary, Source};

/// A section's content as it is built: text and tables, and charts laid
/// side by side.
#[derive(Default)]
pub(crate) struct Body {
    html: String,
    charts: usize,
    in_row: bool,
}

impl Body {
    /// Adds a chart beside the previous one.
    pub fn chart(&mut self, svg: String, caption: &str) {
        if !self.in_row {
            self.html.push_str("<div class=\"charts\">");
            self.in_row = true;
        }
        self.html.push_str(&html::figure(&svg, caption));
        self.charts += 1;
    }

    /// Adds HTML below the charts so far.
    pub fn html(&mut self, text: &str) {
        self.end_row();
        self.html.push_str(text);
    }

    pub fn heading(&mut self, text: &str) {
        self.html(&format!("<h3>{}</h3>", html::escape(text)));
    }

    pub fn source(&mut self, text: &str) {
        self.html(&html::para("source", text));
    }

    pub fn note(&mut self, text: &str) {
        self.html(&html::para("note", text));
    }

    fn end_row(&mut self) {
        if self.in_row {
            self.html.push_str("</div>");
            self.in_row = false;
        }
    }
}

/// What a section function returns.
pub(crate) enum Outcome {
    Drawn(Body),
    /// The note that stands in for the section.
    Missing(String),
}

/// The note for a section whose tables are absent.
pub(crate) fn missing(tables: &[&str], written_by: &str) -> Outcome {
    let names: Vec<String> = tables.iter().map(|t| format!("`{t}`")).collect();
    Outcome::Missing(format!(
        "Not in this warehouse: no {} table. {written_by}",
        names.join(" or ")
    ))
}

type SectionFuture<'a> = Pin<Box<dyn Future<Output = Result<Outcome>> + 'a>>;

/// Renders every section; a failed one becomes a note with its error.
pub(crate) async fn render_all(source: &Source) -> (Vec<Block>, Vec<SectionSummary>) {
    let sections: Vec<(&'static str, &'static str, SectionFuture<'_>)> = vec![
        ("model", "Model", Box::pin(model::section(source))),
        ("data", "Data", Box::pin(data::section(source))),
        ("runs", "Runs", Box::pin(activity::runs(source))),
        ("beacons", "Beacons", Box::pin(activity::beacons(source))),
        ("hosts", "Hosts", Box::pin(activity::hosts(source))),
        ("alerts", "Alerts", Box::pin(activity::alerts(source))),
    ];
    let mut blocks = Vec::new();
    let mut summaries = Vec::new();
    for (id, title, section) in sections {
        let started = std::time::Instant::now();
        let outcome = section.await;
        tracing::debug!(
            section = id,
            seconds = started.elapsed().as_secs_f64(),
            "report section"
        );
        let (body, status) = match outcome {
            Ok(Outcome::Drawn(mut body)) => {
                body.end_row();
                let charts = body.charts;
                (body.html, SectionStatus::Drawn { charts })
            }
            Ok(Outcome::Missing(note)) => {
                (html::para("note", &note), SectionStatus::Missing { note })
            }
            Err(e) => {
                tracing::warn!(section = id, error = %e, "report section failed");
                let error = e.to_string();
                (
                    html::para("note", &format!("This section could not be drawn: {error}")),
                    SectionStatus::Failed { error },
                )
            }
        };
        blocks.push(Block { id, title, body });
        summaries.push(SectionSummary { id, title, status });
    }
    (blocks, summaries)
}

/// A window start as its UTC date, or as seconds when it is not a date
/// (relative timestamps, or one window for the whole input).
pub(crate) fn window_label(start: f64) -> String {
    if start < 86_400.0 {
        return format!("ts {start}");
    }
    let secs = start.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    if rem == 0 {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02}",
            rem / 3600,
            rem % 3600 / 60
        )
    }
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date of a day
/// count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_labels() {
        assert_eq!(window_label(0.0), "ts 0");
        assert_eq!(window_label(1_488_931_200.0), "2017-03-08");
        assert_eq!(
            window_label(1_664_409_600.0 + 3600.0 * 13.0),
            "2022-09-29 13:00"
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
