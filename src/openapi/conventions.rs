//! What every operation of the document shares: the bearer-token scheme and the
//! responses any operation may give, added in one place instead of on each handler.

use crate::auth::is_public;
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};

/// The name of the security scheme in the document.
pub const SECURITY_SCHEME: &str = "bearerAuth";

/// Declares the bearer-token scheme and adds the responses every operation shares:
/// `405` on every operation (each path answers the methods it lists, `HEAD` where it
/// lists `GET`, and a 405 to others), and on every operation that is not public
/// ([`PUBLIC_PATHS`]) the token, the `401` and `429` every authenticated request may get
/// and the `503` every request that reaches the database may get. Operations where a
/// token's scope can be refused list their `403` themselves.
pub struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sdk_ + 43 characters of base64url")
                    .description(Some(
                        "An API token from `seriesd token create`, as `Authorization: Bearer \
                         <token>` (or DRF's `Authorization: Token <token>`).",
                    ))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = is_public(path);
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.responses.responses.insert(
                    "405".into(),
                    RefOr::Ref(Ref::from_response_name("MethodNotAllowed")),
                );
                if public {
                    continue;
                }
                op.security = Some(vec![SecurityRequirement::new(
                    SECURITY_SCHEME,
                    Vec::<String>::new(),
                )]);
                for (status, name) in [
                    ("401", "Unauthorized"),
                    ("429", "TooManyRequests"),
                    ("503", "Unavailable"),
                ] {
                    op.responses
                        .responses
                        .insert(status.into(), RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}
