//! Thresholds turn one probe result into OK / WARN / CRIT with a one-line why. Damping over
//! several results is not here; this is the per-result verdict every consumer shares.

use serde::{Deserialize, Serialize};

use crate::clock::{days_left_now as days_left, fmt_duration};
use crate::config::Thresholds;
use crate::probe::ProbeResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Crit,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Crit => "crit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub status: Status,
    /// Why it is not OK; None when OK.
    pub why: Option<String>,
}

pub fn assess(result: &ProbeResult, t: &Thresholds) -> Assessment {
    if let Some(f) = &result.failure {
        // The run could not be made here (no browser): not the target's failure. The
        // board makes the state UNKNOWN; `pathwatch check` warns.
        let status = if f.reason == crate::probe::Reason::Unavailable {
            Status::Warn
        } else {
            Status::Crit
        };
        return Assessment {
            status,
            why: Some(format!("{}: {}", f.reason, f.message)),
        };
    }
    let mut worst = Assessment {
        status: Status::Ok,
        why: None,
    };
    let mut raise = |status: Status, why: String| {
        if status > worst.status {
            worst = Assessment {
                status,
                why: Some(why),
            };
        }
    };
    let took = result.duration;
    for (limit, status, word) in [
        (t.latency_crit, Status::Crit, "critical"),
        (t.latency_warn, Status::Warn, "warning"),
    ] {
        if let Some(limit) = limit.filter(|l| took >= *l) {
            raise(
                status,
                format!(
                    "took {}, over the {} {word} threshold",
                    fmt_duration(took),
                    fmt_duration(limit)
                ),
            );
        }
    }
    if let Some(p) = &result.page {
        let paint = p
            .timing
            .largest_contentful_paint
            .map(|v| ("largest contentful paint", v))
            .or(p
                .timing
                .first_contentful_paint
                .map(|v| ("first contentful paint", v)));
        for (limit, status, word) in [
            (t.paint_crit, Status::Crit, "critical"),
            (t.paint_warn, Status::Warn, "warning"),
        ] {
            if let (Some(limit), Some((what, at))) = (limit, paint)
                && at >= limit.as_secs_f64()
            {
                raise(
                    status,
                    format!(
                        "the page's {what} came at {}, over the {} {word} threshold",
                        fmt_duration(std::time::Duration::from_secs_f64(at)),
                        fmt_duration(limit)
                    ),
                );
            }
        }
    }
    if let Some(tls) = &result.tls
        && let Some((i, cert)) = tls
            .chain
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| c.not_after)
    {
        let days = days_left(cert.not_after);
        let which = if i == 0 {
            "certificate"
        } else {
            "intermediate certificate"
        };
        let msg = |limit: u32, word: &str| {
            format!(
                "{which} '{}' expires in {days} days (≤ {limit}-day {word} threshold)",
                cert.subject
            )
        };
        if days <= i64::from(t.cert_days_crit) {
            raise(Status::Crit, msg(t.cert_days_crit, "critical"));
        } else if days <= i64::from(t.cert_days_warn) {
            raise(Status::Warn, msg(t.cert_days_warn, "warning"));
        }
    }
    worst
}
