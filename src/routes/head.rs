//! `HEAD` on every path that serves `GET`: answered as `GET` would be, without the
//! body (RFC 9110). The routes send `HEAD` to their `GET` handler (so authentication,
//! validation and errors are the same); [`drop_head_bodies`] then replaces the body with
//! nothing while keeping its size, so `Content-Length` is what `GET` would send where
//! the size is known before sending. A streamed body (an export) is dropped unread,
//! which stops its work and gives its slot back.

use actix_web::Error;
use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The middleware: the answer to a `HEAD` request loses its body, and keeps its size.
pub async fn drop_head_bodies<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, HeadBody>>, Error> {
    let head = req.method() == Method::HEAD;
    let response = next.call(req).await?;
    if !head {
        return Ok(response.map_into_left_body());
    }
    Ok(response
        .map_body(|_, body| HeadBody(body.size()))
        .map_into_right_body())
}

/// No bytes, with the size of the body it replaces (the HTTP/1 encoder writes that
/// size as `Content-Length` and, for a `HEAD` request, no body).
pub struct HeadBody(BodySize);

impl MessageBody for HeadBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        self.0
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, HttpResponse, test, web};

    #[actix_web::test]
    async fn head_keeps_status_headers_and_size_and_drops_the_body() {
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(drop_head_bodies))
                .route(
                    "/",
                    web::route().to(|| async {
                        HttpResponse::Created()
                            .insert_header(("X-Kind", "json"))
                            .body("{\"a\": 1}")
                    }),
                ),
        )
        .await;
        let get = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(get.response().body().size(), BodySize::Sized(8));
        let head = test::call_service(
            &app,
            test::TestRequest::default()
                .method(Method::HEAD)
                .uri("/")
                .to_request(),
        )
        .await;
        assert_eq!(head.status(), 201);
        assert_eq!(head.headers().get("X-Kind").unwrap(), "json");
        assert_eq!(head.response().body().size(), BodySize::Sized(8));
        let body = test::read_body(head).await;
        assert!(body.is_empty());
    }
}
