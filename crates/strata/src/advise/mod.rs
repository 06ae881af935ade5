//! When to move up a tier: named triggers, each a measured condition against a threshold,
//! with the step to take when it fires (`strata advise`, `GET /advise`, and the
//! `strata_advise_*` gauges of `/metrics`).
//!
//! | from | trigger | fires when |
//! |---|---|---|
//! | bare-metal | `must_survive_restart` | `[advise] must_survive_restart = true` (bare-metal keeps nothing) |
//! | bare-metal | `capacity` | the fullest table or view holds `capacity_percent` (80) of its fixed capacity |
//! | embedded | `recovery_time` | the estimated recovery (snapshot ÷ restore rate + WAL ÷ replay rate) exceeds `recovery_objective` (60 s) |
//! | embedded | `must_survive_disk_loss` | `[advise] must_survive_disk_loss = true` (embedded keeps everything on one disk) |
//! | embedded | `disk_space` | the data directory holds `disk_percent` (50) of the free space left on its disk (a snapshot needs room for a new copy) |
//! | durable | `memory` | the process's memory reaches `memory_percent` (70) of the machine's (or the cgroup's) limit |
//! | durable | `ingest_rate` | ingest over the last minute reaches `ingest_percent` (70) of `ingest_ceiling_rows_per_s` |
//! | durable | `write_latency` | the p95 of write statements exceeds `write_p95_ms` (100 ms) |
//! | durable | `must_stay_available_during_maintenance` | `[advise] must_stay_available_during_maintenance = true` (one server is down while it restarts) |
//!
//! Evaluation is a pure function of [`Measurements`] and [`Thresholds`], so each trigger is
//! tested on synthetic figures; a figure that was not measured gives the verdict
//! [`Verdict::Unknown`], never a guess.

#[cfg(feature = "persistence")]
pub mod measure;

use crate::profile::ProfileKind;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The thresholds of the triggers (`[advise]` in the config).
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub must_survive_restart: bool,
    pub capacity_percent: u32,
    pub recovery_objective: Duration,
    /// How fast a snapshot is restored and the WAL replayed, for the recovery estimate.
    pub restore_bytes_per_s: u64,
    pub replay_bytes_per_s: u64,
    pub must_survive_disk_loss: bool,
    pub disk_percent: u32,
    pub memory_percent: u32,
    pub ingest_ceiling_rows_per_s: u64,
    pub ingest_percent: u32,
    pub write_p95: Duration,
    pub must_stay_available_during_maintenance: bool,
}

impl Default for Thresholds {
    /// The documented defaults. The rates are this project's measurements on a 2-core VM
    /// (`cargo bench --bench durability`: snapshots restore at 500–700 MB/s; the server
    /// acknowledged 840,000 rows/s of 1,000-row INSERTs), rounded down.
    fn default() -> Self {
        Thresholds {
            must_survive_restart: false,
            capacity_percent: 80,
            recovery_objective: Duration::from_secs(60),
            restore_bytes_per_s: 400 << 20,
            replay_bytes_per_s: 200 << 20,
            must_survive_disk_loss: false,
            disk_percent: 50,
            memory_percent: 70,
            ingest_ceiling_rows_per_s: 800_000,
            ingest_percent: 70,
            write_p95: Duration::from_millis(100),
            must_stay_available_during_maintenance: false,
        }
    }
}

/// What was measured; `None` for what could not be (a data directory has no ingest rate).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurements {
    /// The fullest table or view: its name, keys and capacity (fixed-capacity tiers).
    pub fullest: Option<(String, usize, usize)>,
    pub snapshot_bytes: Option<u64>,
    pub wal_bytes: Option<u64>,
    pub data_dir_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub ingest_rows_per_s: Option<f64>,
    pub write_p95_seconds: Option<f64>,
}

impl Measurements {
    /// What an engine shows of itself: its fullest table or view, against its capacity.
    pub fn of_engine<P: crate::PhysicalProfile>(engine: &crate::engine::Engine<P>) -> Measurements {
        let capacity = engine.capacity();
        Measurements {
            fullest: engine
                .state_sizes()
                .into_iter()
                .max_by_key(|(_, _, keys)| *keys)
                .map(|(_, name, keys)| (name.to_string(), keys, capacity)),
            ..Measurements::default()
        }
    }
}

