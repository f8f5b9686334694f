//! Masks the connection's Stripe key in what Stripe sends back before it reaches the agent:
//! a header or an error may echo the key it was sent (a misconfigured double, a proxy in
//! front of Stripe, a future error message), and the agent must never learn it. Header
//! values are checked on every answer ([`find_key`]); error bodies stream through
//! [`MaskedBody`], which holds back only the last `key length - 1` bytes between chunks, so
//! a key split across chunks is still found, and nothing is buffered beyond that.

use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use memchr::memmem::Finder;

/// The forms a stored key starts with (`connections set` accepts no other). They are not
/// secret, so searchers for them can be built once and kept.
static KEY_FORMS: LazyLock<[Finder<'static>; 4]> =
    LazyLock::new(|| [b"sk_test_", b"sk_live_", b"rk_test_", b"rk_live_"].map(Finder::new));

pin_project_lite::pin_project! {
    /// A response body with every occurrence of `secret` replaced by `replacement`.
    pub struct MaskedBody<B> {
        #[pin]
        inner: B,
        secret: Bytes,
        replacement: Bytes,
        held: BytesMut,
        finished: bool,
    }
}

impl<B> MaskedBody<B> {
    /// Wraps `inner`; `secret` must not be empty and `replacement` must not contain it.
    pub fn new(inner: B, secret: Bytes, replacement: Bytes) -> Self {
        Self {
            inner,
            secret,
            replacement,
            held: BytesMut::new(),
            finished: false,
        }
    }
}

/// Replaces every whole occurrence of `secret` in `data`.
pub fn replace_all(data: &[u8], secret: &[u8], replacement: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = find_key(rest, secret) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(replacement);
        rest = &rest[at + secret.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Where `secret` first occurs in `haystack`. A key's form prefix is searched with a kept
/// searcher and each hit compared whole, so no searcher holds a copy of the key (only the
/// zeroized `Authorization` value does) and none is built per call.
pub fn find_key(haystack: &[u8], secret: &[u8]) -> Option<usize> {
    if secret.is_empty() || haystack.len() < secret.len() {
        return None;
    }
    let Some(form) = KEY_FORMS
        .iter()
        .find(|form| secret.starts_with(form.needle()))
    else {
        return haystack.windows(secret.len()).position(|w| w == secret);
    };
    let mut from = 0;
    while let Some(at) = form.find(&haystack[from..]) {
        let start = from + at;
        if haystack[start..].starts_with(secret) {
            return Some(start);
        }
        from = start + 1;
    }
    None
}

impl<B> HttpBody for MaskedBody<B>
where
    B: HttpBody<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            if *this.finished {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry no body bytes; Stripe sends none, so they are dropped.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    this.held.extend_from_slice(&data);
                    let mut masked = replace_all(this.held, this.secret, this.replacement);
                    // A key may start in the last `len - 1` bytes and end in the next chunk.
                    let keep = (this.secret.len() - 1).min(masked.len());
                    *this.held = masked.split_off(masked.len() - keep);
                    if !masked.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(masked.freeze()))));
                    }
                }
                Poll::Ready(None) => {
                    *this.finished = true;
                    if this.held.is_empty() {
                        return Poll::Ready(None);
                    }
                    let rest = std::mem::take(this.held).freeze();
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    async fn masked(chunks: &[&[u8]], secret: &str) -> Vec<u8> {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let body = MaskedBody::new(
            StreamBody::new(futures_util::stream::iter(frames)),
            Bytes::copy_from_slice(secret.as_bytes()),
            Bytes::from_static(b"sk_test_***"),
        );
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn a_key_is_masked_wherever_the_chunks_split_it() {
        let secret = "sk_test_abcdefghij";
        let text = format!("{{\"message\":\"bad key {secret} and {secret}\"}}");
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            for second in split..=bytes.len() {
                let out = masked(
                    &[&bytes[..split], &bytes[split..second], &bytes[second..]],
                    secret,
                )
                .await;
                let out = String::from_utf8(out).unwrap();
                assert!(!out.contains(secret), "{split}/{second}: {out}");
                assert_eq!(out, text.replace(secret, "sk_test_***"));
            }
        }
    }

    #[test]
    fn a_key_is_found_after_lookalikes_and_in_any_form() {
        let secret = b"rk_live_abcdefghij";
        assert_eq!(
            find_key(b"rk_live_abc rk_live_abcdefghij", secret),
            Some(12)
        );
        assert_eq!(find_key(b"rk_live_abcdefghi", secret), None);
        assert_eq!(
            find_key(b"x: other_abcdefghij", b"other_abcdefghij"),
            Some(3)
        );
        assert_eq!(
            replace_all(b"a sk_test_k1 b sk_test_k1", b"sk_test_k1", b"***").as_ref(),
            b"a *** b ***"
        );
    }

    #[tokio::test]
    async fn a_body_without_the_key_passes_unchanged() {
        let out = masked(&[b"{\"error\":", b"{}}"], "sk_test_abcdefghij").await;
        assert_eq!(out, b"{\"error\":{}}");
    }
}
