//! Sovereignty constraints: how many of a seal's fragments may sit with one
//! provider or in one jurisdiction, and how many must sit in a named one. A
//! location states its provider and jurisdiction; one that states none cannot be
//! counted, so a policy that limits by that attribute never places there.

use std::collections::BTreeMap;
use std::fmt;

use super::Location;

/// Steps a placement search may take before it gives up.
const BUDGET: usize = 200_000;

/// Limits on where a seal's fragments may be, by the locations' stated attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraints {
    /// At most this many fragments of a seal with any one provider.
    pub max_per_provider: Option<u8>,
    /// At most this many in any one jurisdiction.
    pub max_per_jurisdiction: Option<u8>,
    /// At least this many in each jurisdiction named.
    pub min_per_jurisdiction: BTreeMap<String, u8>,
}

/// One constraint, checked against a seal's placement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Check {
    /// What it requires, in words.
    pub rule: String,
    /// Whether the placement satisfies it.
    pub satisfied: bool,
    /// What the placement has (the largest count for a limit, the count for a
    /// minimum).
    pub found: String,
}

impl Constraints {
    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.max_per_provider.is_none() && self.max_per_jurisdiction.is_none() && self.min_per_jurisdiction.is_empty()
    }

    /// Whether `l` can be counted under these constraints (it states every
    /// attribute they limit by).
    pub fn countable(&self, l: &Location) -> bool {
        (self.max_per_provider.is_none() || l.provider.is_some())
            && ((self.max_per_jurisdiction.is_none() && self.min_per_jurisdiction.is_empty())
                || l.jurisdiction.is_some())
    }

    /// Whether `l` may be added to `held` without going over a limit.
    pub fn admits(&self, held: &[&Location], l: &Location) -> bool {
        let same = |attr: fn(&Location) -> &Option<String>| {
            held.iter().filter(|h| attr(h).is_some() && attr(h) == attr(l)).count()
        };
        self.countable(l)
            && self.max_per_provider.is_none_or(|m| same(|x| &x.provider) < usize::from(m))
            && self.max_per_jurisdiction.is_none_or(|m| same(|x| &x.jurisdiction) < usize::from(m))
    }

    /// How far `held` is from satisfying these constraints: fragments over a limit
    /// or short of a minimum, summed (0: satisfied). An uncountable location is
    /// over every limit it cannot be counted for.
    pub fn excess(&self, held: &[&Location]) -> usize {
        self.checks(held).iter().map(|c| c.1).sum()
    }

    /// Each constraint against `held`, with how far it is missed.
    fn checks(&self, held: &[&Location]) -> Vec<(Check, usize)> {
        let mut out = Vec::new();
        let mut limit = |what: &str, max: Option<u8>, attr: fn(&Location) -> &Option<String>| {
            let Some(max) = max else { return };
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            let mut unknown = 0;
            for h in held {
                match attr(h) {
                    Some(v) => *counts.entry(v).or_default() += 1,
                    None => unknown += 1,
                }
            }
            let over: usize = counts.values().map(|&c| c.saturating_sub(usize::from(max))).sum::<usize>() + unknown;
            let top = counts.iter().max_by_key(|(_, c)| **c).map_or("none".to_string(), |(v, c)| format!("{c} at {v}"));
            let found = if unknown > 0 { format!("{top}; {unknown} at locations stating no {what}") } else { top };
            out.push((Check { rule: format!("at most {max} per {what}"), satisfied: over == 0, found }, over));
        };
        limit("provider", self.max_per_provider, |l| &l.provider);
        limit("jurisdiction", self.max_per_jurisdiction, |l| &l.jurisdiction);
        for (j, &min) in &self.min_per_jurisdiction {
            let have = held.iter().filter(|h| h.jurisdiction.as_deref() == Some(j.as_str())).count();
            let short = usize::from(min).saturating_sub(have);
            out.push((
                Check {
                    rule: format!("at least {min} in jurisdiction {j}"),
                    satisfied: short == 0,
                    found: have.to_string(),
                },
                short,
            ));
        }
        out
    }

    /// Each constraint against `held`.
    pub fn report(&self, held: &[&Location]) -> Vec<Check> {
        self.checks(held).into_iter().map(|c| c.0).collect()
    }

    /// Chooses `n` of `order` (most preferred first) that satisfy these
    /// constraints and `feasible(chosen, left)` (other minimums: `true` while they
    /// can still be met with `left` places to fill), preferring earlier locations.
    /// `None` when no choice does (or the search gives up, after [`BUDGET`] steps).
    pub fn choose<'a>(
        &self,
        order: &[&'a Location],
        n: usize,
        feasible: &dyn Fn(&[&Location], usize) -> bool,
    ) -> Option<Vec<&'a Location>> {
        let mut chosen: Vec<&'a Location> = Vec::with_capacity(n);
        let mut steps = 0;
        self.search(order, n, 0, &mut chosen, feasible, &mut steps).then_some(chosen)
    }

    fn search<'a>(
        &self,
        order: &[&'a Location],
        n: usize,
        from: usize,
        chosen: &mut Vec<&'a Location>,
        feasible: &dyn Fn(&[&Location], usize) -> bool,
        steps: &mut usize,
    ) -> bool {
        let left = n - chosen.len();
        if left == 0 {
            return self.excess(chosen) == 0;
        }
        // The minimums must still be reachable with `left` places.
        let short: usize = self
            .min_per_jurisdiction
            .iter()
            .map(|(j, &m)| {
                usize::from(m).saturating_sub(chosen.iter().filter(|h| h.jurisdiction.as_deref() == Some(j)).count())
            })
            .sum();
        if short > left || !feasible(chosen, left) {
            return false;
        }
        for i in from..order.len() {
            if order.len() - i < left {
                return false;
            }
            *steps += 1;
            if *steps > BUDGET {
                return false;
            }
            if !self.admits(chosen, order[i]) {
                continue;
            }
            chosen.push(order[i]);
            if self.search(order, n, i + 1, chosen, feasible, steps) {
                return true;
            }
            chosen.pop();
        }
        false
    }
}

impl fmt::Display for Constraints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(m) = self.max_per_provider {
            parts.push(format!("at most {m} per provider"));
        }
        if let Some(m) = self.max_per_jurisdiction {
            parts.push(format!("at most {m} per jurisdiction"));
        }
        for (j, m) in &self.min_per_jurisdiction {
            parts.push(format!("at least {m} in {j}"));
        }
        if parts.is_empty() { f.write_str("none") } else { f.write_str(&parts.join(", ")) }
    }
}