/// Whether a trigger fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Time to move up: see the trigger's `next_step`.
    Move,
    Stay,
    /// Not measured here (e.g. an ingest rate, read from a data directory).
    Unknown,
}

/// One trigger, evaluated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub name: String,
    pub from: String,
    pub to: String,
    /// The measured value, in `unit`.
    pub value: Option<f64>,
    pub threshold: f64,
    pub unit: String,
    pub verdict: Verdict,
    /// What was measured, in words.
    pub detail: String,
    /// The exact step to take, when the verdict is [`Verdict::Move`].
    pub next_step: Option<String>,
}

/// The build line of tier `to`.
fn build_line(to: ProfileKind) -> String {
    match to {
        ProfileKind::Embedded => "cargo build --release".into(),
        other => format!("cargo build --release --no-default-features --features {other}"),
    }
}

fn next_step(to: ProfileKind, data_dir: Option<&str>) -> String {
    let build = build_line(to);
    match to {
        ProfileKind::Embedded => format!(
            "build the embedded tier ({build}) and give it a data directory ([storage] \
             data_dir or --data DIR): it keeps a WAL and snapshots there and recovers them"
        ),
        ProfileKind::Durable => format!(
            "build the durable tier ({build}), then copy this data directory into an object \
             store: strata --config durable.toml migrate --from {} (with [object_store] url \
             set), and run the durable tier on that store",
            data_dir.unwrap_or("DATA_DIR")
        ),
        _ => format!(
            "build the constellation tier ({build}) and start three nodes on one object store \
             (profiles/constellation.toml); a cluster starts from an empty prefix, so reload \
             the data into it (there is no migration of a durable prefix into a cluster yet)"
        ),
    }
}

