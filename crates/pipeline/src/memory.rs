//! The memory pool of the SQL stages under `memory_limit`.

use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::common::resources_datafusion_err;
use datafusion::error::Result as DfResult;
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
    TrackConsumersPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

/// A runtime whose pool holds operators to `limit` bytes (see [`StagePool`]).
pub(crate) fn limited_runtime(limit: usize) -> DfResult<Arc<RuntimeEnv>> {
    // Its `Resources exhausted` errors name the five largest consumers, as
    // DataFusion's own `with_memory_limit` pool does.
    let top = NonZeroUsize::MIN.saturating_add(4);
    let pool = TrackConsumersPool::new(GreedyMemoryPool::new(limit), top);
    RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(StagePool::new(Arc::new(pool), limit)))
        .build_arc()
}

/// The greedy pool with room kept for the operators that cannot spill.
///
/// Under DataFusion's greedy pool the first sorts of a plan take the whole
/// limit, and a hash table, a sort's merge or an aggregate of a few groups
/// then fails for want of a few megabytes (a 20M-connection `beacons`
/// stage under 2 GB did). Here an operator that can spill and holds more
/// than [`StagePool::floor`] bytes grows only while the pool holds less
/// than half the limit, and spills when refused; the other half is for the
/// others (sort merges reached 430 MB of a 1.5 GB pool in that stage).
///
/// `RepartitionExec` is granted its buffers whatever the limit, so it never
/// spills: its spill reader can wait forever when two inputs spill at once
/// (apache/datafusion#24883, fixed after DataFusion 55), and every worker
/// parks, as the same stage once did. Its buffers count against the limit.
#[derive(Debug)]
pub(crate) struct StagePool {
    inner: Arc<dyn MemoryPool>,
    /// Operators that can spill grow the pool no further than this ...
    spill_at: usize,
    /// ... once they hold more than this each.
    floor: usize,
}

impl StagePool {
    fn new(inner: Arc<dyn MemoryPool>, limit: usize) -> Self {
        Self {
            inner,
            spill_at: limit / 2,
            floor: (limit / 128).min(16 << 20),
        }
    }
}

impl std::fmt::Display for StagePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (spilling operators beyond {} bytes each up to {} in all; RepartitionExec unbounded)",
            self.inner.name(),
            self.floor,
            self.spill_at
        )
    }
}

fn is_repartition(reservation: &MemoryReservation) -> bool {
    reservation.consumer().name().starts_with("RepartitionExec")
}

impl MemoryPool for StagePool {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        if is_repartition(reservation) {
            self.inner.grow(reservation, additional);
            return Ok(());
        }
        let consumer = reservation.consumer();
        // Only an operator that holds enough to spill is refused: one that
        // has just spilled must still take its next batch.
        let held = reservation.size();
        let total = self.inner.reserved() + additional;
        if consumer.can_spill() && held > self.floor && total > self.spill_at {
            return Err(resources_datafusion_err!(
                "{} holds {held} bytes and asked for {additional} more with the pool at \
                 {total}, over the {} bytes operators that spill may fill",
                consumer.name(),
                self.spill_at
            ));
        }
        self.inner.try_grow(reservation, additional)
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{SessionConfig, SessionContext};

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

    fn pool(limit: usize) -> Arc<dyn MemoryPool> {
        Arc::new(StagePool::new(
            Arc::new(GreedyMemoryPool::new(limit)),
            limit,
        ))
    }

    #[test]
    fn operators_that_spill_leave_half_to_those_that_cannot() {
        let pool = pool(1 << 30);
        let sort = MemoryConsumer::new("ExternalSorter[0]")
            .with_can_spill(true)
            .register(&pool);
        let join = MemoryConsumer::new("HashJoinInput[0]").register(&pool);
        sort.try_grow(500 << 20).expect("under half");
        let refused = sort.try_grow(100 << 20).expect_err("over half");
        assert!(
            refused
                .to_string()
                .contains("ExternalSorter[0] holds 524288000 bytes and asked for 104857600 more"),
            "{refused}"
        );
        assert_eq!(sort.size(), 500 << 20);
        join.try_grow(500 << 20).expect("the other half");
        join.try_grow(25 << 20).expect_err("over the limit");
    }

    #[test]
    fn a_small_spilling_operator_still_grows_when_the_big_ones_hold_their_share() {
        let pool = pool(1 << 30);
        let sort = MemoryConsumer::new("ExternalSorter[0]")
            .with_can_spill(true)
            .register(&pool);
        let aggregate = MemoryConsumer::new("FinalHashAggregateStream[1]")
            .with_can_spill(true)
            .register(&pool);
        sort.try_grow(512 << 20).expect("half");
        // The floor of a 1 GiB pool is 8 MiB.
        aggregate.try_grow(6 << 20).expect("under its floor");
        aggregate.try_grow(6 << 20).expect("from under its floor");
        aggregate.try_grow(1 << 20).expect_err("past its floor");
    }

    #[test]
    fn repartition_buffers_are_granted_and_counted() {
        let pool = pool(1 << 20);
        let buffers = MemoryConsumer::new("RepartitionExec[0]").register(&pool);
        buffers.try_grow(4 << 20).expect("granted");
        assert_eq!(pool.reserved(), 4 << 20);
        let join = MemoryConsumer::new("HashJoinInput[0]").register(&pool);
        join.try_grow(1).expect_err("the limit is used up");
    }
}
