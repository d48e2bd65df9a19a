//! Column access over a list of record batches: typed numeric readers,
//! labels, key hashing, and gathers into the dense buffers LightGBM takes.
//! Everything works column by column on the Arrow buffers; no row is ever
//! materialised as a list of dynamic values.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::hash;
use crate::spec::column_list;

/// Input batches seen as one table with global row numbers.
pub(crate) struct Table<'a> {
    pub batches: &'a [RecordBatch],
    /// `starts[b]` is the number of batch `b`'s first row; one extra entry
    /// holds the total.
    starts: Vec<usize>,
    /// Number of the first row in the whole input, for messages about a
    /// part of it.
    offset: usize,
    /// Name of the input table, for messages.
    pub name: String,
    /// Stage or model, for messages.
    pub context: String,
}

impl<'a> Table<'a> {
    pub fn new(batches: &'a [RecordBatch], name: &str, context: String) -> Self {
        Self::at(batches, 0, name, context)
    }

    /// Batches that start at row `offset` of the whole input.
    pub fn at(batches: &'a [RecordBatch], offset: usize, name: &str, context: String) -> Self {
        let mut starts = Vec::with_capacity(batches.len() + 1);
        let mut n = 0;
        for b in batches {
            starts.push(n);
            n += b.num_rows();
        }
        starts.push(n);
        Table {
            batches,
            starts,
            offset,
            name: name.to_string(),
            context,
        }
    }

    pub fn rows(&self) -> usize {
        self.starts[self.batches.len()]
    }

    pub fn start(&self, batch: usize) -> usize {
        self.starts[batch]
    }

    /// Batch and row within it of global row `row`.
    #[inline]
    pub fn locate(&self, row: usize) -> (usize, usize) {
        let b = self.starts.partition_point(|&s| s <= row) - 1;
        (b, row - self.starts[b])
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.batches
            .first()
            .is_some_and(|b| b.schema().column_with_name(name).is_some())
    }

    /// The column in every batch, or a `MissingColumn` error.
    pub fn column(&self, name: &str) -> Result<Vec<&'a ArrayRef>> {
        self.batches
            .iter()
            .map(|b| {
                b.column_by_name(name).ok_or_else(|| Error::MissingColumn {
                    context: self.context.clone(),
                    table: self.name.clone(),
                    column: name.to_string(),
                    available: column_list(&b.schema()),
                })
            })
            .collect()
    }

    /// "row N (uid X)": 1-based position in the input as handed over, with
    /// the flow's uid when there is one, since scans do not keep row order.
    pub fn describe_row(&self, row: usize) -> String {
        let (b, i) = self.locate(row);
        let uid = self.batches[b]
            .column_by_name("uid")
            .and_then(|c| string_at(c.as_ref(), i));
        let n = self.offset + row + 1;
        match uid {
            Some(u) => format!("row {n} (uid {u})"),
            None => format!("row {n}"),
        }
    }
}

fn string_at(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Some(a.as_string_view().value(i).to_string()),
        _ => None,
    }
}

