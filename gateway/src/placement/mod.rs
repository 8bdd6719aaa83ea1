//! Placement: which location holds which fragment of a seal, and where a fragment
//! moved off a location (or rebuilt) goes.

mod health;

use std::collections::BTreeMap;
use std::fmt;

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
    /// take new fragments and hold none of the seal's), of `tier` first when given,
    /// healthy first. `None` when there is no candidate.
    fn replacement(
        &self,
        candidates: &[String],
        seed: &[u8],
        tier: Option<Tier>,
        locations: &BTreeMap<String, Location>,
        health: &Health,
    ) -> Option<String>;
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
        tier: Option<Tier>,
        locations: &BTreeMap<String, Location>,
        health: &Health,
    ) -> Option<String> {
        let mut order: Vec<&String> = candidates.iter().collect();
        let len = order.len();
        order.rotate_left(rotation(seed, len));
        // Stable: the rotation is kept within each group.
        let slow = health.slow(order.iter().copied());
        order.sort_by_key(|l| {
            (tier.is_some() && locations.get(*l).map(|x| x.tier) != tier, health.failures(l) > 0, slow.contains(l))
        });
        order.first().map(|l| (*l).clone())
    }
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

    #[test]
    fn replacements_prefer_the_tier_then_health_and_spread_by_seed() {
        let locs = locations(&[Tier::Edge, Tier::Cloud, Tier::Cloud, Tier::Edge, Tier::Edge]);
        let all: Vec<String> = locs.keys().cloned().collect();
        let h = Health::default();
        let picks: std::collections::BTreeSet<String> = (0u8..40)
            .map(|s| Spread.replacement(&all, &[s], Some(Tier::Cloud), &locs, &h).expect("candidate"))
            .collect();
        assert_eq!(picks, ["l1", "l2"].map(String::from).into(), "cloud first, both used");
        h.failed("l1");
        for s in 0u8..10 {
            assert_eq!(Spread.replacement(&all, &[s], Some(Tier::Cloud), &locs, &h).as_deref(), Some("l2"));
        }
        let edges = vec!["l0".to_string()];
        assert_eq!(Spread.replacement(&edges, &[1], Some(Tier::Cloud), &locs, &h).as_deref(), Some("l0"));
        assert_eq!(Spread.replacement(&[], &[1], None, &locs, &h), None);
    }

    #[test]
    fn impossible_policies_fail() {
        let locs = locations(&[Tier::Edge, Tier::Edge, Tier::Cloud]);
        assert!(Spread.place(&policy(2, 3, &locs, 2, 0), &[1], &locs, &Health::default()).is_err());
        let small = locations(&[Tier::Edge; 2]);
        assert!(Spread.place(&policy(2, 3, &small, 0, 0), &[1], &small, &Health::default()).is_err());
    }
}
