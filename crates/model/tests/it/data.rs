//! Synthetic feature tables shaped like the pipeline's `features` table:
//! the six key columns, `label`, and numeric/boolean features. Positive
//! (scan) flows can be repeated, like UWF's 256 copies of each
//! Reconnaissance flow.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
    UInt32Array,
};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema};
use datafusion::arrow::record_batch::RecordBatch;

/// splitmix64: a tiny seeded generator, enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Shape of a synthetic table.
pub struct Shape {
    pub negatives: usize,
    pub positive_flows: usize,
    pub copies: usize,
    /// Extra one-hot columns (`service_0..`) beyond the fixed features.
    pub one_hots: usize,
    /// Probability that a positive flow looks like a negative one (label noise).
    pub overlap: f64,
    pub batch_rows: usize,
    pub seed: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            negatives: 3000,
            positive_flows: 40,
            copies: 16,
            one_hots: 4,
            overlap: 0.0,
            batch_rows: 1000,
            seed: 7,
        }
    }
}

struct Row {
    uid: String,
    ts: f64,
    src_ip: String,
    src_port: i64,
    dest_ip: String,
    dest_port: i64,
    label: i64,
    duration: Option<f64>,
    orig_bytes: f64,
    resp_bytes: f64,
    orig_pkts: f64,
    resp_pkts: f64,
    udp: bool,
    sf: i32,
    one_hot: usize,
}

/// Flow number `i` at time slot `slot` (positives are spread over the
/// negatives' time range so that a time split sees both classes).
fn flow(rng: &mut Rng, i: usize, slot: f64, positive: bool, shape: &Shape) -> Row {
    let looks_positive = positive && rng.unit() >= shape.overlap;
    let ts = 1.644e9 + slot * 0.37 + rng.unit();
    if looks_positive {
        Row {
            uid: format!("Cp{i:010}"),
            ts,
            src_ip: format!("10.1.{}.{}", rng.below(4), rng.below(250)),
            src_port: 40000 + rng.below(20000) as i64,
            dest_ip: format!("192.168.{}.{}", rng.below(255), rng.below(255)),
            dest_port: 1 + rng.below(1024) as i64,
            label: 1,
            duration: if rng.unit() < 0.5 {
                None
            } else {
                Some(rng.unit() * 0.01)
            },
            orig_bytes: 0.0,
            resp_bytes: 0.0,
            orig_pkts: 1.0 + rng.below(2) as f64,
            resp_pkts: rng.below(2) as f64,
            udp: rng.unit() < 0.1,
            sf: 0,
            one_hot: shape.one_hots.saturating_sub(1),
        }
    } else {
        Row {
            uid: format!("Cn{i:010}"),
            ts,
            src_ip: format!("10.0.{}.{}", rng.below(8), rng.below(250)),
            src_port: 1024 + rng.below(64000) as i64,
            dest_ip: format!("172.16.{}.{}", rng.below(255), rng.below(255)),
            dest_port: [53, 80, 443, 123, 22][rng.below(5) as usize],
            label: i64::from(positive),
            duration: Some(rng.unit() * 30.0),
            orig_bytes: (rng.unit() * 5000.0).floor() + 40.0,
            resp_bytes: (rng.unit() * 50000.0).floor(),
            orig_pkts: 2.0 + rng.below(40) as f64,
            resp_pkts: 1.0 + rng.below(60) as f64,
            udp: rng.unit() < 0.4,
            sf: i32::from(rng.unit() < 0.9),
            one_hot: rng.below(shape.one_hots.max(1) as u64) as usize,
        }
    }
}

/// Rows: all negatives, then each positive flow `copies` times (identical
/// rows, same uid), split into batches of `batch_rows`.
pub fn table(shape: &Shape) -> Vec<RecordBatch> {
    let mut rng = Rng::new(shape.seed);
    let mut rows = Vec::with_capacity(shape.negatives + shape.positive_flows * shape.copies);
    for i in 0..shape.negatives {
        rows.push(flow(&mut rng, i, i as f64, false, shape));
    }
    for i in 0..shape.positive_flows {
        let slot = (i as f64 + 0.5) * shape.negatives as f64 / shape.positive_flows as f64;
        let r = flow(&mut rng, shape.negatives + i, slot, true, shape);
        for _ in 0..shape.copies {
            rows.push(Row {
                uid: r.uid.clone(),
                src_ip: r.src_ip.clone(),
                dest_ip: r.dest_ip.clone(),
                ..r
            });
        }
    }
    rows.chunks(shape.batch_rows.max(1))
        .map(|chunk| batch(chunk, shape.one_hots))
        .collect()
}

