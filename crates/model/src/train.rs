//! [`train`] (input read in passes, scored rows to a sink) and
//! [`train_and_evaluate`] (batches in memory): one LightGBM model per split,
//! scored rows, metrics, feature importance and the deployable model.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, Int8Array, Int8DictionaryArray,
    StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use lightgbm3::{Booster, Dataset, ImportanceType};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::info;

use crate::binned::{self, Binned};
use crate::error::{Error, Result};
use crate::forest::Forest;
use crate::hash;
use crate::metrics;
use crate::metrics_table::{metrics_batch, MetricsRow, Rates, MODEL_KIND};
use crate::reasons::{ReasonRows, Reasons};
use crate::saved::{FeatureSource, ModelCard, SavedModel, LIGHTGBM3_VERSION, PREDICT_CHUNK};
use crate::source::{each_batch, each_batch_with, External, InMemory, Source};
use crate::spec::{ClassWeight, SplitKind, Threshold, ThresholdRule, TrainSpec};
use crate::spill::{self, Spill};
use crate::split::{self, SIDE_NAMES, TEST, TRAIN, VALID};
use crate::table::{
    hash_column_into, hash_values, read_labels, read_times, Features, Table, GATHER_TILE,
};

/// Name of the time column the time split reads.
const TIME_COLUMN: &str = "ts";
/// Name of the column that groups rows of one flow in the dedup split.
const GROUP_COLUMN: &str = "uid";

/// Everything a `lightgbm` stage produces.
#[derive(Debug)]
pub struct TrainOutcome {
    /// One row per input row and split: the keys present in the input,
    /// `label`, `split`, `side` (train / valid / test / test_dup), `score`
    /// and `predicted`.
    pub scored: Vec<RecordBatch>,
    /// One row per split: test-side metrics of that split's model.
    pub metrics: RecordBatch,
    /// The same rows as values, for callers that add evaluation rows.
    pub metric_rows: Vec<MetricsRow>,
    /// Gain and split counts per split and feature.
    pub importance: RecordBatch,
    /// The model of `deploy_split`, ready to save.
    pub deployed: SavedModel,
}

/// Distinct feature vectors of the input.
struct Distinct {
    /// Per row, the index of its feature vector in `reps`.
    of_row: Vec<u32>,
    /// A row holding each distinct vector, ordered by vector hash so that
    /// training data comes out in the same order whatever the input order.
    reps: Vec<u32>,
}

/// Rows are the same vector when both 64-bit hashes agree. Comparing the
/// values instead read two random rows of every feature column per repeated
/// row, most of the preparation time at 20M rows; two distinct vectors of
/// 20M share a 128-bit key with a probability of about 1e-24. `keys` are
/// (hash, second hash, row) in row order.
fn distinct(mut keys: Vec<(u64, u64, u32)>) -> Distinct {
    keys.sort_unstable();
    let mut of_row = vec![0u32; keys.len()];
    let mut reps: Vec<u32> = Vec::new();
    for k in 0..keys.len() {
        let (h, h2, row) = keys[k];
        if k == 0 || (keys[k - 1].0, keys[k - 1].1) != (h, h2) {
            reps.push(row);
        }
        of_row[row as usize] = (reps.len() - 1) as u32;
    }
    Distinct { of_row, reps }
}

/// The distinct vectors' representative rows in input order, with the
/// vector of each: gathering them in this order reads every column
/// forwards instead of at random.
fn reps_in_row_order(distinct: &Distinct) -> Vec<(u32, u32)> {
    let mut order: Vec<(u32, u32)> = distinct
        .reps
        .iter()
        .enumerate()
        .map(|(v, &r)| (r, v as u32))
        .collect();
    order.sort_unstable();
    order
}

/// Rows of one side merged by (feature vector, label), with their counts.
struct Collapsed {
    vectors: Vec<u32>,
    labels: Vec<u8>,
    counts: Vec<u32>,
    rows: usize,
    class_rows: [usize; 2],
}

/// `only`, when given, keeps just the rows it marks.
fn collapse(
    sides: &[u8],
    side: u8,
    labels: &[u8],
    distinct: &Distinct,
    only: Option<&[bool]>,
) -> Collapsed {
    let mut counts = vec![0u32; distinct.reps.len() * 2];
    let mut class_rows = [0usize; 2];
    for (i, &s) in sides.iter().enumerate() {
        if s == side && only.is_none_or(|o| o[i]) {
            counts[distinct.of_row[i] as usize * 2 + labels[i] as usize] += 1;
            class_rows[labels[i] as usize] += 1;
        }
    }
    let mut out = Collapsed {
        vectors: Vec::new(),
        labels: Vec::new(),
        counts: Vec::new(),
        rows: class_rows[0] + class_rows[1],
        class_rows,
    };
    for (k, &c) in counts.iter().enumerate() {
        if c > 0 {
            out.vectors.push((k / 2) as u32);
            out.labels.push((k % 2) as u8);
            out.counts.push(c);
        }
    }
    out
}

/// Per-class weights from the training side's class sizes.
fn class_weights(rule: ClassWeight, class_rows: [usize; 2]) -> [f64; 2] {
    let (neg, pos) = (class_rows[0] as f64, class_rows[1] as f64);
    match rule {
        ClassWeight::None => [1.0, 1.0],
        ClassWeight::ScalePosWeight => [1.0, neg / pos],
        ClassWeight::IsUnbalance if pos < neg => [1.0, neg / pos],
        ClassWeight::IsUnbalance => [pos / neg, 1.0],
    }
}

