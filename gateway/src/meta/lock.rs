//! S3 object lock: a version's retention and legal hold, a bucket's default
//! retention, and the rules for changing a lock. A version a lock protects is not
//! deleted for good by anything (`objects::retire_version` checks).

use super::types::db_enum;

db_enum! {
    /// How a version's retention binds (S3's object lock modes).
    pub enum LockMode {
        /// Keys allowed to bypass governance retention may shorten it or delete.
        Governance = "GOVERNANCE",
        /// Nobody shortens it or deletes the version before its date.
        Compliance = "COMPLIANCE",
    }
}

/// A version's object lock: a retention (mode and date) and a legal hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// The retention's mode.
    pub mode: Option<LockMode>,
    /// Retained until (Unix ms).
    pub until: Option<i64>,
    /// Under legal hold (until it is lifted, whatever the date).
    pub legal_hold: bool,
}

impl Retention {
    /// What keeps a version with this lock from being deleted at `now`, if
    /// anything; `bypass`: governance retention gives way.
    pub fn blocks(&self, now: i64, bypass: bool) -> Option<&'static str> {
        if self.legal_hold {
            return Some("a legal hold");
        }
        match (self.mode, self.until) {
            (Some(LockMode::Compliance), Some(u)) if u > now => Some("compliance retention"),
            (Some(LockMode::Governance), Some(u)) if u > now && !bypass => Some("governance retention"),
            _ => None,
        }
    }

    /// This lock with its retention changed to `mode` until `until` (`None`: none),
    /// if the rules allow it at `now`: a compliance retention in force is only
    /// ever extended; a governance retention in force is shortened, removed or
    /// weakened only with `bypass`; anything else may be set.
    pub fn with_retention(
        &self,
        mode: Option<LockMode>,
        until: Option<i64>,
        now: i64,
        bypass: bool,
    ) -> Result<Retention, &'static str> {
        let new = Retention { mode, until, legal_hold: self.legal_hold };
        if self.retained(now) {
            let (old_until, new_until) = (self.until.unwrap_or(0), until.unwrap_or(0));
            let weaker = new_until < old_until || !new.retained(now);
            match self.mode {
                Some(LockMode::Compliance) if weaker || mode != Some(LockMode::Compliance) => {
                    return Err("compliance retention");
                }
                Some(LockMode::Governance) if weaker && !bypass => return Err("governance retention"),
                _ => {}
            }
        }
        Ok(new)
    }

    /// Whether the retention (not the hold) is in force at `now`.
    pub fn retained(&self, now: i64) -> bool {
        self.mode.is_some() && self.until.is_some_and(|u| u > now)
    }
}

/// A bucket's object lock: its default retention, if it has one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockDefault {
    /// Mode of the default retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Its length in days…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// …or in years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<u32>,
}

impl LockDefault {
    /// The retention a version written at `now` gets by default.
    pub fn retention(&self, now: i64) -> Retention {
        const DAY: i64 = 86_400_000;
        let mode = self.mode.as_deref().and_then(|m| m.parse().ok());
        let days = match (self.days, self.years) {
            (Some(d), _) => Some(i64::from(d)),
            (None, Some(y)) => Some(i64::from(y) * 365),
            _ => None,
        };
        match (mode, days) {
            (Some(mode), Some(d)) => Retention { mode: Some(mode), until: Some(now + d * DAY), legal_hold: false },
            _ => Retention::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_block_deletes_and_only_ever_tighten_unless_bypassed() {
        let (now, later, sooner) = (1_000, 5_000, 2_000);
        let compliance = Retention { mode: Some(LockMode::Compliance), until: Some(later), legal_hold: false };
        let governance = Retention { mode: Some(LockMode::Governance), ..compliance };
        assert_eq!(compliance.blocks(now, true), Some("compliance retention"), "no bypass for compliance");
        assert_eq!(governance.blocks(now, false), Some("governance retention"));
        assert_eq!(governance.blocks(now, true), None);
        assert_eq!(compliance.blocks(later + 1, false), None, "expired");
        let held = Retention { legal_hold: true, ..Retention::default() };
        assert_eq!(held.blocks(now, true), Some("a legal hold"));

        let c = Some(LockMode::Compliance);
        assert!(compliance.with_retention(c, Some(later + 1), now, false).is_ok(), "extended");
        assert!(compliance.with_retention(c, Some(sooner), now, true).is_err(), "never shortened");
        assert!(compliance.with_retention(Some(LockMode::Governance), Some(later), now, true).is_err());
        assert!(compliance.with_retention(None, None, now, true).is_err(), "never removed");
        let g = Some(LockMode::Governance);
        assert!(governance.with_retention(g, Some(sooner), now, false).is_err());
        assert!(governance.with_retention(g, Some(sooner), now, true).is_ok(), "bypassed");
        assert!(governance.with_retention(c, Some(later), now, false).is_ok(), "made compliance");
        assert!(compliance.with_retention(None, None, later + 1, false).is_ok(), "expired: anything");

        let d = LockDefault { mode: Some("GOVERNANCE".into()), days: Some(2), years: None };
        assert_eq!(d.retention(now), Retention { mode: g, until: Some(now + 2 * 86_400_000), legal_hold: false });
        assert_eq!(LockDefault::default().retention(now), Retention::default());
    }
}
