//! The path normaliser (`src/proxy/target.rs`) on arbitrary request targets. Properties of
//! every target it accepts: it stays under Stripe's `/v1/` or `/v2/` on Stripe's host when
//! a WHATWG URL parser resolves it against the Stripe base (no dot segments, plain or
//! encoded, are left for it to remove); it contains no CR, LF, NUL or `#`; its path has
//! no `//` or `\` (the query is opaque and may carry `https://...` values); and its path
//! decoded once has no dot segment, no extra `/`, no `\`, no `%` (no double encoding) and
//! no control character.
#![no_main]

use agentgate::proxy::target::StripeTarget;
use libfuzzer_sys::fuzz_target;

const BASE: &str = "https://api.stripe.com";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (rest, query) = match text.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (text, None),
    };
    let Ok(target) = StripeTarget::parse(rest, query) else {
        return;
    };
    let whole = target.path_and_query().as_str();
    let path = target.path();
    assert!(
        path.starts_with("/v1/") || path.starts_with("/v2/"),
        "{whole:?}"
    );
    for bad in ["\r", "\n", "\0", "#"] {
        assert!(!whole.contains(bad), "{whole:?} contains {bad:?}");
    }
    // The query is opaque to path resolution: `?return_url=https://x` is a Stripe value.
    for bad in ["//", "\\"] {
        assert!(
            !path.contains(bad),
            "the path of {whole:?} contains {bad:?}"
        );
    }
    for segment in path.split('/').skip(1) {
        assert!(
            segment != "." && segment != "..",
            "{whole:?} has a dot segment"
        );
    }

    let decoded = percent_decode(path.as_bytes());
    assert_eq!(
        decoded.iter().filter(|&&b| b == b'/').count(),
        path.matches('/').count(),
        "{whole:?} hides an encoded slash"
    );
    for segment in decoded.split(|&b| b == b'/').skip(1) {
        assert!(
            segment != b"." && segment != b"..",
            "{whole:?} hides a dot segment"
        );
        assert!(!segment.is_empty(), "{whole:?} has an empty segment");
    }
    assert!(!decoded.contains(&b'\\'), "{whole:?} hides a backslash");
    assert!(!decoded.contains(&b'%'), "{whole:?} is double encoded");
    assert!(
        !decoded.iter().any(u8::is_ascii_control),
        "{whole:?} hides a control character"
    );

    let base = url::Url::parse(BASE).expect("the base parses");
    let resolved = base.join(whole).expect("an accepted target resolves");
    assert_eq!(resolved.scheme(), "https");
    assert_eq!(
        resolved.host_str(),
        Some("api.stripe.com"),
        "{whole:?} left the base"
    );
    assert_eq!(
        resolved.path(),
        path,
        "{whole:?} was read differently by a URL parser"
    );
    assert_eq!(resolved.fragment(), None);
});

/// One round of percent-decoding, as an upstream server would do.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' {
            if let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}