/// What one split's training produced.
struct Fitted {
    booster: Booster,
    best_iteration: i64,
    train_rows: usize,
    train_distinct: usize,
    valid_rows: usize,
    seconds: f64,
    fingerprint: Option<String>,
}

/// SHA-256 of the training matrix as LightGBM gets it: feature names, then
/// every row's values, the labels and the weights.
struct Fingerprint(Sha256);

impl Fingerprint {
    fn new(names: &[String], rows: usize) -> Self {
        let mut h = Sha256::new();
        h.update(b"zeekml-training-matrix-v1\0");
        h.update((rows as u64).to_le_bytes());
        h.update((names.len() as u64).to_le_bytes());
        for name in names {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
        }
        Fingerprint(h)
    }

    fn floats(&mut self, values: &[f32]) {
        let mut buf = Vec::with_capacity(1 << 16);
        for chunk in values.chunks(1 << 14) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
            self.0.update(&buf);
        }
    }

    fn finish(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// One LightGBM dataset to build: the input row at each of its positions,
/// with labels and weights.
struct Planned {
    rows: Vec<u32>,
    labels: Vec<f32>,
    weights: Vec<f32>,
}

fn lightgbm_params(spec: &TrainSpec, early_stopping: Option<u32>) -> serde_json::Value {
    let p = &spec.params;
    let mut v = json!({
        "objective": "binary",
        "metric": "binary_logloss",
        "verbose": -1,
        "num_iterations": p.num_iterations,
        "learning_rate": p.learning_rate,
        "num_leaves": p.num_leaves,
        "min_data_in_leaf": p.min_data_in_leaf,
        "feature_fraction": p.feature_fraction,
        "lambda_l2": p.lambda_l2,
        // LightGBM seeds are C ints.
        "seed": spec.seed % (i32::MAX as u64),
        "deterministic": true,
        "force_col_wise": true,
        "num_threads": p.threads(),
    });
    if let Some(rounds) = early_stopping {
        v["early_stopping_rounds"] = rounds.into();
    }
    for (key, value) in &p.lightgbm {
        v[key.as_str()] = value.clone();
    }
    v
}

/// Scores of every row through the score of its feature vector.
#[derive(Clone, Copy)]
struct Scores<'a> {
    per_vector: &'a [f64],
    of_row: &'a [u32],
}

impl Scores<'_> {
    #[inline]
    fn at(&self, row: usize) -> f64 {
        self.per_vector[self.of_row[row] as usize]
    }
}

/// Writes one batch of scored rows.
pub type ScoredSink<'a> = dyn FnMut(RecordBatch) -> std::result::Result<(), External> + 'a;

struct Ctx<'s> {
    spec: &'s TrainSpec,
    source: &'s dyn Source,
    /// Stage, for messages.
    context: String,
    /// Feature columns, in model order.
    names: &'s [String],
    rows: usize,
    labels: &'s [u8],
    content: &'s [u64],
    distinct: &'s Distinct,
}

