//! Counters and histograms that the persistent tiers keep about their storage, and that the
//! server exposes as Prometheus text (`GET /metrics`).

/// A cumulative histogram of durations in seconds, with Prometheus-style upper bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Upper bounds of the buckets, ascending; an implicit `+Inf` bucket follows.
    pub bounds: &'static [f64],
    /// Observations per bucket (not cumulative), one more than `bounds` (the `+Inf` one).
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// Buckets for fsyncs and HTTP requests: 50 µs to 10 s.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one observation of `seconds`.
    pub fn observe(&mut self, seconds: f64) {
        let bucket = self.bounds.partition_point(|&b| b < seconds);
        self.counts[bucket] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(LATENCY_BOUNDS)
    }
}

/// What a checkpointer reports about its log and checkpoints since the process started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorageMetrics {
    /// Bytes appended to the write-ahead log.
    pub wal_bytes: u64,
    /// Durations of the log's fsyncs on the write path.
    pub wal_fsync_seconds: Histogram,
    /// Checkpoints that succeeded, and that failed.
    pub checkpoints: u64,
    pub checkpoint_failures: u64,
    /// Durations of successful checkpoints.
    pub checkpoint_seconds: Histogram,
    /// Snapshot bytes written by successful checkpoints.
    pub checkpoint_bytes: u64,
}
