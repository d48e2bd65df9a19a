//! `zeekml report`: one self-contained HTML page of a warehouse, its charts
//! drawn as inline SVG by plotters, every figure read through a DataFusion
//! query (aggregates, never a whole table in memory).
//!
//! Each section names the tables it reads. A section whose tables are not
//! in the warehouse is replaced by a note, and one whose query or chart
//! fails shows the error in its place, so that one odd table does not cost
//! the rest of the report.
#![warn(missing_docs)]

pub mod error;
mod html;
mod plot;
mod query;
mod sections;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use zeekml_model::ModelCard;
use zeekml_pipeline::Warehouse;

pub use error::{Error, Result};

/// What one section of a report came to.
#[derive(Debug, Clone, PartialEq)]
pub enum SectionStatus {
    /// Drawn, with this many charts.
    Drawn {
        /// Number of SVG charts in the section.
        charts: usize,
    },
    /// Left out: the tables it reads are not in the warehouse.
    Missing {
        /// The note shown instead.
        note: String,
    },
    /// A query or chart failed; the page shows the error in its place.
    Failed {
        /// The error message.
        error: String,
    },
}

/// One section of a written report.
#[derive(Debug, Clone, PartialEq)]
pub struct SectionSummary {
    /// The section's anchor in the page (`model`, `data`, ...).
    pub id: &'static str,
    /// Its heading.
    pub title: &'static str,
    /// How it came out.
    pub status: SectionStatus,
}

/// A rendered report.
#[derive(Debug, Clone)]
pub struct Report {
    /// The page.
    pub html: String,
    /// Its sections, in page order.
    pub sections: Vec<SectionSummary>,
}

/// What the sections read: a session with every table registered, the
/// table names, and the card of the model the latest training stage saved.
pub(crate) struct Source {
    pub ctx: datafusion::prelude::SessionContext,
    pub tables: BTreeSet<String>,
    /// `models/<name>` and its card.
    pub card: Option<(String, ModelCard)>,
}

impl Source {
    pub fn has(&self, table: &str) -> bool {
        self.tables.contains(table)
    }
}

/// Renders the report of the warehouse at `warehouse`.
pub async fn render(warehouse: &Path) -> Result<Report> {
    let wh = Warehouse::open(warehouse)?;
    let ctx = zeekml_pipeline::session::new_context();
    let tables: BTreeSet<String> = wh.register_all(&ctx).await?.into_iter().collect();
    let mut source = Source {
        ctx,
        tables,
        card: None,
    };
    source.card = sections::model::deployed_card(&source, &wh).await?;
    let (blocks, sections) = sections::render_all(&source).await;
    let names: Vec<String> = source.tables.iter().cloned().collect();
    let html = html::page(&wh.location(), &names, &blocks);
    Ok(Report { html, sections })
}

/// Renders the report of `warehouse` and writes it to `out`.
pub async fn write(warehouse: &Path, out: &Path) -> Result<Report> {
    let report = render(warehouse).await?;
    std::fs::write(out, &report.html).map_err(|source| Error::Io {
        path: PathBuf::from(out),
        source,
    })?;
    Ok(report)
}