impl Ctx<'_> {
    fn split_context(&self, split: SplitKind) -> String {
        format!("{}, split {split}", self.context)
    }

    fn lgbm(
        &self,
        split: SplitKind,
        during: &'static str,
    ) -> impl FnOnce(lightgbm3::Error) -> Error + '_ {
        move |source| Error::LightGbm {
            context: self.split_context(split),
            during,
            source,
        }
    }

    /// One batch of a pass seen as a table, its rows numbered as in the
    /// whole input.
    fn table<'b>(&self, batch: &'b RecordBatch, start: usize) -> Table<'b> {
        Table::at(
            std::slice::from_ref(batch),
            start,
            &self.spec.input,
            self.context.clone(),
        )
    }

    /// A pass that read another number of rows than the first means the
    /// input changed under training: row numbers no longer match.
    fn check_rows(&self, read: usize) -> Result<()> {
        if read == self.rows {
            return Ok(());
        }
        Err(Error::Input {
            context: self.context.clone(),
            source: format!(
                "a later pass read {read} rows where the first read {}; the table changed while training read it",
                self.rows
            )
            .into(),
        })
    }

    /// One pass over the features, calling `f` for each batch holding some
    /// of `rows` (`(row, payload)` sorted by row) with the batch's features.
    fn features_of<T: Copy>(
        &self,
        rows: &[(u32, T)],
        mut f: impl FnMut(usize, &Features<'_>, &[(u32, T)]) -> Result<()>,
    ) -> Result<()> {
        let read = each_batch_with(
            self.source,
            self.names,
            &self.context,
            rows,
            |start, batch, here| {
                let table = self.table(batch, start);
                let features = Features::resolve(&table, self.names)?;
                f(start, &features, here)
            },
        )?;
        self.check_rows(read)
    }

    /// The features of the rows `order` names (`(row, id)` sorted by row),
    /// handed to `f` as columns in blocks of `PREDICT_CHUNK` rows (the last
    /// may be shorter) with the ids of their rows.
    fn blocks(
        &self,
        order: &[(u32, u32)],
        mut f: impl FnMut(&[&[f32]], &[u32]) -> Result<()>,
    ) -> Result<()> {
        fn emit(
            f: &mut impl FnMut(&[&[f32]], &[u32]) -> Result<()>,
            cols: &mut [Vec<f32>],
            ids: &mut Vec<u32>,
        ) -> Result<()> {
            let columns: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
            f(&columns, ids)?;
            cols.iter_mut().for_each(Vec::clear);
            ids.clear();
            Ok(())
        }
        let mut cols = vec![Vec::with_capacity(PREDICT_CHUNK); self.names.len()];
        let mut ids = Vec::with_capacity(PREDICT_CHUNK);
        let mut local = Vec::with_capacity(PREDICT_CHUNK);
        self.features_of(order, |start, features, mut rest| {
            while !rest.is_empty() {
                let (now, next) = rest.split_at((PREDICT_CHUNK - ids.len()).min(rest.len()));
                local.clear();
                local.extend(now.iter().map(|&(r, _)| r as usize - start));
                features.append_columns(0, &local, &mut cols);
                ids.extend(now.iter().map(|&(_, id)| id));
                if ids.len() == PREDICT_CHUNK {
                    emit(&mut f, &mut cols, &mut ids)?;
                }
                rest = next;
            }
            Ok(())
        })?;
        if !ids.is_empty() {
            emit(&mut f, &mut cols, &mut ids)?;
        }
        Ok(())
    }

    fn plan(&self, c: &Collapsed, weights: [f64; 2]) -> Planned {
        Planned {
            rows: c
                .vectors
                .iter()
                .map(|&v| self.distinct.reps[v as usize])
                .collect(),
            labels: c.labels.iter().map(|&l| f32::from(l)).collect(),
            weights: c
                .counts
                .iter()
                .zip(&c.labels)
                .map(|(&n, &l)| (f64::from(n) * weights[l as usize]) as f32)
                .collect(),
        }
    }

    fn api(&self, split: SplitKind, during: &'static str) -> impl FnOnce(String) -> Error + '_ {
        move |message| Error::LightGbmApi {
            context: self.split_context(split),
            during,
            message,
        }
    }

    /// The training dataset (and the validation one, binned like it) in one
    /// pass over the features: rows go to spill files in matrix order, the
    /// bins are found on LightGBM's own sample of the training rows, and
    /// the rows are then pushed to LightGBM a block at a time. Returns the
    /// datasets and, when asked, the training matrix's fingerprint.
    fn datasets(
        &self,
        split: SplitKind,
        plans: &[Planned],
        want_fingerprint: bool,
    ) -> Result<(Dataset, Option<Dataset>, Option<String>)> {
        let nf = self.names.len();
        for p in plans {
            if p.rows.len() > i32::MAX as usize {
                return Err(Error::TooManyRows {
                    context: self.split_context(split),
                    rows: p.rows.len(),
                });
            }
        }
        let dir = spill::spill_dir()?;
        let sample = binned::sample_rows(plans[0].rows.len())
            .map_err(self.api(split, "sample rows for the bins"))?;
        let mut sampled = vec![0f32; sample.len() * nf];
        let mut spills = plans
            .iter()
            .enumerate()
            .map(|(t, p)| Spill::create(dir.path(), &format!("matrix-{t}"), p.rows.len(), nf))
            .collect::<Result<Vec<_>>>()?;
        let mut order: Vec<(u32, (u8, u32))> = plans
            .iter()
            .enumerate()
            .flat_map(|(t, p)| {
                p.rows
                    .iter()
                    .enumerate()
                    .map(move |(k, &r)| (r, (t as u8, k as u32)))
            })
            .collect();
        order.sort_unstable();
        let mut tile_x = Vec::new();
        // In tiles small enough that every column's writes for a tile stay
        // in cache: each column is read forwards with its type matched once
        // per tile.
        self.features_of(&order, |start, features, here| {
            for tile in here.chunks(GATHER_TILE) {
                tile_x.clear();
                tile_x.resize(tile.len() * nf, 0.0);
                features.gather_into(
                    0,
                    tile.iter()
                        .enumerate()
                        .map(|(k, &(r, _))| (k, r as usize - start)),
                    &mut tile_x,
                    |k, f| k * nf + f,
                );
                for (values, &(_, (t, k))) in tile_x.chunks_exact(nf).zip(tile) {
                    spills[t as usize].write(k as usize, values)?;
                    if t == 0 {
                        if let Ok(i) = sample.binary_search(&(k as usize)) {
                            sampled[i * nf..(i + 1) * nf].copy_from_slice(values);
                        }
                    }
                }
            }
            Ok(())
        })?;
        drop(order);
        let mut fingerprint =
            want_fingerprint.then(|| Fingerprint::new(self.names, plans[0].rows.len()));
        let mut saved = Vec::new();
        let mut train: Option<Binned> = None;
        for (t, (plan, spill)) in plans.iter().zip(spills).enumerate() {
            let mut ds = match &train {
                None => Binned::from_sample(&sampled, nf, plan.rows.len())
                    .map_err(self.api(split, "find the bins"))?,
                Some(reference) => Binned::like(reference, plan.rows.len())
                    .map_err(self.api(split, "build a validation dataset"))?,
            };
            spill.blocks(|start, x| {
                if t == 0 {
                    if let Some(f) = &mut fingerprint {
                        f.floats(x);
                    }
                }
                ds.push(x, start).map_err(self.api(split, "push rows"))
            })?;
            ds.set_field(c"label", &plan.labels)
                .map_err(self.api(split, "set labels"))?;
            ds.set_field(c"weight", &plan.weights)
                .map_err(self.api(split, "set row weights"))?;
            if t == 0 {
                if let Some(f) = &mut fingerprint {
                    f.floats(&plan.labels);
                    f.floats(&plan.weights);
                }
            }
            let path = dir.path().join(format!("dataset-{t}.bin"));
            ds.save(&path)
                .map_err(self.api(split, "write the binary dataset"))?;
            saved.push(path);
            if train.is_none() {
                train = Some(ds);
            }
        }
        drop((train, sampled));
        let load = |path: &Path, reference: Option<&Dataset>| -> Result<Dataset> {
            let mut ds = Dataset::from_file_with_reference(&path.to_string_lossy(), reference)
                .map_err(self.lgbm(split, "load the binary dataset"))?;
            ds.set_feature_names(self.names)
                .map_err(self.lgbm(split, "set feature names"))?;
            Ok(ds)
        };
        let train_ds = load(&saved[0], None)?;
        let valid_ds = match saved.get(1) {
            Some(path) => Some(load(path, Some(&train_ds))?),
            None => None,
        };
        Ok((train_ds, valid_ds, fingerprint.map(Fingerprint::finish)))
    }

    fn fit(&self, split: SplitKind, sides: &[u8], want_fingerprint: bool) -> Result<Fitted> {
        let started = Instant::now();
        let drawn = self.spec.params.max_train_rows.and_then(|max| {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            split::draw(sides, self.content, self.labels, self.spec.seed, max)
        });
        let train = collapse(sides, TRAIN, self.labels, self.distinct, drawn.as_deref());
        if drawn.is_some() {
            let side = sides.iter().filter(|&&s| s == TRAIN).count();
            info!(split = %split, drawn = train.rows, of = side, "drew the training rows");
        }
        drop(drawn);
        if train.rows == 0 {
            return Err(Error::EmptyTrainingSet {
                context: self.context.clone(),
                split: split.to_string(),
                input_rows: self.rows,
            });
        }
        if let Some(class) = (0..2u8).find(|&c| train.class_rows[1 - c as usize] == 0) {
            return Err(Error::SingleClass {
                context: self.context.clone(),
                split: split.to_string(),
                class,
                rows: train.rows,
            });
        }
        let weights = class_weights(self.spec.params.class_weight, train.class_rows);
        let valid = collapse(sides, VALID, self.labels, self.distinct, None);
        let early = self.spec.params.early_stopping().filter(|_| valid.rows > 0);
        let mut plans = vec![self.plan(&train, weights)];
        if early.is_some() {
            plans.push(self.plan(&valid, weights));
        }
        let (train_rows, train_distinct, valid_rows) =
            (train.rows, train.vectors.len(), valid.rows);
        drop((train, valid));
        let (train_ds, valid_ds, fingerprint) = self.datasets(split, &plans, want_fingerprint)?;
        drop(plans);
        let prepared = started.elapsed().as_secs_f64();
        let booster =
            Booster::train_with_valid(train_ds, valid_ds, &lightgbm_params(self.spec, early))
                .map_err(self.lgbm(split, "train"))?;
        info!(
            split = %split,
            datasets_seconds = prepared,
            boosting_seconds = started.elapsed().as_secs_f64() - prepared,
            "fitted"
        );
        Ok(Fitted {
            best_iteration: i64::from(booster.num_iterations()),
            booster,
            train_rows,
            train_distinct,
            valid_rows,
            seconds: started.elapsed().as_secs_f64(),
            fingerprint,
        })
    }

    /// The score of each distinct feature vector, predicted once by the
    /// Rust forest (LightGBM's own predictor is many times slower).
    fn predict(&self, split: SplitKind, model_text: &str) -> Result<Vec<f64>> {
        let forest = Forest::parse_with_context(&self.split_context(split), model_text)?;
        let threads = self.spec.params.threads();
        let mut per_vector = vec![0.0; self.distinct.reps.len()];
        let mut out = Vec::new();
        self.blocks(&reps_in_row_order(self.distinct), |columns, vectors| {
            forest.predict_columns_parallel(columns, threads, &mut out)?;
            for (&v, &score) in vectors.iter().zip(&out) {
                per_vector[v as usize] = score;
            }
            Ok(())
        })?;
        Ok(per_vector)
    }

    /// Reasons behind the scores of every distinct feature vector, with the
    /// position of each vector's reasons.
    fn explain(&self, split: SplitKind, model_text: &str) -> Result<(ReasonRows, Vec<u32>)> {
        let forest = Forest::parse_with_context(&self.split_context(split), model_text)?;
        let mut reasons = Reasons::new(Arc::new(forest.explainer()?), self.spec.explain);
        let mut rows = reasons.rows();
        let order = reps_in_row_order(self.distinct);
        let mut position = vec![0u32; order.len()];
        for (p, &(_, v)) in order.iter().enumerate() {
            position[v as usize] = p as u32;
        }
        self.blocks(&order, |columns, _| {
            reasons.explain_columns(columns, &mut rows)
        })?;
        Ok((rows, position))
    }

    fn sides(&self, split: SplitKind, group: &[u64], ts: Option<&[f64]>) -> Vec<u8> {
        let content = self.content;
        let s = self.spec;
        let vf = if s.params.early_stopping().is_some() || matches!(s.threshold, Threshold::Rule(_))
        {
            s.params.valid_fraction
        } else {
            0.0
        };
        match split {
            SplitKind::RandomStratified => {
                split::random_stratified(content, self.labels, s.seed, s.test_fraction, vf)
            }
            SplitKind::Dedup => {
                split::dedup(group, content, self.labels, s.seed, s.test_fraction, vf)
            }
            SplitKind::Time => split::time(ts.unwrap_or_default(), s.test_fraction, vf),
        }
    }

    /// One pass over the keys: the scored rows of one split, batch by batch
    /// into `sink`. Returns the number of rows written.
    fn write_scored(
        &self,
        split: SplitKind,
        keys: &[String],
        (sides, scores, threshold): (&[u8], Scores<'_>, f64),
        reasons: Option<Explained<'_>>,
        sink: &mut ScoredSink<'_>,
    ) -> Result<u64> {
        let mut columns = keys.to_vec();
        // Read even when the input has no keys, so that every batch has a column.
        columns.push(self.spec.label.clone());
        let side_names: ArrayRef = Arc::new(StringArray::from(SIDE_NAMES.to_vec()));
        let split_name: ArrayRef = Arc::new(StringArray::from(vec![split.name()]));
        let mut written = 0u64;
        let read = each_batch(self.source, &columns, &self.context, |from, batch| {
            let to = from + batch.num_rows();
            if to > self.rows {
                return self.check_rows(to);
            }
            let n = batch.num_rows();
            let mut fields: Vec<FieldRef> = Vec::with_capacity(keys.len() + 5);
            let mut out: Vec<ArrayRef> = Vec::with_capacity(keys.len() + 5);
            for k in keys {
                if let Some((_, field)) = batch.schema().column_with_name(k) {
                    fields.push(Arc::new(field.clone()));
                    out.extend(batch.column_by_name(k).cloned());
                }
            }
            let s: Vec<f64> = (from..to).map(|i| scores.at(i)).collect();
            fields.extend(
                [
                    Field::new("label", DataType::Int32, false),
                    Field::new("split", label_type(), false),
                    Field::new("side", label_type(), false),
                    Field::new("score", DataType::Float64, false),
                    Field::new("predicted", DataType::Boolean, false),
                ]
                .map(Arc::new),
            );
            out.push(Arc::new(Int32Array::from_iter_values(
                self.labels[from..to].iter().map(|&l| i32::from(l)),
            )));
            out.push(Arc::new(Int8DictionaryArray::new(
                Int8Array::from_value(0, n),
                Arc::clone(&split_name),
            )));
            out.push(Arc::new(Int8DictionaryArray::new(
                Int8Array::from_iter_values(sides[from..to].iter().map(|&side| side as i8)),
                Arc::clone(&side_names),
            )));
            let predicted = BooleanArray::from_iter(s.iter().map(|&v| Some(v >= threshold)));
            out.push(Arc::new(Float64Array::from(s)));
            out.push(Arc::new(predicted));
            if let Some(r) = &reasons {
                let vectors = r.of_row[from..to]
                    .iter()
                    .map(|&v| r.position[v as usize] as usize);
                for (field, column) in r.rows.columns(r.feature_names, vectors) {
                    fields.push(field);
                    out.push(column);
                }
            }
            let scored =
                RecordBatch::try_new(Arc::new(Schema::new(fields)), out).map_err(|source| {
                    Error::Arrow {
                        context: self.context.clone(),
                        during: "build the scored table",
                        source,
                    }
                })?;
            written += n as u64;
            sink(scored).map_err(|source| Error::Output {
                context: self.context.clone(),
                source,
            })
        })?;
        self.check_rows(read)?;
        Ok(written)
    }
}

/// Scores and labels of the rows of one side.
fn side_rows(side: u8, sides: &[u8], labels: &[u8], scores: Scores<'_>) -> (Vec<f64>, Vec<bool>) {
    let (mut s, mut l) = (Vec::new(), Vec::new());
    for i in 0..sides.len() {
        if sides[i] == side {
            s.push(scores.at(i));
            l.push(labels[i] == 1);
        }
    }
    (s, l)
}

/// The decision threshold of one split's model, chosen on its validation
/// rows (identical rows once) by the spec's rule.
fn choose_threshold(spec: &TrainSpec, split: SplitKind, valid: (&[f64], &[bool])) -> Result<f64> {
    let (s, l) = valid;
    let bad = |reason: String| Error::InvalidSpec {
        context: format!("{}, split {split}", spec.context()),
        field: "threshold",
        reason,
    };
    match spec.threshold {
        Threshold::Fixed(t) => Ok(t),
        Threshold::Rule(ThresholdRule::BestF1) => {
            let (t, f1) = metrics::best_f1_threshold(s, l).ok_or_else(|| {
                bad(format!(
                    "the validation side ({} rows) holds no positive rows to choose a threshold on",
                    s.len()
                ))
            })?;
            info!(split = %split, threshold = t, valid_f1 = f1, "chose the threshold");
            Ok(t)
        }
        Threshold::Rule(ThresholdRule::MaxFpr(budget)) => {
            let (t, rate) = metrics::max_fpr_threshold(s, l, budget).map_err(|e| match e {
                metrics::FprCutError::NoNegatives => bad(format!(
                    "max_fpr {budget}: the validation side ({} rows) holds no benign rows to measure a false-positive rate on",
                    s.len()
                )),
                metrics::FprCutError::NothingFlagged { allowed, negatives, top_score } => {
                    let hint = if (negatives as f64) * budget < 1.0 {
                        format!(
                            "; a rate of {budget} can only be measured on at least {:.0} benign rows: \
                             train on more data, raise the value or use {{ rule = \"best_f1\" }}",
                            (1.0 / budget).ceil()
                        )
                    } else {
                        "; raise the value or enlarge params.valid_fraction".to_string()
                    };
                    bad(format!(
                        "max_fpr {budget}: no threshold flags any validation row within the budget: \
                         {negatives} benign validation rows allow {allowed} false positives, and the \
                         highest score ({top_score}) is held by more benign rows than that{hint}"
                    ))
                }
            })?;
            info!(split = %split, threshold = t, valid_fpr = rate, "chose the threshold");
            Ok(t)
        }
    }
}

fn evaluate(
    spec: &TrainSpec,
    split: SplitKind,
    threshold: f64,
    (sides, labels, scores): (&[u8], &[u8], Scores<'_>),
    valid: (&[f64], &[bool]),
    fitted: &Fitted,
) -> MetricsRow {
    let (s, l) = side_rows(TEST, sides, labels, scores);
    let c = metrics::confusion(&s, &l, threshold);
    let rates = Rates::of(&c);
    let v = Rates::of(&metrics::confusion(valid.0, valid.1, threshold));
    MetricsRow {
        split: split.to_string(),
        model: MODEL_KIND.to_string(),
        side: SIDE_NAMES[TEST as usize].to_string(),
        data: spec.input.clone(),
        rows: s.len() as i64,
        positives: l.iter().filter(|&&x| x).count() as i64,
        unlabelled_rows: 0,
        excluded_rows: 0,
        roc_auc: metrics::roc_auc(&s, &l, None),
        pr_auc: metrics::pr_auc(&s, &l, None),
        precision: Some(metrics::precision(&c)),
        recall: Some(metrics::recall(&c)),
        f1: Some(metrics::f1(&c)),
        fpr: rates.fpr,
        alerts_per_million_benign: rates.fpr.map(|r| r * 1e6),
        threshold,
        threshold_rule: spec.threshold.rule_name().to_string(),
        threshold_target: spec.threshold.target(),
        valid_fpr: v.fpr,
        valid_recall: v.recall,
        tp: c.tp as i64,
        fp: c.fp as i64,
        tn: c.tn as i64,
        fn_: c.fn_ as i64,
        train_rows: fitted.train_rows as i64,
        train_weighted_rows: fitted.train_distinct as i64,
        valid_rows: fitted.valid_rows as i64,
        best_iteration: fitted.best_iteration,
        train_seconds: fitted.seconds,
    }
}

fn batch(columns: Vec<(&str, ArrayRef)>, during: &'static str) -> Result<RecordBatch> {
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), a.null_count() > 0))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(|source| Error::Arrow {
        context: "model".to_string(),
        during,
        source,
    })
}