fn batch(rows: &[Row], one_hots: usize) -> RecordBatch {
    let log1p = |f: fn(&Row) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| f(r).ln_1p()),
        ))
    };
    let mut fields = vec![
        Field::new("uid", DataType::Utf8, true),
        Field::new("ts", DataType::Float64, false),
        Field::new("src_ip", DataType::Utf8, false),
        Field::new("src_port", DataType::Int64, false),
        Field::new("dest_ip", DataType::Utf8, false),
        Field::new("dest_port", DataType::Int64, false),
        Field::new("label", DataType::Int64, false),
        Field::new("duration_log1p", DataType::Float64, true),
        Field::new("duration_missing", DataType::Int32, false),
        Field::new("orig_bytes_log1p", DataType::Float64, false),
        Field::new("resp_bytes_log1p", DataType::Float64, false),
        Field::new("orig_pkts_log1p", DataType::Float64, false),
        Field::new("resp_pkts_log1p", DataType::Float64, false),
        Field::new("protocol_udp", DataType::Boolean, false),
        Field::new("conn_state_SF", DataType::Int32, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.uid.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.ts))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.src_ip.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.src_port),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.dest_ip.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.dest_port),
        )),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.label))),
        Arc::new(
            rows.iter()
                .map(|r| r.duration.map(f64::ln_1p))
                .collect::<Float64Array>(),
        ),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| i32::from(r.duration.is_none())),
        )),
        log1p(|r| r.orig_bytes),
        log1p(|r| r.resp_bytes),
        log1p(|r| r.orig_pkts),
        log1p(|r| r.resp_pkts),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.udp)))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.sf))),
    ];
    for k in 0..one_hots {
        fields.push(Field::new(format!("service_{k}"), DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| i64::from(r.one_hot == k)),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// The same rows in another order and other batch boundaries: a seeded
/// permutation, re-cut into batches of `batch_rows`.
pub fn shuffled(input: &[RecordBatch], seed: u64, batch_rows: usize) -> Vec<RecordBatch> {
    let all = concat_batches(&input[0].schema(), input).unwrap();
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    let mut rng = Rng::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let all = take_record_batch(&all, &UInt32Array::from(order)).unwrap();
    (0..all.num_rows())
        .step_by(batch_rows)
        .map(|from| all.slice(from, batch_rows.min(all.num_rows() - from)))
        .collect()
}

/// Replaces column `name` in every batch.
pub fn with_column(
    input: &[RecordBatch],
    name: &str,
    f: impl Fn(&RecordBatch) -> ArrayRef,
) -> Vec<RecordBatch> {
    input
        .iter()
        .map(|b| {
            let schema = b.schema();
            let idx = schema.index_of(name).unwrap();
            let new = f(b);
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields[idx] = Field::new(name, new.data_type().clone(), true);
            let mut columns = b.columns().to_vec();
            columns[idx] = new;
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
        })
        .collect()
}

/// One scored row, comparable across runs: (uid, ts bits, split, side, score bits).
pub type ScoredRow = (String, u64, String, String, u64);

pub fn scored_rows(scored: &[RecordBatch]) -> Vec<ScoredRow> {
    let mut out = Vec::new();
    for b in scored {
        let uid = b.column_by_name("uid").unwrap().as_string::<i32>();
        let ts = b
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<Float64Type>();
        let split = text(b, "split");
        let side = text(b, "side");
        let score = b
            .column_by_name("score")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push((
                uid.value(i).to_string(),
                ts.value(i).to_bits(),
                split.value(i).to_string(),
                side.value(i).to_string(),
                score.value(i).to_bits(),
            ));
        }
    }
    out.sort();
    out
}

/// Label of every input row, in input order.
pub fn labels(input: &[RecordBatch]) -> Vec<i64> {
    input
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name("label").unwrap();
            match a.data_type() {
                DataType::Int32 => a
                    .as_primitive::<Int32Type>()
                    .values()
                    .iter()
                    .map(|&v| i64::from(v))
                    .collect::<Vec<_>>(),
                _ => a.as_primitive::<Int64Type>().values().to_vec(),
            }
        })
        .collect()
}

/// Number of rows with `len()` across batches.
pub fn rows(input: &[RecordBatch]) -> usize {
    input.iter().map(|b| b.num_rows()).sum()
}

/// A text column of a scored batch (`split` and `side` are dictionaries)
/// as plain strings.
pub fn text(b: &RecordBatch, name: &str) -> StringArray {
    let column = b.column_by_name(name).unwrap();
    datafusion::arrow::compute::cast(column, &DataType::Utf8)
        .unwrap()
        .as_string::<i32>()
        .clone()
}
