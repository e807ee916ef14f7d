//! The certification report.

use std::{fmt::Write, time::Duration};

use serde::Serialize;
use session_kit_core::Capabilities;

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    /// The behaviour holds.
    Passed,
    /// The behaviour does not hold; the message says how.
    Failed(String),
    /// The check does not apply (or is slow and slow checks are off); the reason says why.
    Skipped(String),
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Check name.
    pub name: &'static str,
    /// What it asserts.
    pub description: &'static str,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long it took.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

fn describe(c: &Capabilities) -> String {
    format!(
        "ttl={} create_only={} update_only={} compare_and_swap={} touch={} list={} max_key_len={} max_value_size={} consistency={:?}",
        c.ttl.map_or("no".to_owned(), |t| format!(
            "min {:?}, granularity {:?}, below min {:?}",
            t.min, t.granularity, t.below_min
        )),
        c.create_only,
        c.update_only,
        c.compare_and_swap,
        c.touch,
        c.list,
        c.max_key_len,
        c.max_value_size,
        c.consistency,
    )
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

/// A certification report: the driver, its declared capabilities, and every check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The driver's name.
    pub driver: String,
    /// The layers the driver ran in, outermost first (see `session_kit_core::layers`).
    pub layers: Vec<&'static str>,
    /// What the driver declares through its layers: what the checks hold it to.
    pub capabilities: Capabilities,
    /// What the backend declares by itself; where it differs from `capabilities`, a layer
    /// provides the difference.
    pub native_capabilities: Capabilities,
    /// Every check, in order.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        !self
            .results
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Failed(_)))
    }

    /// The names of the checks that failed, in report order.
    pub fn failed(&self) -> Vec<&'static str> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .map(|r| r.name)
            .collect()
    }

    /// (passed, failed, skipped) counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.results
            .iter()
            .fold((0, 0, 0), |(p, f, s), r| match r.outcome {
                Outcome::Passed => (p + 1, f, s),
                Outcome::Failed(_) => (p, f + 1, s),
                Outcome::Skipped(_) => (p, f, s + 1),
            })
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as text, one line per check, ending with a `N passed, N failed, N skipped`
    /// line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Conformance report for driver `{}`", self.driver);
        let _ = writeln!(out, "layers: {}", self.layers.join(", "));
        let _ = writeln!(out, "capabilities: {}", describe(&self.capabilities));
        if self.native_capabilities != self.capabilities {
            let _ = writeln!(
                out,
                "native capabilities (the rest from layers): {}",
                describe(&self.native_capabilities)
            );
        }
        for r in &self.results {
            let (status, detail) = match &r.outcome {
                Outcome::Passed => ("PASS", String::new()),
                Outcome::Failed(m) => ("FAIL", format!(": {m}")),
                Outcome::Skipped(m) => ("SKIP", format!(": {m}")),
            };
            let _ = writeln!(
                out,
                "  {status} {:<40} {:>6} ms{detail}",
                r.name,
                r.duration.as_millis()
            );
        }
        let (p, f, s) = self.counts();
        let _ = writeln!(out, "conformance: {p} passed, {f} failed, {s} skipped");
        out
    }
}
