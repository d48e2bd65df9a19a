//! Training on an input read in passes, as the pipeline reads a warehouse
//! table: the same rows as in memory, only the columns each pass needs, and
//! clear errors when the input or the sink fails.

use std::cell::RefCell;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use zeekml_model::{Batches, External, InMemory, Source, Trained};

use crate::data::{self, scored_rows, Shape};
use crate::{spec, train};

/// Batches served pass by pass, recording the columns of each pass; from
/// pass `shrink_from` on, the last batch is left out.
struct Passes {
    batches: Vec<RecordBatch>,
    asked: RefCell<Vec<Vec<String>>>,
    shrink_from: Option<usize>,
}

impl Passes {
    fn new(batches: Vec<RecordBatch>, shrink_from: Option<usize>) -> Self {
        Passes {
            batches,
            asked: RefCell::new(Vec::new()),
            shrink_from,
        }
    }
}

impl Source for Passes {
    fn schema(&self) -> Option<SchemaRef> {
        InMemory(&self.batches).schema()
    }

    fn scan(&self, columns: &[String]) -> Result<Batches<'_>, External> {
        let pass = self.asked.borrow().len();
        self.asked.borrow_mut().push(columns.to_vec());
        let n = match self.shrink_from {
            Some(from) if pass >= from => self.batches.len() - 1,
            _ => self.batches.len(),
        };
        let batches: Vec<RecordBatch> = InMemory(&self.batches[..n])
            .scan(columns)?
            .collect::<Result<_, _>>()?;
        Ok(Box::new(batches.into_iter().map(Ok)))
    }
}

fn train_in_passes(source: &Passes) -> (zeekml_model::Result<Trained>, Vec<RecordBatch>) {
    let mut scored = Vec::new();
    let trained = zeekml_model::train(&spec(), source, &mut |b| {
        scored.push(b);
        Ok(())
    });
    (trained, scored)
}

#[test]
fn training_in_passes_matches_training_in_memory_and_reads_only_what_it_needs() {
    let input = data::table(&Shape::default());
    let rows = data::rows(&input);
    let whole = train(&spec(), &input);
    let source = Passes::new(input, None);
    let (trained, scored) = train_in_passes(&source);
    let trained = trained.unwrap();
    assert_eq!(scored_rows(&scored), scored_rows(&whole.scored));
    assert_eq!(trained.deployed.model_text, whole.deployed.model_text);
    let timeless = |rows: &[zeekml_model::MetricsRow]| {
        let mut rows = rows.to_vec();
        rows.iter_mut().for_each(|r| r.train_seconds = 0.0);
        rows
    };
    assert_eq!(timeless(&trained.metric_rows), timeless(&whole.metric_rows));
    assert_eq!(trained.input_rows, rows as u64);
    assert_eq!(trained.scored_rows, 2 * rows as u64);

    let asked = source.asked.borrow();
    let features = &trained.deployed.card.feature_names;
    let has = |pass: &[String], c: &str| pass.iter().any(|p| p == c);
    // The first pass reads what the hashes need: features, label and keys.
    assert!(features.iter().all(|f| has(&asked[0], f)));
    assert!(["label", "uid", "ts"].iter().all(|c| has(&asked[0], c)));
    // Per split: the training and validation datasets (one pass) and the
    // predictions read the features alone; the scored rows the keys alone.
    assert_eq!(asked.len(), 1 + 2 * 3, "passes: {asked:?}");
    let feature_passes = asked[1..].iter().filter(|p| *p == features).count();
    assert_eq!(feature_passes, 4);
    let key_passes: Vec<&Vec<String>> = asked[1..].iter().filter(|p| has(p, "uid")).collect();
    assert_eq!(key_passes.len(), 2);
    assert!(key_passes
        .iter()
        .all(|p| !features.iter().any(|f| has(p, f))));
}

#[test]
fn an_input_that_changes_between_passes_is_an_error() {
    let input = data::table(&Shape::default());
    let rows = data::rows(&input);
    let last = input.last().unwrap().num_rows();
    let (trained, _) = train_in_passes(&Passes::new(input, Some(1)));
    assert_eq!(
        trained.unwrap_err().to_string(),
        format!(
            "stage `train`: could not read the input: a later pass read {} rows where the first read {rows}; the table changed while training read it",
            rows - last
        )
    );
}

#[test]
fn a_failing_sink_stops_training_with_its_error() {
    let source = Passes::new(data::table(&Shape::default()), None);
    let mut calls = 0;
    let err = zeekml_model::train(&spec(), &source, &mut |_| {
        calls += 1;
        Err("disk full".into())
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage `train`: could not write the scored rows: disk full"
    );
    assert_eq!(calls, 1);
}