/// Evaluates the triggers of tier `tier`. `data_dir` names the directory in the next step.
pub fn evaluate(
    tier: ProfileKind,
    m: &Measurements,
    t: &Thresholds,
    data_dir: Option<&str>,
) -> Vec<Trigger> {
    let to = match tier {
        ProfileKind::BareMetal => ProfileKind::Embedded,
        ProfileKind::Embedded => ProfileKind::Durable,
        ProfileKind::Durable => ProfileKind::Constellation,
        // The top tier: nothing to move up to.
        _ => return Vec::new(),
    };
    let step = next_step(to, data_dir);
    let trigger = |name: &'static str,
                   value: Option<f64>,
                   threshold: f64,
                   unit: &'static str,
                   detail: String| {
        let verdict = match value {
            None => Verdict::Unknown,
            Some(v) if v >= threshold => Verdict::Move,
            Some(_) => Verdict::Stay,
        };
        Trigger {
            name: name.into(),
            from: tier.name().into(),
            to: to.name().into(),
            value,
            threshold,
            unit: unit.into(),
            verdict,
            detail,
            next_step: (verdict == Verdict::Move).then(|| step.clone()),
        }
    };
    let declared = |name: &'static str, wanted: bool, what: &str| {
        trigger(
            name,
            Some(f64::from(u8::from(wanted))),
            1.0,
            "declared",
            format!("[advise] {name} = {wanted}: {what}"),
        )
    };
    let percent = |part: Option<f64>, whole: Option<f64>| match (part, whole) {
        (Some(p), Some(w)) if w > 0.0 => Some(100.0 * p / w),
        _ => None,
    };
    let bytes = |b: Option<u64>| b.map(|b| b as f64);
    match tier {
        ProfileKind::BareMetal => {
            let (detail, value) = match &m.fullest {
                Some((name, keys, capacity)) => (
                    format!("`{name}` holds {keys} of {capacity} keys"),
                    percent(Some(*keys as f64), Some(*capacity as f64)),
                ),
                None => ("no table or view holds keys".into(), Some(0.0)),
            };
            vec![
                declared(
                    "must_survive_restart",
                    t.must_survive_restart,
                    "state that must survive a restart needs a tier that keeps it",
                ),
                trigger(
                    "capacity",
                    value,
                    t.capacity_percent.into(),
                    "percent",
                    detail,
                ),
            ]
        }
        ProfileKind::Embedded => {
            let estimate = match (m.snapshot_bytes, m.wal_bytes) {
                (Some(s), Some(w)) => Some(
                    s as f64 / t.restore_bytes_per_s.max(1) as f64
                        + w as f64 / t.replay_bytes_per_s.max(1) as f64,
                ),
                _ => None,
            };
            let recovery_detail = format!(
                "snapshot {} + WAL {} at {}/s and {}/s",
                show_bytes(m.snapshot_bytes),
                show_bytes(m.wal_bytes),
                show_bytes(Some(t.restore_bytes_per_s)),
                show_bytes(Some(t.replay_bytes_per_s)),
            );
            vec![
                trigger(
                    "recovery_time",
                    estimate,
                    t.recovery_objective.as_secs_f64(),
                    "seconds",
                    recovery_detail,
                ),
                declared(
                    "must_survive_disk_loss",
                    t.must_survive_disk_loss,
                    "only a copy off this disk survives its loss",
                ),
                trigger(
                    "disk_space",
                    percent(bytes(m.data_dir_bytes), bytes(m.disk_free_bytes)),
                    t.disk_percent.into(),
                    "percent",
                    format!(
                        "the data directory holds {}, its disk has {} free",
                        show_bytes(m.data_dir_bytes),
                        show_bytes(m.disk_free_bytes)
                    ),
                ),
            ]
        }
        _ => vec![
            trigger(
                "memory",
                percent(bytes(m.memory_bytes), bytes(m.memory_limit_bytes)),
                t.memory_percent.into(),
                "percent",
                format!(
                    "the process uses {} of {}",
                    show_bytes(m.memory_bytes),
                    show_bytes(m.memory_limit_bytes)
                ),
            ),
            trigger(
                "ingest_rate",
                percent(
                    m.ingest_rows_per_s,
                    Some(t.ingest_ceiling_rows_per_s as f64),
                ),
                t.ingest_percent.into(),
                "percent",
                match m.ingest_rows_per_s {
                    Some(rate) => format!(
                        "{rate:.0} rows/s over the last minute; the ceiling is {} rows/s",
                        t.ingest_ceiling_rows_per_s
                    ),
                    None => "not measured: a running server measures it over a minute \
                             (--server URL)"
                        .into(),
                },
            ),
            trigger(
                "write_latency",
                m.write_p95_seconds.map(|s| s * 1000.0),
                t.write_p95.as_secs_f64() * 1000.0,
                "milliseconds",
                match m.write_p95_seconds {
                    Some(_) => "p95 of INSERT, UPDATE and DELETE statements since start".into(),
                    None => "not measured: no INSERT, UPDATE or DELETE has run on a server \
                             (--server URL) yet"
                        .into(),
                },
            ),
            declared(
                "must_stay_available_during_maintenance",
                t.must_stay_available_during_maintenance,
                "one server is unavailable while it restarts; a cluster is not",
            ),
        ],
    }
}

