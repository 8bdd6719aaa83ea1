//! Moving a fragment off a location: rebuilt by recoding elsewhere
//! (`rebuild.rs`) — the location being drained is never read, so a location that
//! is already gone drains the same way — then the metadata repointed and the old
//! copy deleted.

use std::collections::BTreeSet;

use super::read::fragment_ref;
use super::rebuild::rebuild;
use super::{PipelineCtx, PipelineError};
use crate::backend::FragmentRef;
use crate::catalog::CatalogView;
use crate::meta::{FragmentAt, FragmentState, LocationState};
use crate::placement::{Constraints, Replacing};

/// Where a fragment went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The new location.
    pub to: String,
    /// Whether the seal was still stored when the move was recorded (if not, the
    /// new copy was deleted again).
    pub recorded: bool,
}

/// The location to move a fragment of a seal to, as placement chooses a
/// replacement: active, holding no other fragment of the seal, keeping the
/// constraints of the seal's policy, of the drained location's tier if one is
/// left, healthy first.
pub fn target(ctx: &PipelineCtx, view: &CatalogView, from: &str, item: &FragmentAt) -> Option<String> {
    let taken: BTreeSet<&str> = item.seal.fragments.iter().map(|f| f.location.as_str()).collect();
    let candidates: Vec<String> = view
        .locations
        .keys()
        .filter(|l| view.state(l) == LocationState::Active && !taken.contains(l.as_str()))
        .cloned()
        .collect();
    let none = Constraints::default();
    let replacing = Replacing {
        from,
        others: item.seal.fragments.iter().filter(|f| f.index != item.index).map(|f| f.location.as_str()).collect(),
        constraints: item.policy.as_deref().and_then(|p| view.policies.get(p)).map_or(&none, |p| &p.constraints),
    };
    ctx.placement.replacement(&candidates, &item.seal.id.0, &replacing, &view.locations, &ctx.health)
}

/// Recodes fragment `item.index` of its seal from the others and writes it to `to`;
/// then points the metadata at it and deletes the old copy at `from` (best effort).
pub async fn move_fragment(ctx: &PipelineCtx, from: &str, item: &FragmentAt, to: &str) -> Result<Moved, PipelineError> {
    let rebuilt = rebuild(ctx, &item.seal, item.index, to).await?;
    for &i in &rebuilt.corrupt {
        let _ = ctx.meta.set_fragment_state(item.seal.id, i, FragmentState::Corrupt).await;
    }
    let recorded = ctx.meta.move_fragment(item.seal.id, from, &rebuilt.fragment).await?;
    if recorded {
        super::record::follow_fragment(ctx, item.seal.id, to, Some(from)).await;
    }
    // The copy no longer referenced: the old one, or the new one when the seal was
    // deleted meanwhile. Best effort: a location being drained may be gone.
    let new = fragment_ref(&rebuilt.fragment, rebuilt.fragment.size, None);
    let stale = match item.seal.fragment(item.index) {
        Some(old) if recorded => FragmentRef { location: from.to_string(), name: old.name.clone(), ..new },
        _ => new,
    };
    if let Err(e) = ctx.store.delete(&stale).await {
        tracing::debug!(location = %stale.location, error = %e, "old fragment copy not deleted");
    }
    Ok(Moved { to: to.to_string(), recorded })
}
