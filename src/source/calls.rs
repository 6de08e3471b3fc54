//! The AWS call counters and latency histogram of design.md §3, as `prometheus` vectors: created
//! (and, in the daemon, registered) once and handed to the source, which records every call
//! through them. The registry owns the series, so they survive a reload that replaces the source;
//! `check` reads the same counters for `stats.aws_calls`.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use prometheus::core::Collector;
use prometheus::proto::Metric;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::convert::{classify, CallFailure, Operation};
use super::{CallCounts, SourceError};

/// Upper bounds (seconds) of the call-duration histogram: from a cached STS answer (ms) to a
/// slow paginated page near the call timeout.
pub const DURATION_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Requests, failures by error kind, and durations of AWS calls, by service and operation.
/// Clones share the same series.
#[derive(Clone)]
pub struct AwsCallMetrics {
    requests: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
}

impl AwsCallMetrics {
    /// Registers the three families in `registry` (the daemon's, once at start).
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::build()?;
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        Ok(metrics)
    }

    /// Counters that no registry exports: for `check`, `record` and tests, which read them back.
    pub fn unregistered() -> Self {
        // The names, help texts and labels are constants that `build` is tested with; the crate
        // rejects only invalid ones.
        Self::build().expect("constant, valid metric definitions")
    }

    fn build() -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "sgdrift_aws_api_requests_total",
                "AWS API requests made, by service and operation (each page is one request; SDK retries are not counted apart).",
            ),
            &["service", "operation"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "sgdrift_aws_api_request_errors_total",
                "AWS API requests that failed, by service, operation and error class.",
            ),
            &["service", "operation", "error"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "sgdrift_aws_api_request_duration_seconds",
                "Duration of AWS API requests, by service and operation.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["service", "operation"],
        )?;
        Ok(AwsCallMetrics { requests, errors, duration })
    }

    /// Counts one call of `op` that took `elapsed` and failed with `error`, if it did.
    pub fn record(&self, op: Operation, elapsed: Duration, error: Option<&SourceError>) {
        let labels = [op.service, op.name];
        self.requests.with_label_values(&labels).inc();
        self.duration.with_label_values(&labels).observe(elapsed.as_secs_f64());
        if let Some(e) = error {
            self.errors.with_label_values(&[op.service, op.name, e.kind()]).inc();
        }
    }

    /// Runs one SDK call of `op`: timed, counted, and a failure classified (`timeout` is the
    /// per-call bound it names). Every SDK edge calls through this.
    pub async fn timed<T, E>(
        &self,
        op: Operation,
        timeout: Duration,
        fut: impl std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, CallFailure>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let started = std::time::Instant::now();
        let result = fut.await;
        let elapsed = started.elapsed();
        result
            .map_err(|e| {
                let failure = classify(op, e, timeout);
                self.record(op, elapsed, Some(&failure.error));
                tracing::debug!(operation = %op.action(), error = %failure.error, "AWS call failed");
                failure
            })
            .inspect(|_| self.record(op, elapsed, None))
    }

    /// `"<service>:<operation>"` → requests, e.g. `"ec2:DescribeSecurityGroups"`.
    pub fn call_counts(&self) -> CallCounts {
        read(&self.requests, |m| m.get_counter().get_value() as u64)
    }

    /// `"<service>:<operation>"` → calls timed by the histogram (every call, once).
    pub fn timed_calls(&self) -> CallCounts {
        read(&self.duration, |m| m.get_histogram().get_sample_count())
    }

    /// `"<service>:<operation>"` → failed calls by error kind (`SourceError::kind`).
    pub fn error_counts(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for family in self.errors.collect() {
            for m in family.get_metric() {
                let n = m.get_counter().get_value() as u64;
                *out.entry(action(m)).or_default().entry(label(m, "error").to_string()).or_default() += n;
            }
        }
        out
    }
}

/// `"<service>:<operation>"` → `value` of each series of a vector labelled by both.
fn read(vec: &impl Collector, value: impl Fn(&Metric) -> u64) -> CallCounts {
    let mut out = CallCounts::new();
    for family in vec.collect() {
        for m in family.get_metric() {
            *out.entry(action(m)).or_default() += value(m);
        }
    }
    out
}

/// `"<service>:<operation>"` of a series: the IAM action, as `stats.aws_calls` keys it.
fn action(m: &Metric) -> String {
    format!("{}:{}", label(m, "service"), label(m, "operation"))
}

fn label<'a>(m: &'a Metric, name: &str) -> &'a str {
    m.get_label().iter().find(|l| l.name() == name).map_or("", |l| l.value())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSG: Operation = Operation::new("ec2", "DescribeSecurityGroups");
    const LIST: Operation = Operation::new("eks", "ListClusters");

    fn denied() -> SourceError {
        SourceError::AccessDenied {
            operation: "x".into(),
            action: "ec2:DescribeSecurityGroups".into(),
            message: String::new(),
        }
    }

    #[test]
    fn calls_are_counted_per_operation_with_failures_by_kind_and_every_call_timed() {
        let calls = AwsCallMetrics::unregistered();
        calls.record(DSG, Duration::from_millis(3), None);
        calls.record(DSG, Duration::from_secs(40), None);
        calls.record(DSG, Duration::from_millis(30), Some(&denied()));
        calls.record(LIST, Duration::from_millis(1), None);
        let want = CallCounts::from([("ec2:DescribeSecurityGroups".into(), 3), ("eks:ListClusters".into(), 1)]);
        assert_eq!(calls.call_counts(), want);
        assert_eq!(calls.timed_calls(), want);
        let errors = calls.error_counts();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors["ec2:DescribeSecurityGroups"], BTreeMap::from([("access_denied".to_string(), 1)]));
    }

    #[test]
    fn clones_share_their_series_so_a_replaced_source_keeps_counting_into_them() {
        let registry = Registry::new();
        let calls = AwsCallMetrics::register(&registry).unwrap();
        calls.clone().record(LIST, Duration::from_millis(1), None);
        calls.clone().record(LIST, Duration::from_millis(1), None);
        assert_eq!(calls.call_counts()["eks:ListClusters"], 2);
        let exported: u64 = registry
            .gather()
            .iter()
            .filter(|f| f.name() == "sgdrift_aws_api_requests_total")
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum();
        assert_eq!(exported, 2);
    }

    #[test]
    fn the_histogram_uses_the_declared_buckets() {
        let calls = AwsCallMetrics::unregistered();
        calls.record(DSG, Duration::from_secs(40), None);
        let family = calls.duration.collect().remove(0);
        let h = family.get_metric()[0].get_histogram();
        let bounds: Vec<f64> = h.get_bucket().iter().map(|b| b.upper_bound()).collect();
        assert_eq!(bounds, DURATION_BUCKETS.to_vec());
        assert_eq!(h.get_bucket().last().map(|b| b.cumulative_count()), Some(0), "40 s is above every bound");
        assert_eq!(h.get_sample_count(), 1);
    }
}
