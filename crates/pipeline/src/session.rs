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
    context_with_partitions(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    )
}

/// A session whose plans run as one partition on the polling task, with
/// zeekml's functions registered: for callers that run several plans side
/// by side themselves.
pub fn context_with_partitions(partitions: usize) -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(partitions.max(1))
        .with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_udf(log1p_udf());
    ctx.register_udf(crate::net::ip_in_cidrs_udf());
    ctx
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
            let out: Float64Array = input.unary(f64::ln_1p);
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
