//! Placement: which location holds which fragment of a seal, and where a fragment
//! moved off a location (or rebuilt) goes.

mod health;

use std::collections::BTreeMap;
use std::fmt;

pub use crate::config::{Check, Constraints};
pub use health::Health;

use crate::config::{Location, Policy, Tier};

/// No placement satisfies the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot place {n} fragments: {reason}")]
pub struct PlacementError {
    /// Fragments to place.
    pub n: u8,
    /// Why not.
    pub reason: String,
}

/// Chooses a location for each of a seal's `n` fragments.
pub trait Placement: Send + Sync + fmt::Debug {
    /// Location names, one per fragment index, all distinct.
    fn place(
        &self,
        policy: &Policy,
        seed: &[u8],
        locations: &BTreeMap<String, Location>,
        health: &Health,
    ) -> Result<Vec<String>, PlacementError>;

    /// Where one new fragment of a seal goes: one of `candidates` (locations that
    /// take new fragments and hold none of the seal's) that keeps the seal's
    /// constraints, of the tier it leaves first, healthy first. `None` when there
    /// is no such candidate.
    fn replacement(
        &self,
        candidates: &[String],
        seed: &[u8],
        replacing: &Replacing<'_>,
        locations: &BTreeMap<String, Location>,
        health: &Health,
    ) -> Option<String>;
}

/// The fragment a replacement is for.
#[derive(Debug)]
pub struct Replacing<'a> {
    /// The location it leaves (or is lost at).
    pub from: &'a str,
    /// The locations of the seal's other fragments.
    pub others: Vec<&'a str>,
    /// The constraints of the seal's policy.
    pub constraints: &'a Constraints,
}

/// Where a seal's rotation starts among `len` locations: spreads load when a
/// policy has more locations than fragments.
fn rotation(seed: &[u8], len: usize) -> usize {
    seed.iter().fold(0usize, |a, &b| a.wrapping_mul(31).wrapping_add(usize::from(b))) % len.max(1)
}

/// Spreads fragments over a policy's locations: one per location, the required
/// number on each tier first, the starting point rotated by the seal id so that load
/// spreads when a policy has more locations than fragments, and locations that just
/// failed, then locations much slower than the others, passed over while others
/// remain.
#[derive(Debug, Default, Clone, Copy)]
pub struct Spread;

impl Placement for Spread {
    fn place(
        &self,
        policy: &Policy,
        seed: &[u8],
        locations: &BTreeMap<String, Location>,
        health: &Health,
    ) -> Result<Vec<String>, PlacementError> {
        let n = usize::from(policy.params.n());
        let err = |reason: String| PlacementError { n: policy.params.n(), reason };
        let mut order: Vec<&String> = policy.locations.iter().collect();
        if order.len() < n {
            return Err(err(format!("policy {} has {} locations", policy.name, order.len())));
        }
        let len = order.len();
        order.rotate_left(rotation(seed, len));
        // Healthy first, then those not slow beside the others; the sort is stable,
        // so the rotation is kept within each group.
        let slow = health.slow(order.iter().copied());
        order.sort_by_key(|l| (health.failures(l) > 0, slow.contains(l)));
        let tier = |l: &str| locations.get(l).map(|x| x.tier);
        if !policy.constraints.is_empty() {
            return constrained(policy, &order, locations).ok_or_else(|| {
                err(format!(
                    "no {n} of policy {}'s locations satisfy its constraints ({})",
                    policy.name, policy.constraints
                ))
            });
        }
        let mut chosen: Vec<String> = Vec::with_capacity(n);
        for (t, min) in [(Tier::Cloud, policy.min_cloud), (Tier::Edge, policy.min_edge)] {
            let picked: Vec<&String> = order
                .iter()
                .copied()
                .filter(|l| tier(l) == Some(t) && !chosen.contains(l))
                .take(usize::from(min))
                .collect();
            if picked.len() < usize::from(min) {
                return Err(err(format!("policy {} needs {min} {t} locations", policy.name)));
            }
            chosen.extend(picked.into_iter().cloned());
        }
        for l in order {
            if chosen.len() == n {
                break;
            }
            if !chosen.contains(l) {
                chosen.push(l.clone());
            }
        }
        Ok(chosen)
    }

    fn replacement(
        &self,
        candidates: &[String],
        seed: &[u8],
        replacing: &Replacing<'_>,
        locations: &BTreeMap<String, Location>,
        health: &Health,
    ) -> Option<String> {
        let tier = locations.get(replacing.from).map(|l| l.tier);
        let others: Vec<&Location> = replacing.others.iter().filter_map(|l| locations.get(*l)).collect();
        let c = replacing.constraints;
        let excess = |l: &Location| {
            let mut held = others.clone();
            held.push(l);
            c.excess(&held)
        };
        // A seal placed before its constraints tightened may keep missing them, but
        // never by more than where the fragment was.
        let bound = locations.get(replacing.from).map_or(0, &excess);
        let mut order: Vec<(&String, usize)> = candidates
            .iter()
            .filter_map(|l| locations.get(l).map(|x| (l, excess(x))))
            .filter(|(_, e)| *e <= bound)
            .collect();
        let len = order.len();
        order.rotate_left(rotation(seed, len));
        // Stable: the rotation is kept within each group.
        let slow = health.slow(order.iter().map(|(l, _)| *l));
        order.sort_by_key(|(l, e)| {
            (*e, tier.is_some() && locations.get(*l).map(|x| x.tier) != tier, health.failures(l) > 0, slow.contains(l))
        });
        order.first().map(|(l, _)| (*l).clone())
    }
}

