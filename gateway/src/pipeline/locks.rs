//! Object lock at the locations too: the fragments of a version under retention are
//! locked where they are stored, by the locations that enforce retention (the
//! `skyshard edge` store), so that a compromised gateway or stolen location
//! credentials still cannot delete them before their date. The gateway's own lock
//! (`crate::meta::Retention`) stays the rule; these locks are defence in depth.
//!
//! A version's fragments are locked once the version is written and checked,
//! before it commits (a failed write locks nothing); again when its retention is
//! extended; and a fragment rebuilt elsewhere (repair, drain) is locked as the
//! versions sharing its seal require. A legal hold has no date, and a lock the
//! gateway could lift would protect nothing from the gateway: holds stay the
//! gateway's alone.

use futures::StreamExt;
use tracing::warn;

use super::PipelineCtx;
use super::read::fragment_ref;
use crate::backend::{FragmentLock, FragmentRef, TransferError};
use crate::meta::{FragmentState, LockMode, MetaError, Retention, Seal, SealId, now_ms};

/// Fragment locks in flight at once.
const PARALLEL: usize = 16;

/// The lock a version's retention asks of its fragments (`None`: no retention).
/// Dates round up to the second.
pub(crate) fn fragment_lock(r: &Retention) -> Option<FragmentLock> {
    match (r.mode, r.until) {
        (Some(mode), Some(until)) if until > 0 => {
            Some(FragmentLock { until: (until as u64).div_ceil(1000), compliance: mode == LockMode::Compliance })
        }
        _ => None,
    }
}

/// Locks every stored fragment of `seals` with `lock` where its location enforces
/// retention.
pub(crate) async fn lock_seals(ctx: &PipelineCtx, seals: &[&Seal], lock: FragmentLock) {
    let mut refs: Vec<FragmentRef> = Vec::new();
    for s in seals {
        refs.extend(
            s.fragments.iter().filter(|f| f.state == FragmentState::Stored).map(|f| fragment_ref(f, f.size, None)),
        );
    }
    futures::stream::iter(refs)
        .map(|at| async move { lock_fragment(ctx, &at, lock).await })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>()
        .await;
}

/// Locks `at` with `lock` where its location enforces retention; a location that
/// fails to is logged (the gateway's own lock still holds).
async fn lock_fragment(ctx: &PipelineCtx, at: &FragmentRef, lock: FragmentLock) {
    match ctx.locations.retain(at, lock).await {
        Ok(_) | Err(TransferError::Unsupported(_)) => {}
        Err(e) => {
            warn!(location = %at.location, error = %e, "a location did not lock a fragment; the gateway's own lock still holds")
        }
    }
}

/// The lock the versions made of `seal` ask of its fragments at `now` (Unix ms):
/// the latest date among them, compliance if any is.
pub(crate) async fn seal_lock(ctx: &PipelineCtx, seal: SealId, now: i64) -> Result<Option<FragmentLock>, MetaError> {
    let retentions = ctx.meta.seal_retentions(seal, now).await?;
    Ok(retentions.iter().filter_map(fragment_lock).reduce(|a, b| a.merge(Some(b))))
}

/// Locks the new fragment `at` of `seal` as the versions made of the seal ask.
pub(crate) async fn lock_rebuilt(ctx: &PipelineCtx, seal: SealId, at: &FragmentRef) {
    let lock = match seal_lock(ctx, seal, now_ms()).await {
        Ok(Some(lock)) => lock,
        Ok(None) => return,
        Err(e) => {
            warn!(%seal, error = %e, "could not read the locks a rebuilt fragment needs");
            return;
        }
    };
    lock_fragment(ctx, at, lock).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_asks_a_lock_to_the_second_after_it_and_a_hold_asks_none() {
        let c = Retention { mode: Some(LockMode::Compliance), until: Some(1_500), legal_hold: false };
        assert_eq!(fragment_lock(&c), Some(FragmentLock { until: 2, compliance: true }));
        let g = Retention { mode: Some(LockMode::Governance), until: Some(3_000), legal_hold: true };
        assert_eq!(fragment_lock(&g), Some(FragmentLock { until: 3, compliance: false }));
        assert_eq!(fragment_lock(&Retention { legal_hold: true, ..Retention::default() }), None);
    }
}