/// The advice for one engine or server: where it was read, and every trigger of its tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub profile: String,
    /// What was read: `a running server`, `data directory DIR (opened in 0.12 s)`, ….
    pub source: String,
    pub triggers: Vec<Trigger>,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    pub fn from_json(text: &str) -> Result<Report, String> {
        serde_json::from_str(text).map_err(|e| format!("not an advice report: {e}"))
    }

    /// Whether any trigger fires.
    pub fn says_move(&self) -> bool {
        self.triggers.iter().any(|t| t.verdict == Verdict::Move)
    }

    /// A table of the triggers, their details, and the next step if one fires.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!("profile: {} ({})\n", self.profile, self.source);
        let Some(first) = self.triggers.first() else {
            out.push_str("the top tier: there is no tier to move up to\n");
            return out;
        };
        let _ = writeln!(out, "triggers for moving to {}:", first.to);
        let shown = |v: f64, unit: &str| match unit {
            "declared" => if v >= 1.0 { "required" } else { "not required" }.to_string(),
            "percent" => format!("{v:.1} %"),
            "seconds" => format!("{v:.2} s"),
            "milliseconds" => format!("{v:.1} ms"),
            other => format!("{v} {other}"),
        };
        let _ = writeln!(
            out,
            "  {:<40} {:>14} {:>14}  verdict",
            "trigger", "value", "threshold"
        );
        for t in &self.triggers {
            let value = t.value.map_or("not measured".into(), |v| shown(v, &t.unit));
            let threshold = if t.unit == "declared" {
                "required".into()
            } else {
                shown(t.threshold, &t.unit)
            };
            let verdict = match t.verdict {
                Verdict::Move => "MOVE",
                Verdict::Stay => "stay",
                Verdict::Unknown => "unknown",
            };
            let _ = writeln!(
                out,
                "  {:<40} {value:>14} {threshold:>14}  {verdict}",
                t.name
            );
            let _ = writeln!(out, "      {}", t.detail);
        }
        match self.triggers.iter().find_map(|t| t.next_step.as_deref()) {
            Some(step) => {
                let _ = writeln!(out, "next step: {step}");
            }
            None => {
                let _ = writeln!(out, "verdict: stay on {}", self.profile);
            }
        }
        out
    }
}

/// `n` bytes as `12.3 MiB`, `?` when unknown.
fn show_bytes(n: Option<u64>) -> String {
    match n {
        None => "?".into(),
        Some(n) if n < 1 << 20 => format!("{:.1} KiB", n as f64 / 1024.0),
        Some(n) if n < 1 << 30 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        Some(n) => format!("{:.2} GiB", n as f64 / f64::from(1u32 << 30)),
    }
}

