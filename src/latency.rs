//! The request-latency histogram: fixed buckets in atomics, so observing is a few relaxed
//! adds with no lock, and a group of pipelined requests answered together is observed at
//! once (`observe_n`). Encoded as an ordinary Prometheus histogram
//! (<https://prometheus.io/docs/concepts/metric_types/#histogram>).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds in seconds: 100 µs × 4^i, up to about 105 s, then +Inf.
const BOUNDS: [f64; 11] = [
    0.0001, 0.0004, 0.0016, 0.0064, 0.0256, 0.1024, 0.4096, 1.6384, 6.5536, 26.2144, 104.8576,
];

#[derive(Clone, Debug, Default)]
pub struct Latency {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per bucket (not cumulative); the last is +Inf.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Latency {
    pub fn observe(&self, seconds: f64) {
        self.observe_n(seconds, 1);
    }

    /// Records `n` requests that each took `seconds`.
    pub fn observe_n(&self, seconds: f64, n: u64) {
        let i = BOUNDS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BOUNDS.len());
        let inner = &self.inner;
        inner.buckets[i].fetch_add(n, Ordering::Relaxed);
        inner.count.fetch_add(n, Ordering::Relaxed);
        // Saturating float-to-int cast: a NaN or negative reading adds nothing.
        let nanos = (seconds * 1e9) as u64;
        inner
            .sum_nanos
            .fetch_add(nanos.saturating_mul(n), Ordering::Relaxed);
    }

    /// The number of observations so far.
    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::Relaxed)
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &self.inner;
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(inner.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        // The count is the buckets' total, so a scrape racing an observation stays coherent.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    #[test]
    fn encodes_like_a_prometheus_histogram() {
        let l = Latency::default();
        l.observe(0.00005);
        l.observe_n(0.001, 3);
        l.observe(500.0);
        let mut registry = Registry::default();
        registry.register("lat", "test", l.clone());
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE lat histogram"), "{text}");
        assert!(text.contains("lat_count 5\n"), "{text}");
        assert!(text.contains("lat_bucket{le=\"0.0001\"} 1\n"), "{text}");
        assert!(text.contains("lat_bucket{le=\"0.0016\"} 4\n"), "{text}");
        assert!(text.contains("lat_bucket{le=\"104.8576\"} 4\n"), "{text}");
        assert!(text.contains("lat_bucket{le=\"+Inf\"} 5\n"), "{text}");
        assert!(text.contains("lat_sum 500.00305"), "{text}");
        assert_eq!(l.count(), 5);
    }
}
