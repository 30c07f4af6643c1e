//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations as they are
//! registered on the router (see [`crate::app::api_router`]), so the document cannot drift from the routes.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as OpenApiDoc, ServerBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::config::ServerConfig;
use crate::error::{FieldProblem, Problem, UnmetCondition};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "csirt-incubator API",
        description = "ANSSI's regional CSIRT incubation programme: regions, projects and their workflow, \
                       evidence, cohorts. Errors are RFC 9457 problems (`application/problem+json`).",
        license(name = "EUPL-1.2", identifier = "EUPL-1.2"),
    ),
    modifiers(&BearerSecurity),
    // Referenced by the error responses of every path; registered here since responses do not register them.
    components(schemas(Problem, UnmetCondition, FieldProblem, crate::routes::outbox::MailStatus)),
    tags(
        (name = "auth", description = "API tokens"),
        (name = "regions", description = "The 18 regions"),
        (name = "projects", description = "Projects, their fields, transitions and audit trail"),
        (name = "documents", description = "Evidence and its review"),
        (name = "cohorts", description = "Incubation sessions"),
        (name = "outbox", description = "Queued, sent and dead emails (admin)"),
        (name = "workflows", description = "Deployed workflow versions and migrations (admin)"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from `POST /api/v1/auth/token`"))
                    .build(),
            ),
        );
    }
}

/// The document's frame; paths and schemas are added as the routes are registered.
pub fn base() -> OpenApiDoc {
    ApiDoc::openapi()
}

/// The complete document the service serves at `/openapi.json`.
pub fn document(config: &ServerConfig) -> OpenApiDoc {
    let mut doc = crate::app::api_router(config).into_openapi();
    let url = config.public_url.clone().unwrap_or_else(|| "/".to_owned());
    doc.servers = Some(vec![ServerBuilder::new().url(url).build()]);
    doc
}

/// Malformed JSON, query or path parameter.
#[derive(Debug, IntoResponses)]
#[response(status = 400, content_type = "application/problem+json")]
pub struct BadRequestProblem(#[allow(dead_code)] Problem);

/// Missing, unknown, expired or revoked bearer token.
#[derive(Debug, IntoResponses)]
#[response(status = 401, content_type = "application/problem+json")]
pub struct UnauthorizedProblem(#[allow(dead_code)] Problem);

/// The caller's role may not do this.
#[derive(Debug, IntoResponses)]
#[response(status = 403, content_type = "application/problem+json")]
pub struct ForbiddenProblem(#[allow(dead_code)] Problem);

/// No such resource, or one outside the caller's region (answered the same way).
#[derive(Debug, IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
pub struct NotFoundProblem(#[allow(dead_code)] Problem);

/// Stale `expected_version` (with `current_version`), or a duplicate.
#[derive(Debug, IntoResponses)]
#[response(status = 409, content_type = "application/problem+json")]
pub struct ConflictProblem(#[allow(dead_code)] Problem);

/// The link was used, expired or withdrawn.
#[derive(Debug, IntoResponses)]
#[response(status = 410, content_type = "application/problem+json")]
pub struct GoneProblem(#[allow(dead_code)] Problem);

/// The body is larger than the server accepts.
#[derive(Debug, IntoResponses)]
#[response(status = 413, content_type = "application/problem+json")]
pub struct TooLargeProblem(#[allow(dead_code)] Problem);

/// The body is not JSON, or the uploaded file is not an accepted kind (recognised by its content).
#[derive(Debug, IntoResponses)]
#[response(status = 415, content_type = "application/problem+json")]
pub struct UnsupportedProblem(#[allow(dead_code)] Problem);

/// Well-formed but invalid: wrong field type, unknown field, unmet guard conditions (listed in `unmet`),
/// a transition not possible from the current state.
#[derive(Debug, IntoResponses)]
#[response(status = 422, content_type = "application/problem+json")]
pub struct UnprocessableProblem(#[allow(dead_code)] Problem);

/// The request took longer than the server allows.
#[derive(Debug, IntoResponses)]
#[response(status = 408, content_type = "application/problem+json")]
pub struct TimeoutProblem(#[allow(dead_code)] Problem);

/// An unexpected error; the cause is logged, never shown.
#[derive(Debug, IntoResponses)]
#[response(status = 500, content_type = "application/problem+json")]
pub struct InternalProblem(#[allow(dead_code)] Problem);

/// The database cannot be reached.
#[derive(Debug, IntoResponses)]
#[response(status = 503, content_type = "application/problem+json")]
pub struct UnavailableProblem(#[allow(dead_code)] Problem);