/// A numeric or boolean column of one batch, read as numbers.
#[derive(Clone, Copy)]
pub(crate) enum Num<'a> {
    F64(&'a Float64Array),
    F32(&'a Float32Array),
    I64(&'a Int64Array),
    I32(&'a Int32Array),
    I16(&'a Int16Array),
    I8(&'a Int8Array),
    U64(&'a UInt64Array),
    U32(&'a UInt32Array),
    U16(&'a UInt16Array),
    U8(&'a UInt8Array),
    Bool(&'a BooleanArray),
}

impl<'a> Num<'a> {
    pub fn new(a: &'a dyn Array) -> Option<Self> {
        Some(match a.data_type() {
            DataType::Float64 => Num::F64(a.as_primitive::<Float64Type>()),
            DataType::Float32 => Num::F32(a.as_primitive::<Float32Type>()),
            DataType::Int64 => Num::I64(a.as_primitive::<Int64Type>()),
            DataType::Int32 => Num::I32(a.as_primitive::<Int32Type>()),
            DataType::Int16 => Num::I16(a.as_primitive::<Int16Type>()),
            DataType::Int8 => Num::I8(a.as_primitive::<Int8Type>()),
            DataType::UInt64 => Num::U64(a.as_primitive::<UInt64Type>()),
            DataType::UInt32 => Num::U32(a.as_primitive::<UInt32Type>()),
            DataType::UInt16 => Num::U16(a.as_primitive::<UInt16Type>()),
            DataType::UInt8 => Num::U8(a.as_primitive::<UInt8Type>()),
            DataType::Boolean => Num::Bool(a.as_boolean()),
            _ => return None,
        })
    }

    pub fn is_float(&self) -> bool {
        matches!(self, Num::F64(_) | Num::F32(_))
    }

    /// Value at `i`, `None` for null.
    #[inline]
    pub fn get(&self, i: usize) -> Option<f64> {
        macro_rules! read {
            ($a:expr) => {
                if $a.is_null(i) {
                    None
                } else {
                    Some($a.value(i) as f64)
                }
            };
        }
        match self {
            Num::F64(a) => read!(a),
            Num::F32(a) => read!(a),
            Num::I64(a) => read!(a),
            Num::I32(a) => read!(a),
            Num::I16(a) => read!(a),
            Num::I8(a) => read!(a),
            Num::U64(a) => read!(a),
            Num::U32(a) => read!(a),
            Num::U16(a) => read!(a),
            Num::U8(a) => read!(a),
            Num::Bool(a) => {
                if a.is_null(i) {
                    None
                } else {
                    Some(if a.value(i) { 1.0 } else { 0.0 })
                }
            }
        }
    }

    /// Calls `f(key, value)` for each `(key, row)` of `rows`, `None` for
    /// null. The type is matched once, outside the loop, which is what makes
    /// whole-column passes cheap.
    #[inline]
    pub fn for_each<K>(
        &self,
        rows: impl Iterator<Item = (K, usize)>,
        mut f: impl FnMut(K, Option<f64>),
    ) {
        macro_rules! each {
            ($a:expr) => {{
                let values = $a.values();
                if $a.null_count() == 0 {
                    for (k, i) in rows {
                        f(k, Some(values[i] as f64));
                    }
                } else {
                    for (k, i) in rows {
                        f(k, (!$a.is_null(i)).then(|| values[i] as f64));
                    }
                }
            }};
        }
        match self {
            Num::F64(a) => each!(a),
            Num::F32(a) => each!(a),
            Num::I64(a) => each!(a),
            Num::I32(a) => each!(a),
            Num::I16(a) => each!(a),
            Num::I8(a) => each!(a),
            Num::U64(a) => each!(a),
            Num::U32(a) => each!(a),
            Num::U16(a) => each!(a),
            Num::U8(a) => each!(a),
            Num::Bool(a) => {
                let values = a.values();
                let one = |b: bool| if b { 1.0 } else { 0.0 };
                if a.null_count() == 0 {
                    for (k, i) in rows {
                        f(k, Some(one(values.value(i))));
                    }
                } else {
                    for (k, i) in rows {
                        f(k, (!a.is_null(i)).then(|| one(values.value(i))));
                    }
                }
            }
        }
    }

    /// Exact integer value at `i` for integer and boolean columns.
    fn get_int(&self, i: usize) -> Option<i128> {
        macro_rules! read {
            ($a:expr) => {
                if $a.is_null(i) {
                    None
                } else {
                    Some($a.value(i) as i128)
                }
            };
        }
        match self {
            Num::I64(a) => read!(a),
            Num::I32(a) => read!(a),
            Num::I16(a) => read!(a),
            Num::I8(a) => read!(a),
            Num::U64(a) => read!(a),
            Num::U32(a) => read!(a),
            Num::U16(a) => read!(a),
            Num::U8(a) => read!(a),
            Num::Bool(a) => {
                if a.is_null(i) {
                    None
                } else {
                    Some(a.value(i) as i128)
                }
            }
            Num::F64(_) | Num::F32(_) => None,
        }
    }
}

/// Rows per tile of a row-major gather: a tile's rows (4096 x 4 bytes per
/// feature) stay in cache while every column writes into them.
pub(crate) const GATHER_TILE: usize = 4096;

/// Feature columns resolved in every batch, in feature order.
pub(crate) struct Features<'a> {
    pub names: Vec<String>,
    /// `cols[feature][batch]`.
    cols: Vec<Vec<Num<'a>>>,
}

impl<'a> Features<'a> {
    pub fn resolve(table: &Table<'a>, names: &[String]) -> Result<Self> {
        let mut cols = Vec::with_capacity(names.len());
        for name in names {
            let arrays = table.column(name)?;
            let nums = arrays
                .into_iter()
                .map(|a| {
                    Num::new(a.as_ref()).ok_or_else(|| Error::NonNumericFeature {
                        context: table.context.clone(),
                        table: table.name.clone(),
                        column: name.clone(),
                        data_type: a.data_type().clone(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            cols.push(nums);
        }
        Ok(Features {
            names: names.to_vec(),
            cols,
        })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Checks that every value is finite or null and returns, per row, two
    /// independent 64-bit hashes of the feature vector as the model sees it.
    pub fn hash_rows(&self, table: &Table<'_>) -> Result<(Vec<u64>, Vec<u64>)> {
        let mut h = vec![0u64; table.rows()];
        let mut h2 = vec![0u64; table.rows()];
        for (f, per_batch) in self.cols.iter().enumerate() {
            for (b, col) in per_batch.iter().enumerate() {
                let start = table.start(b);
                let out = &mut h[start..table.start(b + 1)];
                let out2 = &mut h2[start..table.start(b + 1)];
                let check = col.is_float();
                let mut bad: Option<(usize, f64)> = None;
                col.for_each((0..out.len()).map(|i| (i, i)), |i, v| {
                    let bits = match v {
                        None => hash::NULL,
                        Some(v) => {
                            let x = v as f32;
                            if check && !x.is_finite() && bad.is_none() {
                                bad = Some((i, v));
                            }
                            u64::from(hash::f32_bits(x))
                        }
                    };
                    out[i] = hash::add(out[i], bits);
                    out2[i] = hash::add2(out2[i], bits);
                });
                if let Some((i, value)) = bad {
                    return Err(Error::NonFiniteFeature {
                        context: table.context.clone(),
                        column: self.names[f].clone(),
                        value,
                        row: table.describe_row(start + i),
                    });
                }
            }
        }
        Ok((h, h2))
    }

    /// Checks that every value is finite or null, naming the first that is
    /// not.
    pub fn check_finite(&self, table: &Table<'_>) -> Result<()> {
        for (f, per_batch) in self.cols.iter().enumerate() {
            for (b, col) in per_batch.iter().enumerate().filter(|(_, c)| c.is_float()) {
                let mut bad: Option<(usize, f64)> = None;
                let n = table.start(b + 1) - table.start(b);
                col.for_each((0..n).map(|i| (i, i)), |i, v| {
                    if let Some(v) = v {
                        if !(v as f32).is_finite() && bad.is_none() {
                            bad = Some((i, v));
                        }
                    }
                });
                if let Some((i, value)) = bad {
                    return Err(Error::NonFiniteFeature {
                        context: table.context.clone(),
                        column: self.names[f].clone(),
                        value,
                        row: table.describe_row(table.start(b) + i),
                    });
                }
            }
        }
        Ok(())
    }

    /// Writes the features of rows of batch `b` into `out`: `pairs` are
    /// `(slot, row in the batch)` and feature `f` of a row goes to
    /// `out[at(slot, f)]`. Each column is read with its type matched once.
    pub fn gather_into(
        &self,
        b: usize,
        pairs: impl Iterator<Item = (usize, usize)> + Clone,
        out: &mut [f32],
        at: impl Fn(usize, usize) -> usize,
    ) {
        for (f, per_batch) in self.cols.iter().enumerate() {
            per_batch[b].for_each(pairs.clone(), |k, v| {
                out[at(k, f)] = v.map_or(f32::NAN, |v| v as f32)
            });
        }
    }

    /// Appends the features of `rows` of batch `b` to one buffer per feature.
    pub fn append_columns(&self, b: usize, rows: &[usize], cols: &mut [Vec<f32>]) {
        for (per_batch, col) in self.cols.iter().zip(cols) {
            let from = col.len();
            col.resize(from + rows.len(), 0.0);
            let dst = &mut col[from..];
            per_batch[b].for_each(rows.iter().enumerate().map(|(k, &i)| (k, i)), |k, v| {
                dst[k] = v.map_or(f32::NAN, |v| v as f32)
            });
        }
    }

    /// Column-major buffer of rows `from..to` of batch `b`.
    pub fn batch_col_major(&self, b: usize, from: usize, to: usize, out: &mut Vec<f32>) {
        let n = to - from;
        out.clear();
        out.resize(n * self.len(), 0.0);
        for (f, per_batch) in self.cols.iter().enumerate() {
            let dst = &mut out[f * n..(f + 1) * n];
            per_batch[b].for_each((from..to).map(|i| (i - from, i)), |k, v| {
                dst[k] = v.map_or(f32::NAN, |v| v as f32)
            });
        }
    }
}

/// Labels as 0/1 bytes; any other value or a null is an error naming the row.
pub(crate) fn read_labels(table: &Table<'_>, column: &str) -> Result<Vec<u8>> {
    let arrays = table.column(column)?;
    let mut labels = Vec::with_capacity(table.rows());
    for (b, a) in arrays.iter().enumerate() {
        let num = Num::new(a.as_ref())
            .filter(|n| !n.is_float())
            .ok_or_else(|| Error::LabelType {
                context: table.context.clone(),
                table: table.name.clone(),
                column: column.to_string(),
                data_type: a.data_type().clone(),
            })?;
        for i in 0..a.len() {
            match num.get_int(i) {
                Some(0) => labels.push(0),
                Some(1) => labels.push(1),
                Some(value) => {
                    return Err(Error::InvalidLabel {
                        context: table.context.clone(),
                        column: column.to_string(),
                        value,
                        row: table.describe_row(table.start(b) + i),
                    })
                }
                None => {
                    return Err(Error::NullLabel {
                        context: table.context.clone(),
                        column: column.to_string(),
                        row: table.describe_row(table.start(b) + i),
                    })
                }
            }
        }
    }
    Ok(labels)
}

/// Calls `f(row_in_batch, hash)` for every row of `a`; `hash` is `None` for
/// null. Strings and numbers are hashed directly; other types through their
/// text form.
pub(crate) fn hash_values(
    a: &dyn Array,
    context: &str,
    mut f: impl FnMut(usize, Option<u64>),
) -> Result<()> {
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            for i in 0..s.len() {
                f(i, s.is_valid(i).then(|| hash::bytes(s.value(i).as_bytes())));
            }
        }
        DataType::LargeUtf8 => {
            let s = a.as_string::<i64>();
            for i in 0..s.len() {
                f(i, s.is_valid(i).then(|| hash::bytes(s.value(i).as_bytes())));
            }
        }
        DataType::Utf8View => {
            let s = a.as_string_view();
            for i in 0..s.len() {
                f(i, s.is_valid(i).then(|| hash::bytes(s.value(i).as_bytes())));
            }
        }
        _ => {
            if let Some(n) = Num::new(a) {
                for i in 0..a.len() {
                    f(i, n.get(i).map(hash::f64_bits));
                }
            } else {
                let text = cast(a, &DataType::Utf8).map_err(|source| Error::Arrow {
                    context: context.to_string(),
                    during: "read a key column as text",
                    source,
                })?;
                let s = text.as_string::<i32>();
                for i in 0..s.len() {
                    f(i, s.is_valid(i).then(|| hash::bytes(s.value(i).as_bytes())));
                }
            }
        }
    }
    Ok(())
}

/// Folds column `name` of every batch into the per-row hashes `h`.
pub(crate) fn hash_column_into(table: &Table<'_>, name: &str, h: &mut [u64]) -> Result<()> {
    for (b, a) in table.column(name)?.into_iter().enumerate() {
        let start = table.start(b);
        hash_values(a.as_ref(), &table.context, |i, v| {
            let slot = &mut h[start + i];
            *slot = hash::add(*slot, v.unwrap_or(hash::NULL));
        })?;
    }
    Ok(())
}

/// Times in seconds from a numeric or timestamp column; null or non-finite
/// times are errors naming the row.
pub(crate) fn read_times(table: &Table<'_>, column: &str) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(table.rows());
    for (b, a) in table.column(column)?.into_iter().enumerate() {
        let bad_type = || Error::TimeType {
            context: table.context.clone(),
            column: column.to_string(),
            data_type: a.data_type().clone(),
        };
        let start = table.start(b);
        let bad_row = |i: usize| Error::BadTime {
            context: table.context.clone(),
            column: column.to_string(),
            row: table.describe_row(start + i),
        };
        if let DataType::Timestamp(unit, _) = a.data_type() {
            let per_second = match unit {
                TimeUnit::Second => 1.0,
                TimeUnit::Millisecond => 1e3,
                TimeUnit::Microsecond => 1e6,
                TimeUnit::Nanosecond => 1e9,
            };
            let ints = cast(a, &DataType::Int64).map_err(|_| bad_type())?;
            let ints = ints.as_primitive::<Int64Type>();
            for i in 0..ints.len() {
                if ints.is_null(i) {
                    return Err(bad_row(i));
                }
                out.push(ints.value(i) as f64 / per_second);
            }
        } else {
            let n = Num::new(a.as_ref()).ok_or_else(bad_type)?;
            for i in 0..a.len() {
                match n.get(i) {
                    Some(v) if v.is_finite() => out.push(v),
                    _ => return Err(bad_row(i)),
                }
            }
        }
    }
    Ok(out)
}
