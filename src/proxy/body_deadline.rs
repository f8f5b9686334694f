//! A body with a deadline: past it, the stream fails instead of waiting on. Two bodies get
//! one. Stripe's response body carries what is left of its exchange's timeout, so the
//! caller's connection is aborted and a cut body never looks complete. A request body on
//! the routes outside the data plane (the dashboard's forms, webhook ingest, the management
//! API, MCP) must arrive within the upstream timeout, as the data plane's bodies must:
//! without it, a client that sent a head and then trickled or withheld the body held a
//! connection for as long as it liked.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use tower::BoxError;

/// The error a body ends with when its deadline passes; names the body.
#[derive(Debug, thiserror::Error)]
#[error("{0} did not complete before its deadline")]
pub struct DeadlinePassed(&'static str);

pin_project_lite::pin_project! {
    /// `inner`, failing with [`DeadlinePassed`] once `timer` fires.
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        timer: Pin<Box<Sleep>>,
        what: &'static str,
    }
}

impl<B> DeadlineBody<B> {
    /// `inner`, ended by `timer` (one already running, such as an exchange's); `what` names
    /// the body in the error.
    pub fn new(inner: B, timer: Pin<Box<Sleep>>, what: &'static str) -> Self {
        Self { inner, timer, what }
    }

    /// `inner`, ended `limit` from now.
    pub fn within(inner: B, limit: Duration, what: &'static str) -> Self {
        Self::new(inner, Box::pin(tokio::time::sleep(limit)), what)
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(DeadlinePassed(this.what).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_fails_at_the_deadline() {
        let never = StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, std::convert::Infallible>,
        >());
        let body = DeadlineBody::within(never, Duration::from_secs(30), "the body");
        let Err(error) = body.collect().await else {
            panic!("a body that never ends must fail");
        };
        assert!(error.is::<DeadlinePassed>(), "{error}");
        assert_eq!(
            error.to_string(),
            "the body did not complete before its deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_arrives_in_time_is_whole() {
        let whole = Full::new(Bytes::from_static(b"a=1"));
        let body = DeadlineBody::within(whole, Duration::from_secs(30), "the body");
        assert!(!body.is_end_stream());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "a=1");
    }
}
