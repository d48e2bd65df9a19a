//! The reasons behind scores as Arrow columns: `reasons` (the `k` largest
//! contributions, largest absolute value first), `contribution_rest` (the
//! other features' sum) and `base_value`, all in log-odds, so that
//! `base_value + sum(reasons.contribution) + contribution_rest` is the
//! logit of the row's score.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Float64Builder, ListArray, StringBuilder, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};

use crate::error::Result;
use crate::shap::{ExplainScratch, Explainer};

/// The list of the largest contributions of a row.
pub const REASONS: &str = "reasons";
/// The sum of the contributions not in `reasons`.
pub const CONTRIBUTION_REST: &str = "contribution_rest";
/// The model's expected log-odds, where every row's contributions start.
pub const BASE_VALUE: &str = "base_value";

/// Explains rows into reason columns; one per thread, sharing the explainer.
#[derive(Debug)]
pub struct Reasons {
    explainer: Arc<Explainer>,
    k: usize,
    scratch: ExplainScratch,
    phi: Vec<f64>,
    top: Vec<usize>,
}

/// Explained rows, before they become Arrow columns: `k` (feature, value,
/// contribution) entries per row.
#[derive(Debug, Clone)]
pub struct ReasonRows {
    k: usize,
    base_value: f64,
    features: Vec<u32>,
    values: Vec<f32>,
    contributions: Vec<f64>,
    rest: Vec<f64>,
}

impl Reasons {
    /// Reasons with the `k` largest contributions per row (at most one per
    /// feature of the model).
    pub fn new(explainer: Arc<Explainer>, k: usize) -> Self {
        let k = k.min(explainer.num_features());
        let scratch = explainer.scratch();
        Reasons {
            explainer,
            k,
            scratch,
            phi: Vec::new(),
            top: Vec::with_capacity(k + 1),
        }
    }

    /// No rows yet.
    pub fn rows(&self) -> ReasonRows {
        ReasonRows {
            k: self.k,
            base_value: self.explainer.base_value() * self.explainer.log_odds_per_raw(),
            features: Vec::new(),
            values: Vec::new(),
            contributions: Vec::new(),
            rest: Vec::new(),
        }
    }

    /// Explains every row of column-major input (one column per feature,
    /// in model order) onto `into`.
    pub fn explain_columns(&mut self, columns: &[&[f32]], into: &mut ReasonRows) -> Result<()> {
        self.explainer
            .explain_columns(columns, &mut self.scratch, &mut self.phi)?;
        let nf = self.explainer.num_features();
        let scale = self.explainer.log_odds_per_raw();
        let rows = columns.first().map_or(0, |c| c.len());
        into.features.reserve(rows * self.k);
        into.values.reserve(rows * self.k);
        into.contributions.reserve(rows * self.k);
        into.rest.reserve(rows);
        if nf == 0 {
            into.rest.resize(into.rest.len() + rows, 0.0);
            return Ok(());
        }
        for (r, phi) in self.phi.chunks_exact(nf).enumerate() {
            // Largest |contribution| first; ties go to the earlier feature.
            let top = &mut self.top;
            top.clear();
            for (f, c) in phi.iter().enumerate() {
                let a = c.abs();
                let at = top.partition_point(|&t| phi[t].abs() >= a);
                if at < self.k {
                    top.insert(at, f);
                    top.truncate(self.k);
                }
            }
            for &f in top.iter() {
                into.features.push(f as u32);
                into.values.push(columns[f][r]);
                into.contributions.push(phi[f] * scale);
            }
            let rest: f64 = phi
                .iter()
                .enumerate()
                .filter(|(f, _)| !top.contains(f))
                .map(|(_, c)| c * scale)
                .sum();
            into.rest.push(rest);
        }
        Ok(())
    }
}

impl ReasonRows {
    /// Rows explained so far.
    pub fn len(&self) -> usize {
        self.rest.len()
    }

    /// Whether no row is explained.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The three columns, named and typed, for `rows` (indices into the
    /// explained rows, which may repeat), `names` naming the model's features.
    pub fn columns(
        &self,
        names: &[String],
        rows: impl ExactSizeIterator<Item = usize>,
    ) -> Vec<(FieldRef, ArrayRef)> {
        let (n, k) = (rows.len(), self.k);
        let mut feature = StringBuilder::with_capacity(n * k, n * k * 16);
        let mut value = Float64Builder::with_capacity(n * k);
        let mut contribution = Vec::with_capacity(n * k);
        let mut rest = Vec::with_capacity(n);
        for r in rows {
            for j in r * k..(r + 1) * k {
                feature.append_value(&names[self.features[j] as usize]);
                let v = self.values[j];
                // A missing value is a null, as it was in the input.
                value.append_option((!v.is_nan()).then_some(f64::from(v)));
                contribution.push(self.contributions[j]);
            }
            rest.push(self.rest[r]);
        }
        let fields = reason_fields();
        let entries = StructArray::new(
            fields.clone(),
            vec![
                Arc::new(feature.finish()) as ArrayRef,
                Arc::new(value.finish()),
                Arc::new(Float64Array::from(contribution)),
            ],
            None,
        );
        let list = ListArray::new(
            Arc::new(Field::new("item", DataType::Struct(fields), false)),
            OffsetBuffer::from_lengths(std::iter::repeat_n(k, n)),
            Arc::new(entries),
            None,
        );
        let f64_field = |name: &str| Arc::new(Field::new(name, DataType::Float64, false));
        vec![
            (
                Arc::new(Field::new(REASONS, list.data_type().clone(), false)),
                Arc::new(list) as ArrayRef,
            ),
            (
                f64_field(CONTRIBUTION_REST),
                Arc::new(Float64Array::from(rest)),
            ),
            (
                f64_field(BASE_VALUE),
                Arc::new(Float64Array::from_value(self.base_value, n)),
            ),
        ]
    }
}

fn reason_fields() -> Fields {
    Fields::from(vec![
        Field::new("feature", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
        Field::new("contribution", DataType::Float64, false),
    ])
}