/// Trains one model per split of `spec.splits` on `input`, scores every row
/// with each, evaluates each on its test side, and returns the model of
/// `spec.deploy_split` ready to save, with the scored rows in memory. See
/// [`train`] for input read in passes and scored rows written as they come.
pub fn train_and_evaluate(spec: &TrainSpec, input: &[RecordBatch]) -> Result<TrainOutcome> {
    let mut scored = Vec::new();
    let trained = train(spec, &InMemory(input), &mut |b| {
        scored.push(b);
        Ok(())
    })?;
    Ok(TrainOutcome {
        scored,
        metrics: trained.metrics,
        metric_rows: trained.metric_rows,
        importance: trained.importance,
        deployed: trained.deployed,
    })
}

/// What [`train`] returns: a [`TrainOutcome`] whose scored rows went to the sink.
#[derive(Debug)]
pub struct Trained {
    /// One row per split: test-side metrics of that split's model.
    pub metrics: RecordBatch,
    /// The same rows as values, for callers that add evaluation rows.
    pub metric_rows: Vec<MetricsRow>,
    /// Gain and split counts per split and feature.
    pub importance: RecordBatch,
    /// The model of `deploy_split`, ready to save.
    pub deployed: SavedModel,
    /// Rows of the input.
    pub input_rows: u64,
    /// Scored rows handed to the sink, all splits.
    pub scored_rows: u64,
}

