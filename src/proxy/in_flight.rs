//! A bound on requests waiting for Stripe at once, across all workers. A slow or stalled
//! Stripe would otherwise collect every request the agents send, each with its sockets and
//! buffers, until memory or file descriptors run out. Past the bound a request is refused at
//! once with 503 and `Retry-After`, before anything is sent; a slot is held until Stripe's
//! response body has been passed on completely (or the exchange failed).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Seconds a refused request is told to wait.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The slots for requests in flight to Stripe.
pub struct UpstreamSlots {
    slots: Option<Arc<Semaphore>>,
}

impl UpstreamSlots {
    /// At most `max` requests in flight (`0`: no bound).
    pub fn new(max: usize) -> Self {
        Self {
            slots: (max > 0).then(|| Arc::new(Semaphore::new(max))),
        }
    }

    /// A slot, or `None` when every slot is taken. Without a bound, always a (dummy) slot.
    pub fn try_take(&self) -> Option<Slot> {
        match &self.slots {
            None => Some(Slot { _permit: None }),
            Some(slots) => slots.clone().try_acquire_owned().ok().map(|permit| Slot {
                _permit: Some(permit),
            }),
        }
    }
}

/// A taken slot; given back when dropped.
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
}

pin_project_lite::pin_project! {
    /// A response body that holds its request's slot until it ends or is dropped.
    pub struct SlotBody<B> {
        #[pin]
        inner: B,
        slot: Option<Slot>,
    }
}

impl<B> SlotBody<B> {
    /// Holds `slot` for as long as `inner` streams.
    pub fn new(inner: B, slot: Slot) -> Self {
        Self {
            inner,
            slot: Some(slot),
        }
    }
}

impl<B: HttpBody<Data = Bytes>> HttpBody for SlotBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.slot.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
