//! The DataFusion session every stage and query runs in, with zeekml's UDFs.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_float64_array;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use datafusion::prelude::{SessionConfig, SessionContext};

/// A session with every core in use and zeekml's functions registered.
pub fn new_context() -> SessionContext {
    context_with_partitions(cores())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

fn config(partitions: usize) -> SessionConfig {
    SessionConfig::new()
        .with_target_partitions(partitions.max(1))
        .with_information_schema(true)
}

/// A session on every core for a stage under a memory limit of `limit`
/// bytes: its operators hold at most three quarters of it (spilling sorts, aggregates
/// and windows to the OS temporary directory beyond that); no limit when
/// `None`.
pub fn context_with_memory_limit(
    limit: Option<usize>,
) -> datafusion::error::Result<SessionContext> {
    let Some(limit) = limit else {
        return Ok(new_context());
    };
    // The pool counts what the operators report. Decoding, Parquet writing
    // and the allocator come on top: the process peaked at 1.6-2 times the
    // pool at 20M connections through pipelines/beacon.toml.
    let pool = limit - limit / 4;
    let runtime = crate::memory::limited_runtime(pool)?;
    // Each sort holds back this much for its spill merge; the default
    // 10 MB per sort would use up a small pool in a plan of many sorts.
    let reservation = (pool / 256).min(10 << 20);
    let mut config = config(cores()).with_sort_spill_reservation_bytes(reservation);
    // Text read as string views keeps every batch's page buffers alive and
    // counted through filters, joins and repartitions: one queued slice of
    // a batch is counted with all of its buffers, and the pool fills with
    // memory that is not there. Plain strings are copied where they go.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    register_functions(&ctx);
    Ok(ctx)
}

fn register_functions(ctx: &SessionContext) {
    ctx.register_udf(log1p_udf());
    ctx.register_udf(crate::net::ip_in_cidrs_udf());
}

/// A session that plans for `partitions` partitions, with zeekml's functions
/// registered. With 1, a plan runs on the task that polls it: for callers
/// that run several plans side by side themselves.
pub fn context_with_partitions(partitions: usize) -> SessionContext {
    let ctx = SessionContext::new_with_config(config(partitions));
    register_functions(&ctx);
    ctx
}

/// Small whole numbers whose `ln_1p` is looked up: packet, byte and port
/// counts are mostly below this, and the libm call was the largest cost
/// of the feature stage.
const LOG1P_TABLE_LEN: usize = 4096;

static LOG1P_TABLE: std::sync::LazyLock<Vec<f64>> =
    std::sync::LazyLock::new(|| (0..LOG1P_TABLE_LEN).map(|i| (i as f64).ln_1p()).collect());

/// `f64::ln_1p`, bit for bit, with whole numbers below [`LOG1P_TABLE_LEN`]
/// taken from a table filled by `ln_1p` itself.
#[inline]
fn log1p(x: f64) -> f64 {
    // The cast saturates and maps NaN to 0, so the comparison keeps exact
    // whole numbers only; -0.0 keeps its sign through libm.
    let i = x as usize;
    if i < LOG1P_TABLE_LEN && i as f64 == x && x.is_sign_positive() {
        LOG1P_TABLE[i]
    } else {
        x.ln_1p()
    }
}

/// `log1p(x)` = ln(1 + x), accurate near zero; DataFusion has no built-in.
pub fn log1p_udf() -> ScalarUDF {
    create_udf(
        "log1p",
        vec![DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| -> DfResult<ColumnarValue> {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let input = as_float64_array(&arrays[0])?;
            let out: Float64Array = input.unary(log1p);
            let out: ArrayRef = Arc::new(out);
            Ok(match &args[0] {
                ColumnarValue::Scalar(_) => {
                    ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&out, 0)?)
                }
                ColumnarValue::Array(_) => ColumnarValue::Array(out),
            })
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    #[test]
    fn log1p_table_matches_ln_1p_bit_for_bit() {
        let mut cases = vec![
            0.0, -0.0, 0.5, 1.0, 4095.0, 4095.5, 4096.0, 1e300, -0.5, -1.0,
        ];
        cases.extend((0..5000).map(f64::from));
        cases.extend([
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ]);
        for x in cases {
            assert_eq!(log1p(x).to_bits(), x.ln_1p().to_bits(), "{x}");
        }
    }

    #[tokio::test]
    async fn log1p_handles_ints_nulls_and_scalars() {
        let ctx = new_context();
        let batches = ctx
            .sql("SELECT log1p(x) AS y FROM (VALUES (CAST(0 AS BIGINT)), (NULL), (CAST(9 AS BIGINT))) t(x)")
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let y = as_float64_array(batches[0].column(0)).expect("f64");
        assert_eq!(y.value(0), 0.0);
        assert!(y.is_null(1));
        assert!((y.value(2) - 10f64.ln()).abs() < 1e-12);
        let batches = ctx
            .sql("SELECT log1p(1e-12) AS y")
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let y = as_float64_array(batches[0].column(0)).expect("f64");
        assert!((y.value(0) - 1e-12).abs() < 1e-24);
    }
}