/// [`train_and_evaluate`] on an input read in passes: memory holds about
/// 40 bytes per input row plus the training matrix (which
/// `params.max_train_rows` bounds), not the input. The scored rows of each
/// split go to `sink` batch by batch (keys as in the input, then `label`,
/// `split`, `side`, `score`, `predicted` and any reason columns).
/// Synchronous and CPU-bound (LightGBM's handles cannot leave this thread):
/// call it from a blocking task.
#[tracing::instrument(skip_all, fields(stage = %spec.name))]
pub fn train(spec: &TrainSpec, source: &dyn Source, sink: &mut ScoredSink<'_>) -> Result<Trained> {
    spec.validate()?;
    let context = spec.context();
    let Some(schema) = source.schema() else {
        return Err(Error::EmptyTrainingSet {
            context,
            split: spec.splits[0].to_string(),
            input_rows: 0,
        });
    };
    let feature_names = spec.resolve_features(&schema)?;
    let keys: Vec<String> = spec
        .keys
        .iter()
        .filter(|k| schema.column_with_name(k).is_some())
        .cloned()
        .collect();
    let started = Instant::now();
    let prepared = prepare(spec, source, &schema, &feature_names, &keys)?;
    info!(
        rows = prepared.rows,
        features = feature_names.len(),
        distinct_vectors = prepared.distinct.reps.len(),
        seconds = started.elapsed().as_secs_f64(),
        "prepared training input"
    );
    let ctx = Ctx {
        spec,
        source,
        context: context.clone(),
        names: &feature_names,
        rows: prepared.rows,
        labels: &prepared.labels,
        content: &prepared.content,
        distinct: &prepared.distinct,
    };
    let labels = &prepared.labels;
    let mut scored_rows = 0;
    let mut metric_rows = Vec::new();
    let mut importance: Vec<(String, String, f64, i64)> = Vec::new();
    let mut deployed = None;
    for &split in &spec.splits {
        let sides = ctx.sides(split, &prepared.group, prepared.ts.as_deref());
        let is_deployed = split == spec.deploy_split;
        let fitted = ctx.fit(split, &sides, is_deployed)?;
        let predict_started = Instant::now();
        let model_text = fitted
            .booster
            .save_string()
            .map_err(ctx.lgbm(split, "write the model text"))?;
        let per_vector = ctx.predict(split, &model_text)?;
        let scores = Scores {
            per_vector: &per_vector,
            of_row: &prepared.distinct.of_row,
        };
        let reasons = match spec.explain {
            0 => None,
            _ => Some(ctx.explain(split, &model_text)?),
        };
        let (vs, vl) = side_rows(VALID, &sides, labels, scores);
        let threshold = choose_threshold(spec, split, (&vs, &vl))?;
        let row = evaluate(
            spec,
            split,
            threshold,
            (&sides, labels, scores),
            (&vs, &vl),
            &fitted,
        );
        drop((vs, vl));
        info!(
            split = %split,
            train_rows = fitted.train_rows,
            train_distinct = fitted.train_distinct,
            valid_rows = fitted.valid_rows,
            test_rows = row.rows,
            best_iteration = fitted.best_iteration,
            train_seconds = fitted.seconds,
            predict_seconds = predict_started.elapsed().as_secs_f64(),
            roc_auc = row.roc_auc,
            pr_auc = row.pr_auc,
            f1 = row.f1,
            fpr = row.fpr,
            threshold,
            "trained and evaluated"
        );
        let gain = fitted
            .booster
            .feature_importance(ImportanceType::Gain)
            .map_err(ctx.lgbm(split, "report feature importance"))?;
        let count = fitted
            .booster
            .feature_importance(ImportanceType::Split)
            .map_err(ctx.lgbm(split, "report feature importance"))?;
        for (f, name) in feature_names.iter().enumerate() {
            importance.push((
                split.to_string(),
                name.clone(),
                gain.get(f).copied().unwrap_or(0.0),
                count.get(f).copied().unwrap_or(0.0) as i64,
            ));
        }
        if is_deployed {
            deployed = Some(SavedModel {
                model_text,
                card: ModelCard {
                    name: spec.model_name.clone(),
                    created_by: format!("zeekml {}", env!("CARGO_PKG_VERSION")),
                    lightgbm3_version: LIGHTGBM3_VERSION.to_string(),
                    objective: "binary".to_string(),
                    feature_names: feature_names.clone(),
                    feature_sources: feature_names
                        .iter()
                        .map(|n| FeatureSource {
                            name: n.clone(),
                            stage: spec.input.clone(),
                        })
                        .collect(),
                    feature_stages: Vec::new(),
                    stage_params: serde_json::Value::Null,
                    training_table: None,
                    label: spec.label.clone(),
                    params: spec.params.clone(),
                    split: split.to_string(),
                    threshold,
                    threshold_rule: spec.threshold.rule_name().to_string(),
                    threshold_target: spec.threshold.target(),
                    evaluations: Vec::new(),
                    train_rows: fitted.train_rows as u64,
                    training_fingerprint: fitted.fingerprint.clone().unwrap_or_default(),
                    metrics: serde_json::to_value(&row).unwrap_or(serde_json::Value::Null),
                    best_iteration: fitted.best_iteration.max(0) as u64,
                },
            });
        }
        drop(fitted);
        let reasons = reasons.as_ref().map(|(rows, position)| Explained {
            rows,
            of_row: &prepared.distinct.of_row,
            position,
            feature_names: &feature_names,
        });
        scored_rows +=
            ctx.write_scored(split, &keys, (&sides, scores, threshold), reasons, sink)?;
        metric_rows.push(row);
    }
    let importance = batch(
        vec![
            (
                "split",
                Arc::new(StringArray::from_iter_values(
                    importance.iter().map(|r| r.0.as_str()),
                )) as ArrayRef,
            ),
            (
                "feature",
                Arc::new(StringArray::from_iter_values(
                    importance.iter().map(|r| r.1.as_str()),
                )),
            ),
            (
                "gain",
                Arc::new(Float64Array::from_iter_values(
                    importance.iter().map(|r| r.2),
                )),
            ),
            (
                "splits",
                Arc::new(Int64Array::from_iter_values(importance.iter().map(|r| r.3))),
            ),
        ],
        "build the importance table",
    )?;
    let deployed = deployed.ok_or_else(|| Error::InvalidSpec {
        context: spec.context(),
        field: "deploy_split",
        reason: format!("`{}` is not one of the splits", spec.deploy_split),
    })?;
    Ok(Trained {
        metrics: metrics_batch(&metric_rows)?,
        metric_rows,
        importance,
        deployed,
        input_rows: prepared.rows as u64,
        scored_rows,
    })
}

