//! The admin REST API, `/v1`: locations, placement policies, tenants, access keys,
//! buckets, object placement, background jobs and status. JSON in and out; errors as
//! `application/problem+json`; every list is paged (`limit`, `cursor` → `next_cursor`).
//! One file per resource, as garage's admin API has.

mod buckets;
mod jobs;
mod keys;
mod locations;
mod objects;
mod policies;
mod status;
mod tenants;

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use buckets::*;
pub use jobs::*;
pub use keys::*;
pub use locations::*;
pub use objects::*;
pub use policies::*;
pub use status::*;
pub use tenants::*;

use super::problem::Problem;

pub(super) type ApiResult<T> = Result<T, Problem>;

/// Largest page.
const MAX_LIMIT: u32 = 1000;
/// Page size when none is asked for.
const DEFAULT_LIMIT: u32 = 100;

/// Paging of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub(super) fn limit(&self) -> ApiResult<usize> {
        match self.limit.unwrap_or(DEFAULT_LIMIT) {
            l @ 1..=MAX_LIMIT => Ok(l as usize),
            l => Err(Problem::bad_request(format!("limit {l}: use 1 to {MAX_LIMIT}"))),
        }
    }

    /// One page of `items` (sorted by their key): those after the cursor.
    pub(super) fn page<T>(&self, items: impl IntoIterator<Item = (String, T)>) -> ApiResult<(Vec<T>, Option<String>)> {
        let limit = self.limit()?;
        let mut out = Vec::new();
        let mut next = None;
        for (key, item) in items.into_iter().filter(|(k, _)| self.cursor.as_ref().is_none_or(|c| k > c)) {
            if out.len() == limit {
                break;
            }
            next = Some(key);
            out.push(item);
        }
        if out.len() < limit {
            next = None;
        }
        Ok((out, next))
    }
}

macro_rules! page_type {
    ($name:ident, $item:ty, $what:literal) => {
        #[doc = concat!("A page of ", $what, ".")]
        #[derive(Debug, Serialize, Deserialize, ToSchema)]
        pub struct $name {
            /// The items.
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; absent on the last page.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub next_cursor: Option<String>,
        }

        impl $name {
            pub(super) fn of((items, next_cursor): (Vec<$item>, Option<String>)) -> Json<Self> {
                Json(Self { items, next_cursor })
            }
        }
    };
}

page_type!(LocationPage, LocationInfo, "locations");
page_type!(PolicyPage, PolicyInfo, "policies");
page_type!(TenantPage, TenantInfo, "tenants");
page_type!(KeyPage, KeyInfo, "access keys");
page_type!(BucketPage, BucketInfo, "buckets");
page_type!(JobPage, JobInfo, "jobs");