/// The 95th percentile of a latency histogram: the upper bound of the bucket that holds
/// it (`None` without observations; the last finite bound when it is in the `+Inf` bucket).
pub fn p95(h: &crate::metrics::Histogram) -> Option<f64> {
    if h.count == 0 {
        return None;
    }
    let rank = (h.count as f64 * 0.95).ceil() as u64;
    let mut seen = 0;
    for (i, n) in h.counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return h.bounds.get(i).or(h.bounds.last()).copied();
        }
    }
    h.bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(tier: ProfileKind, m: &Measurements, t: &Thresholds, name: &str) -> Verdict {
        let triggers = evaluate(tier, m, t, Some("/data"));
        let trigger = triggers
            .iter()
            .find(|x| x.name == *name)
            .unwrap_or_else(|| panic!("no trigger {name}"));
        assert_eq!(
            trigger.next_step.is_some(),
            trigger.verdict == Verdict::Move,
            "{trigger:?}"
        );
        trigger.verdict
    }

    #[test]
    fn bare_metal_moves_for_a_full_capacity_or_state_that_must_survive() {
        let t = Thresholds::default();
        let mut m = Measurements {
            fullest: Some(("v".into(), 700, 1000)),
            ..Default::default()
        };
        assert_eq!(
            verdict(ProfileKind::BareMetal, &m, &t, "capacity"),
            Verdict::Stay
        );
        m.fullest = Some(("v".into(), 800, 1000));
        assert_eq!(
            verdict(ProfileKind::BareMetal, &m, &t, "capacity"),
            Verdict::Move
        );
        m.fullest = None;
        assert_eq!(
            verdict(ProfileKind::BareMetal, &m, &t, "capacity"),
            Verdict::Stay
        );
        let kind = ProfileKind::BareMetal;
        assert_eq!(verdict(kind, &m, &t, "must_survive_restart"), Verdict::Stay);
        let t = Thresholds {
            must_survive_restart: true,
            ..t
        };
        assert_eq!(verdict(kind, &m, &t, "must_survive_restart"), Verdict::Move);
        let step = evaluate(kind, &m, &t, None)[0].next_step.clone().unwrap();
        assert!(step.contains("cargo build --release"), "{step}");
    }

    #[test]
    fn embedded_moves_for_slow_recovery_disk_loss_or_a_full_disk() {
        let t = Thresholds::default();
        let kind = ProfileKind::Embedded;
        let mut m = Measurements {
            snapshot_bytes: Some(400 << 20),
            wal_bytes: Some(200 << 20),
            data_dir_bytes: Some(1 << 30),
            disk_free_bytes: Some(10 << 30),
            ..Default::default()
        };
        // 1 s + 1 s against 60 s.
        assert_eq!(verdict(kind, &m, &t, "recovery_time"), Verdict::Stay);
        m.wal_bytes = Some(200 << 30);
        assert_eq!(verdict(kind, &m, &t, "recovery_time"), Verdict::Move);
        m.wal_bytes = None;
        assert_eq!(verdict(kind, &m, &t, "recovery_time"), Verdict::Unknown);
        assert_eq!(verdict(kind, &m, &t, "disk_space"), Verdict::Stay);
        m.disk_free_bytes = Some(2 << 30);
        assert_eq!(verdict(kind, &m, &t, "disk_space"), Verdict::Move);
        assert_eq!(
            verdict(kind, &m, &t, "must_survive_disk_loss"),
            Verdict::Stay
        );
        let t = Thresholds {
            must_survive_disk_loss: true,
            ..t
        };
        assert_eq!(
            verdict(kind, &m, &t, "must_survive_disk_loss"),
            Verdict::Move
        );
        let triggers = evaluate(kind, &m, &t, Some("/srv/strata"));
        let step = triggers[1].next_step.as_deref().unwrap();
        assert!(
            step.contains("--features durable") && step.contains("migrate --from /srv/strata"),
            "{step}"
        );
    }

    #[test]
    fn durable_moves_for_memory_ingest_latency_or_maintenance() {
        let t = Thresholds::default();
        let kind = ProfileKind::Durable;
        let mut m = Measurements {
            memory_bytes: Some(6 << 30),
            memory_limit_bytes: Some(10 << 30),
            ingest_rows_per_s: Some(100_000.0),
            write_p95_seconds: Some(0.01),
            ..Default::default()
        };
        assert_eq!(verdict(kind, &m, &t, "memory"), Verdict::Stay);
        assert_eq!(verdict(kind, &m, &t, "ingest_rate"), Verdict::Stay);
        assert_eq!(verdict(kind, &m, &t, "write_latency"), Verdict::Stay);
        m.memory_bytes = Some(8 << 30);
        m.ingest_rows_per_s = Some(700_000.0);
        m.write_p95_seconds = Some(0.25);
        assert_eq!(verdict(kind, &m, &t, "memory"), Verdict::Move);
        assert_eq!(verdict(kind, &m, &t, "ingest_rate"), Verdict::Move);
        assert_eq!(verdict(kind, &m, &t, "write_latency"), Verdict::Move);
        m.ingest_rows_per_s = None;
        assert_eq!(verdict(kind, &m, &t, "ingest_rate"), Verdict::Unknown);
        let name = "must_stay_available_during_maintenance";
        assert_eq!(verdict(kind, &m, &t, name), Verdict::Stay);
        let t = Thresholds {
            must_stay_available_during_maintenance: true,
            ..t
        };
        assert_eq!(verdict(kind, &m, &t, name), Verdict::Move);
        let step = evaluate(kind, &m, &t, None)[0].next_step.clone().unwrap();
        assert!(step.contains("--features constellation"), "{step}");
        assert!(evaluate(ProfileKind::Constellation, &m, &t, None).is_empty());
    }

    #[test]
    fn the_95th_percentile_is_the_bound_of_its_bucket() {
        let mut h = crate::metrics::Histogram::default();
        assert_eq!(p95(&h), None);
        for _ in 0..94 {
            h.observe(0.001);
        }
        h.observe(0.2);
        assert_eq!(p95(&h), Some(0.001));
        for _ in 0..5 {
            h.observe(0.2);
        }
        assert_eq!(p95(&h), Some(0.25));
        h.observe(100.0);
        assert_eq!(p95(&h), Some(0.25));
    }
}
