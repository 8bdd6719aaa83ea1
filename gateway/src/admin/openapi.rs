//! The admin API's OpenAPI 3.1 description, generated from the handlers and types
//! (`skyshard admin openapi` prints it; `openapi/skyshard.yaml` is a copy that a test
//! keeps current).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::api;
use super::problem::{PROBLEM_JSON, Problem};

/// The description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Skyshard admin API",
        description = "Operate a Skyshard gateway: storage locations, placement policies, S3 access keys, \
bucket usage, object placement, background jobs and status. Every `/v1` route needs \
`Authorization: Bearer <admin token>`. Errors are `application/problem+json` (RFC 9457). \
Lists are paged: pass `next_cursor` back as `cursor`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        api::list_locations, api::add_location, api::get_location, api::update_location, api::remove_location,
        api::drain_location, api::activate_location,
        api::list_policies, api::get_policy, api::put_policy, api::delete_policy,
        api::list_tenants, api::create_tenant, api::get_tenant, api::delete_tenant,
        api::list_keys, api::create_key, api::revoke_key, api::rotate_key, api::delete_key,
        api::list_buckets, api::get_bucket, api::assign_policy, api::inspect_object,
        api::audit_bucket, api::object_evidence, api::evidence_key,
        api::list_jobs, api::create_job, api::get_job, api::cancel_job,
        api::status, api::cache, api::backup, super::offload_report, super::health, super::ready,
    ),
    components(schemas(Problem)),
    modifiers(&Conventions),
    security(("bearer" = [])),
    tags(
        (name = "locations", description = "Storage locations"),
        (name = "policies", description = "Placement policies"),
        (name = "tenants", description = "Tenants: owners of access keys and buckets"),
        (name = "keys", description = "S3 access keys"),
        (name = "buckets", description = "Buckets, usage and object placement"),
        (name = "jobs", description = "Background jobs"),
        (name = "status", description = "Status, health and readiness"),
    )
)]
pub struct ApiDoc;

/// Adds what every operation shares: the bearer scheme, and errors as problems.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("sst_<id>_<secret>").build(),
            ),
        );
        let problem = ResponseBuilder::new()
            .description("An error (RFC 9457 problem details)")
            .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
            .build();
        for item in openapi.paths.paths.values_mut() {
            for op in
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
            {
                op.responses.responses.entry("default".into()).or_insert_with(|| problem.clone().into());
            }
        }
    }
}

/// The description as YAML.
pub fn yaml() -> String {
    ApiDoc::openapi().to_yaml().unwrap_or_else(|e| format!("# cannot render the OpenAPI description: {e}\n"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_description_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/skyshard.yaml");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == super::yaml(),
            "{} is out of date: run `cargo run --release -- admin openapi > openapi/skyshard.yaml`",
            path.display()
        );
    }
}