/// What the first pass keeps of every row.
struct Prepared {
    rows: usize,
    labels: Vec<u8>,
    /// Hash of the row's keys, label and features: what the splits rank by.
    content: Vec<u64>,
    /// Dedup group (empty without a dedup split).
    group: Vec<u64>,
    /// Times for the time split.
    ts: Option<Vec<f64>>,
    distinct: Distinct,
}

/// The first pass: labels, row hashes, groups and times, every value
/// checked, and the distinct feature vectors.
fn prepare(
    spec: &TrainSpec,
    source: &dyn Source,
    schema: &Schema,
    names: &[String],
    keys: &[String],
) -> Result<Prepared> {
    let context = spec.context();
    let dedup = spec.splits.contains(&SplitKind::Dedup);
    let time = spec.splits.contains(&SplitKind::Time);
    // Columns the input lacks are left out of the scan, so that reading
    // them names them in a `MissingColumn` error.
    let mut columns: Vec<String> = names.to_vec();
    columns.extend(keys.iter().cloned());
    columns.extend(
        [
            Some(spec.label.as_str()),
            dedup.then_some(GROUP_COLUMN),
            time.then_some(TIME_COLUMN),
        ]
        .into_iter()
        .flatten()
        .filter(|c| schema.column_with_name(c).is_some())
        .map(str::to_string),
    );
    let expected = source.num_rows().unwrap_or(0);
    let mut vectors: Vec<(u64, u64, u32)> = Vec::with_capacity(expected);
    let mut labels: Vec<u8> = Vec::with_capacity(expected);
    let mut content: Vec<u64> = Vec::with_capacity(expected);
    let mut group: Vec<u64> = Vec::with_capacity(if dedup { expected } else { 0 });
    let mut ts: Vec<f64> = Vec::with_capacity(if time { expected } else { 0 });
    let rows = each_batch(source, &columns, &context, |start, batch| {
        if start + batch.num_rows() > u32::MAX as usize {
            return Err(Error::TooManyRows {
                context: context.clone(),
                rows: start + batch.num_rows(),
            });
        }
        let table = Table::at(
            std::slice::from_ref(batch),
            start,
            &spec.input,
            context.clone(),
        );
        let features = Features::resolve(&table, names)?;
        let l = read_labels(&table, &spec.label)?;
        let (h, h2) = features.hash_rows(&table)?;
        let mut c: Vec<u64> = h
            .iter()
            .zip(&l)
            .map(|(&h, &l)| hash::add(h, u64::from(l)))
            .collect();
        for k in keys {
            hash_column_into(&table, k, &mut c)?;
        }
        for x in &mut c {
            *x = hash::finish(*x);
        }
        if dedup {
            group.extend(group_keys(&table, &c)?);
        }
        if time {
            ts.extend(read_times(&table, TIME_COLUMN)?);
        }
        vectors.extend(
            h.iter()
                .zip(&h2)
                .enumerate()
                .map(|(i, (&h, &h2))| (h, h2, (start + i) as u32)),
        );
        labels.extend(l);
        content.extend(c);
        Ok(())
    })?;
    Ok(Prepared {
        rows,
        labels,
        content,
        group,
        ts: time.then_some(ts),
        distinct: distinct(vectors),
    })
}

/// Dedup group of each row: its uid, or its content when the uid is null
/// or the input has no uid column.
fn group_keys(table: &Table<'_>, content: &[u64]) -> Result<Vec<u64>> {
    let mut group = content.to_vec();
    if table.has_column(GROUP_COLUMN) {
        for (b, a) in table.column(GROUP_COLUMN)?.into_iter().enumerate() {
            let start = table.start(b);
            hash_values(a.as_ref(), &table.context, |i, v| {
                if let Some(v) = v {
                    group[start + i] = v;
                }
            })?;
        }
    }
    Ok(group)
}

/// Type of the `split` and `side` columns: a handful of names repeated on
/// millions of rows, so one byte per row plus the names.
fn label_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8))
}

/// Reasons of distinct feature vectors and the vector of each row.
struct Explained<'a> {
    rows: &'a ReasonRows,
    of_row: &'a [u32],
    /// Row of `rows` holding each vector's reasons.
    position: &'a [u32],
    feature_names: &'a [String],
}
