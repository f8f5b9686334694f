//! The form decoder (`src/validation/form.rs`) on arbitrary bytes. Property: a tree it
//! decodes, written back in bracket notation, decodes to the same tree, so the tree is
//! a faithful reading of the pairs and validation sees what Stripe would.
#![no_main]

use std::borrow::Cow;

use agentgate::validation::form::{decode_into, Node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut root = Vec::new();
    if decode_into(data, &mut root).is_err() {
        return;
    }
    let mut pairs = Vec::new();
    for (name, node) in &root {
        encode(name.to_string(), node, &mut pairs);
    }
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let mut again = Vec::new();
    decode_into(encoded.as_bytes(), &mut again)
        .expect("a decoded tree re-encodes without conflict");
    assert_eq!(
        Node::Map(again),
        Node::Map(root),
        "re-encoded as {encoded:?}"
    );
});

/// The pairs that spell `node` under the key `key`.
fn encode<'a>(key: String, node: &'a Node<'a>, out: &mut Vec<(String, Cow<'a, str>)>) {
    match node {
        Node::Leaf(value) => out.push((key, value.clone())),
        Node::Map(entries) => {
            for (name, child) in entries {
                encode(format!("{key}[{name}]"), child, out);
            }
        }
        Node::List(items) => {
            for item in items {
                encode(format!("{key}[]"), item, out);
            }
        }
    }
}