/// A placement of `policy` within its constraints: the first choice in `order`
/// (most preferred first) that also meets the tier minimums.
fn constrained(policy: &Policy, order: &[&String], locations: &BTreeMap<String, Location>) -> Option<Vec<String>> {
    let order: Vec<&Location> = order.iter().filter_map(|l| locations.get(*l)).collect();
    let tiers = |chosen: &[&Location], left: usize| {
        let short = |t: Tier, min: u8| usize::from(min).saturating_sub(chosen.iter().filter(|l| l.tier == t).count());
        short(Tier::Cloud, policy.min_cloud) + short(Tier::Edge, policy.min_edge) <= left
    };
    let chosen = policy.constraints.choose(&order, usize::from(policy.params.n()), &tiers)?;
    Some(chosen.into_iter().map(|l| l.name.clone()).collect())
}

#[cfg(test)]
mod tests {
    use codec::CodingParams;
    use zeroize::Zeroizing;

    use super::*;
    use crate::config::LocationKind;

    fn locations(tiers: &[Tier]) -> BTreeMap<String, Location> {
        tiers
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let name = format!("l{i}");
                let loc = Location {
                    name: name.clone(),
                    kind: LocationKind::Edge,
                    endpoint: url::Url::parse("http://127.0.0.1:1").expect("url"),
                    tier: t,
                    region: None,
                    provider: None,
                    jurisdiction: None,
                    prefix: "p".into(),
                    container: String::new(),
                    access_key_id: String::new(),
                    secret: Zeroizing::new("secretsecret".into()),
                    signing_region: String::new(),
                    ca_file: None,
                };
                (name, loc)
            })
            .collect()
    }

    fn policy(k: u8, n: u8, locs: &BTreeMap<String, Location>, min_cloud: u8, min_edge: u8) -> Policy {
        Policy {
            name: "p".into(),
            params: CodingParams::new(k, n, 4096).expect("params"),
            locations: locs.keys().cloned().collect(),
            all_locations: false,
            min_cloud,
            min_edge,
            compression: None,
            write_quorum: k + 1,
            pack_threshold: 0,
            constraints: Constraints::default(),
        }
    }

    #[test]
    fn distinct_locations_meeting_tier_minimums() {
        let locs = locations(&[
            Tier::Edge,
            Tier::Edge,
            Tier::Edge,
            Tier::Cloud,
            Tier::Cloud,
            Tier::Edge,
            Tier::Edge,
            Tier::Cloud,
        ]);
        let p = policy(4, 6, &locs, 3, 2);
        for seed in 0u8..50 {
            let placed = Spread.place(&p, &[seed], &locs, &Health::default()).expect("place");
            assert_eq!(placed.len(), 6);
            let mut uniq = placed.clone();
            uniq.sort();
            uniq.dedup();
            assert_eq!(uniq.len(), 6, "{placed:?}");
            assert!(placed.iter().filter(|l| locs[*l].tier == Tier::Cloud).count() >= 3);
            assert!(placed.iter().filter(|l| locs[*l].tier == Tier::Edge).count() >= 2);
        }
    }

    #[test]
    fn spreads_by_seed_and_avoids_failing_locations() {
        let locs = locations(&[Tier::Edge; 8]);
        let p = policy(2, 3, &locs, 0, 0);
        let h = Health::default();
        let firsts: std::collections::BTreeSet<String> =
            (0u8..40).map(|s| Spread.place(&p, &[s], &locs, &h).expect("place")[0].clone()).collect();
        assert!(firsts.len() > 3, "starting points vary: {firsts:?}");
        for l in ["l0", "l1", "l2", "l3", "l4", "l5"] {
            h.failed(l);
        }
        let placed = Spread.place(&p, &[0], &locs, &h).expect("place");
        assert!(placed[..2].iter().all(|l| l == "l6" || l == "l7"), "{placed:?}");
    }

    fn replacing<'a>(from: &'a str, others: &[&'a str], constraints: &'a Constraints) -> Replacing<'a> {
        Replacing { from, others: others.to_vec(), constraints }
    }

    #[test]
    fn replacements_prefer_the_tier_then_health_and_spread_by_seed() {
        let locs = locations(&[Tier::Edge, Tier::Cloud, Tier::Cloud, Tier::Edge, Tier::Edge, Tier::Cloud]);
        let all: Vec<String> = locs.keys().filter(|l| *l != "l5").cloned().collect();
        let h = Health::default();
        let none = Constraints::default();
        let cloud = replacing("l5", &[], &none);
        let picks: std::collections::BTreeSet<String> =
            (0u8..40).map(|s| Spread.replacement(&all, &[s], &cloud, &locs, &h).expect("candidate")).collect();
        assert_eq!(picks, ["l1", "l2"].map(String::from).into(), "cloud first, both used");
        h.failed("l1");
        for s in 0u8..10 {
            assert_eq!(Spread.replacement(&all, &[s], &cloud, &locs, &h).as_deref(), Some("l2"));
        }
        let edges = vec!["l0".to_string()];
        assert_eq!(Spread.replacement(&edges, &[1], &cloud, &locs, &h).as_deref(), Some("l0"));
        assert_eq!(Spread.replacement(&[], &[1], &replacing("gone", &[], &none), &locs, &h), None);
    }

    /// Eight locations: providers a, a, a, b, b, c, c, d; jurisdictions EU for the
    /// first five, US for the rest.
    fn sovereign() -> BTreeMap<String, Location> {
        let mut locs = locations(&[Tier::Cloud; 8]);
        for (i, l) in locs.values_mut().enumerate() {
            l.provider = Some(["a", "a", "a", "b", "b", "c", "c", "d"][i].into());
            l.jurisdiction = Some(if i < 5 { "EU" } else { "US" }.into());
        }
        locs
    }

    fn count(placed: &[String], locs: &BTreeMap<String, Location>, f: impl Fn(&Location) -> bool) -> usize {
        placed.iter().filter(|l| f(&locs[*l])).count()
    }

    #[test]
    fn constrained_placements_hold_for_every_seed_and_fail_when_they_cannot() {
        let locs = sovereign();
        let mut p = policy(4, 6, &locs, 0, 0);
        p.constraints.max_per_provider = Some(2);
        p.constraints.min_per_jurisdiction.insert("EU".into(), 4);
        let h = Health::default();
        for seed in 0u8..60 {
            let placed = Spread.place(&p, &[seed], &locs, &h).expect("place");
            let held: Vec<&Location> = placed.iter().map(|l| &locs[l]).collect();
            assert_eq!(p.constraints.excess(&held), 0, "{placed:?}");
            assert!(count(&placed, &locs, |l| l.provider.as_deref() == Some("a")) <= 2);
            assert!(count(&placed, &locs, |l| l.jurisdiction.as_deref() == Some("EU")) >= 4);
        }
        // Four of a and b (the only EU providers) at two each is exactly four: EU 5
        // cannot be met.
        p.constraints.min_per_jurisdiction.insert("EU".into(), 5);
        let e = Spread.place(&p, &[1], &locs, &h).expect_err("unsatisfiable");
        assert!(e.reason.contains("constraints"), "{e}");
        // A location stating no provider is never counted in.
        let mut unstated = sovereign();
        unstated.get_mut("l7").expect("l7").provider = None;
        let mut q = policy(4, 6, &unstated, 0, 0);
        q.constraints.max_per_provider = Some(1);
        assert!(Spread.place(&q, &[1], &unstated, &h).is_err(), "a, b, c and an unknown: four providers for six");
        q.constraints.max_per_provider = Some(2);
        for seed in 0u8..20 {
            assert!(!Spread.place(&q, &[seed], &unstated, &h).expect("place").contains(&"l7".to_string()));
        }
    }

    #[test]
    fn replacements_keep_the_constraints_and_never_make_a_seal_worse() {
        let locs = sovereign();
        let h = Health::default();
        let c = Constraints { max_per_provider: Some(2), ..Constraints::default() };
        // The seal holds a at l0 and l1, b at l3; its fragment at l4 (b) is lost.
        let others = ["l0", "l1", "l3", "l5", "l6"];
        let candidates: Vec<String> = ["l2", "l7"].map(String::from).into();
        for s in 0u8..20 {
            let to = Spread.replacement(&candidates, &[s], &replacing("l4", &others, &c), &locs, &h);
            assert_eq!(to.as_deref(), Some("l7"), "a third fragment with provider a is refused");
        }
        let only_a: Vec<String> = vec!["l2".into()];
        assert_eq!(Spread.replacement(&only_a, &[1], &replacing("l4", &others, &c), &locs, &h), None);
        // A seal that already broke its constraints there may move no worse.
        let was_a = Spread.replacement(&only_a, &[1], &replacing("l2", &["l0", "l1", "l3"], &c), &locs, &h);
        assert_eq!(was_a.as_deref(), Some("l2"), "three at a before, three at a after: no worse");
    }

    #[test]
    fn impossible_policies_fail() {
        let locs = locations(&[Tier::Edge, Tier::Edge, Tier::Cloud]);
        assert!(Spread.place(&policy(2, 3, &locs, 2, 0), &[1], &locs, &Health::default()).is_err());
        let small = locations(&[Tier::Edge; 2]);
        assert!(Spread.place(&policy(2, 3, &small, 0, 0), &[1], &small, &Health::default()).is_err());
    }
}
