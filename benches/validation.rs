//! What the validation phase costs per request: matching the path to a listed operation,
//! then checking the form body against the embedded catalog, as the proxy does (the
//! one-pass check, with the tree where it cannot decide) and through the tree alone (as
//! when a guardrail needs the decoded parameters).

use std::sync::Arc;

use agentgate::catalog::{Catalog, CatalogIndex};
use agentgate::validation::{check, decode, validate};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use http::Method;

/// `customers.create` as an agent typically sends it.
fn customer_body() -> String {
    form(&[
        ("email", "jenny.rosen@example.com"),
        ("name", "Jenny Rosen"),
        ("description", "Customer for order #1234 & co."),
        ("metadata[order_id]", "6735"),
        ("metadata[source]", "agent"),
        ("address[line1]", "510 Townsend St"),
        ("address[city]", "San Francisco"),
        ("address[postal_code]", "94103"),
        ("address[country]", "US"),
        ("expand[]", "tax"),
    ])
}

/// `payment_intents.create` as an agent typically sends it.
fn payment_intent_body() -> String {
    form(&[
        ("amount", "2000"),
        ("currency", "usd"),
        ("customer", "cus_NffrFeUfNV2Hib"),
        ("description", "Order #1234"),
        ("metadata[order_id]", "6735"),
        ("automatic_payment_methods[enabled]", "true"),
    ])
}

/// A large `checkout.sessions.create`: 20 line items with inline prices.
fn checkout_session_body() -> String {
    let mut pairs = Vec::new();
    for item in 0..20 {
        let key = |part: &str| format!("line_items[{item}]{part}");
        pairs.push((key("[price_data][currency]"), "eur".to_owned()));
        pairs.push((
            key("[price_data][unit_amount]"),
            (500 + item * 25).to_string(),
        ));
        pairs.push((
            key("[price_data][product_data][name]"),
            format!("Item nº {item}"),
        ));
        pairs.push((key("[quantity]"), (1 + item % 3).to_string()));
    }
    pairs.push(("mode".to_owned(), "payment".to_owned()));
    pairs.push((
        "success_url".to_owned(),
        "https://example.com/success?session_id={CHECKOUT_SESSION_ID}".to_owned(),
    ));
    pairs.push(("metadata[cart_id]".to_owned(), "cart_8812".to_owned()));
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.extend_pairs(&pairs);
    body.finish()
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A way through the validation phase.
type Phase = fn(&CatalogIndex, &str, &[u8]);

/// One POST through the validation phase, as the proxy runs it.
fn match_check(index: &CatalogIndex, path: &str, body: &[u8]) {
    let matched = index.find(&Method::POST, path).expect("a listed operation");
    check(matched.operation, &matched.path_args, None, Some(body)).expect("a valid request");
}

/// One POST through the tree: decoded, then validated.
fn match_decode_validate(index: &CatalogIndex, path: &str, body: &[u8]) {
    let matched = index.find(&Method::POST, path).expect("a listed operation");
    let params = decode(None, Some(body)).expect("decodes");
    validate(matched.operation, &matched.path_args, &params).expect("a valid request");
}

fn validation(c: &mut Criterion) {
    let index = CatalogIndex::new(Arc::new(Catalog::embedded()));
    let cases = [
        (
            "customers.create typical, 10 params",
            "/v1/customers",
            customer_body(),
        ),
        (
            "payment_intents.create typical, 6 params",
            "/v1/payment_intents",
            payment_intent_body(),
        ),
        (
            "checkout.sessions.create, 20 line_items, 83 params",
            "/v1/checkout/sessions",
            checkout_session_body(),
        ),
    ];
    let runs: [(&str, Phase); 2] = [
        ("match + check per request", match_check),
        (
            "match + decode + validate per request",
            match_decode_validate,
        ),
    ];
    for (group_name, run) in runs {
        let mut group = c.benchmark_group(group_name);
        for (name, path, body) in &cases {
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_function(*name, |b| {
                b.iter(|| run(&index, black_box(path), black_box(body.as_bytes())))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, validation);
criterion_main!(benches);
