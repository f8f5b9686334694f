//! The `Stripe-Signature` parser and verifier (`src/webhooks/signature.rs`). The input is
//! text lines: a header, the payload, secrets separated by spaces, and `NOW TOLERANCE`.
//! Properties: a header is accepted only when one of its `v1` values is the signature of
//! the payload at its first `t` under one of the secrets, within the tolerance; a header
//! signed with a secret is accepted whatever other pairs surround it, unless outside the
//! tolerance; one changed hex digit is refused.
#![no_main]

use std::time::Duration;

use agentgate::webhooks::signature::{sign, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(4, |&b| b == b'\n');
    let header = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let payload = lines.next().unwrap_or_default();
    let secrets: Vec<&[u8]> = lines
        .next()
        .unwrap_or_default()
        .split(|&b| b == b' ')
        .take(3)
        .collect();
    let numbers = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut numbers = numbers.split_whitespace().map(|n| n.parse::<i64>().ok());
    let now = numbers.next().flatten().unwrap_or(1_700_000_000);
    let tolerance_secs = numbers.next().flatten().unwrap_or(300).clamp(0, 1 << 40) as u64;
    let tolerance = Duration::from_secs(tolerance_secs);

    if let Ok(timestamp) = verify(Some(&header), payload, &secrets, now, tolerance) {
        assert_eq!(first_t(&header), Some(timestamp));
        assert!(timestamp.abs_diff(now) <= tolerance_secs);
        let signed = secrets.iter().any(|secret| {
            let expected = sign(secret, timestamp, payload);
            header
                .split(',')
                .any(|pair| pair.trim().strip_prefix("v1=") == Some(expected.as_str()))
        });
        assert!(signed, "accepted a header whose signature does not verify");
    }

    // The header's other pairs around a signature made here.
    let timestamp = first_t(&header).unwrap_or(now);
    let noise: Vec<&str> = header
        .split(',')
        .filter(|pair| !pair.trim().starts_with("t=") && !pair.trim().starts_with("v1="))
        .collect();
    let signed_header = |v1: &str| {
        let mut pairs = vec![format!("t={timestamp}")];
        pairs.extend(noise.iter().map(|pair| pair.to_string()));
        pairs.push(format!("v1={v1}"));
        pairs.join(",")
    };
    let Some(secret) = secrets.first() else {
        return;
    };
    let signature = sign(secret, timestamp, payload);
    let result = verify(
        Some(&signed_header(&signature)),
        payload,
        &secrets,
        now,
        tolerance,
    );
    if timestamp.abs_diff(now) <= tolerance_secs {
        assert_eq!(
            result,
            Ok(timestamp),
            "a correctly signed header was refused"
        );
    } else {
        assert!(
            result.is_err(),
            "a header outside the tolerance was accepted"
        );
    }

    let mut flipped = signature.into_bytes();
    let at = payload.len() % flipped.len();
    flipped[at] = if flipped[at] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("hex is ASCII");
    assert!(
        verify(
            Some(&signed_header(&flipped)),
            payload,
            &secrets,
            now,
            tolerance
        )
        .is_err(),
        "a changed signature was accepted"
    );
});

/// The value of the first `t=` pair, as Stripe's SDKs read it.
fn first_t(header: &str) -> Option<i64> {
    header
        .split(',')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == "t")
        .and_then(|(_, value)| value.parse().ok())
}
