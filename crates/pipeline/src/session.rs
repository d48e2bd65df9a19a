//! The DataFusion session every stage and query runs in, with zeekml's UDFs.

use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_float64_array;
use datafusion::error::Result as DfResult;
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
    TrackConsumersPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
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

/// A session on every core whose operators hold at most `limit` bytes
/// (spilling sorts, aggregates and windows to the OS temporary directory
/// beyond it); no limit when `None`.
pub fn context_with_memory_limit(
    limit: Option<usize>,
) -> datafusion::error::Result<SessionContext> {
    let Some(limit) = limit else {
        return Ok(new_context());
    };
    let runtime = limited_runtime(limit)?;
    // Each sort holds back this much for its spill merge; the default
    // 10 MB per sort would use up a small pool in a plan of many sorts.
    let reservation = (limit / 256).min(10 << 20);
    let config = config(cores()).with_sort_spill_reservation_bytes(reservation);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    register_functions(&ctx);
    Ok(ctx)
}

/// A runtime whose pool holds operators to `limit` bytes, except
/// `RepartitionExec` (see [`NoRepartitionSpill`]).
fn limited_runtime(limit: usize) -> DfResult<Arc<RuntimeEnv>> {
    // Its `Resources exhausted` errors name the five largest consumers, as
    // DataFusion's own `with_memory_limit` pool does.
    let top = NonZeroUsize::MIN.saturating_add(4);
    let pool = TrackConsumersPool::new(GreedyMemoryPool::new(limit), top);
    RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(NoRepartitionSpill(Arc::new(pool))))
        .build_arc()
}

/// `RepartitionExec` spills when its buffers do not fit the limit, and its
/// spill reader can wait forever when two inputs spill at once
/// (apache/datafusion#24883, fixed after DataFusion 55): every worker
/// parks, and the run neither ends nor fails, as a 20M-connection
/// `beacons` stage under a 2 GB limit once did. This pool grants its
/// buffers whatever the limit, so it never spills; they count against the
/// limit, and every other operator is held to it.
#[derive(Debug)]
struct NoRepartitionSpill(Arc<dyn MemoryPool>);

impl std::fmt::Display for NoRepartitionSpill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (RepartitionExec unbounded)", self.0)
    }
}

impl MemoryPool for NoRepartitionSpill {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.0.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.0.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.0.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.0.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        if reservation.consumer().name().starts_with("RepartitionExec") {
            self.0.grow(reservation, additional);
            return Ok(());
        }
        self.0.try_grow(reservation, additional)
    }

    fn reserved(&self) -> usize {
        self.0.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.0.memory_limit()
    }
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

    /// apache/datafusion#24883's reproduction: a grouped distinct count on
    /// two partitions under a tiny limit, where one of a few runs never
    /// returned on the DataFusion the issue names. Each run must end (with
    /// rows or an error) within the timeout.
    async fn distinct_counts_under_a_limit(runtime: Arc<RuntimeEnv>) -> Vec<bool> {
        let data = SessionContext::new()
            .sql(
                "SELECT value % 13 AS g, concat('trace-', CAST(value % 337 AS VARCHAR)) AS trace_id \
                 FROM generate_series(1, 40000)",
            )
            .await
            .expect("plans");
        let schema = Arc::new(data.schema().as_arrow().clone());
        let batches = data.collect().await.expect("generates");
        let config = SessionConfig::new()
            .with_target_partitions(2)
            .with_batch_size(64);
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let table =
            datafusion::datasource::MemTable::try_new(schema, vec![batches]).expect("table");
        ctx.register_table("t", Arc::new(table)).expect("registers");
        let mut ended = Vec::new();
        for _ in 0..8 {
            let query = async {
                ctx.sql("SELECT g, count(DISTINCT trace_id) AS n FROM t GROUP BY g")
                    .await?
                    .collect()
                    .await
            };
            let run = tokio::time::timeout(std::time::Duration::from_secs(20), query).await;
            ended.push(run.is_ok());
        }
        ended
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_memory_limit_never_parks_a_query_forever() {
        let runtime = limited_runtime(2 << 20).expect("runtime");
        let ended = distinct_counts_under_a_limit(runtime).await;
        assert!(ended.iter().all(|&e| e), "{ended:?}");
    }

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
