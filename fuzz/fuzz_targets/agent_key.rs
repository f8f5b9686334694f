//! The agent-key parser (`src/keys/format.rs`). Properties: every key the formatter makes
//! parses to the SHA-256 of its text; one changed character is always refused; and any
//! text the parser accepts is exactly a key the formatter would make.
#![no_main]

use agentgate::ids::BASE62;
use agentgate::keys::format::{compose, parse, KEY_PREFIX};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const RANDOM_LEN: usize = 32;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(hash) = parse(text) {
            let random = &text[KEY_PREFIX.len()..KEY_PREFIX.len() + RANDOM_LEN];
            assert_eq!(
                compose(random).as_str(),
                text,
                "accepted a key the formatter would not make"
            );
            assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(text.as_bytes())));
        }
    }

    if data.len() < RANDOM_LEN + 2 {
        return;
    }
    let random: String = data[..RANDOM_LEN]
        .iter()
        .map(|b| char::from(BASE62[usize::from(*b) % BASE62.len()]))
        .collect();
    let key = compose(&random);
    let hash = parse(&key).expect("a formatted key parses");
    assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(key.as_bytes())));

    // One character, anywhere after the prefix, replaced by another of the alphabet.
    let at = KEY_PREFIX.len() + usize::from(data[RANDOM_LEN]) % (key.len() - KEY_PREFIX.len());
    let old = key.as_bytes()[at];
    let new = BASE62[usize::from(data[RANDOM_LEN + 1]) % BASE62.len()];
    if old != new {
        let mut changed = key.as_bytes().to_vec();
        changed[at] = new;
        let changed = String::from_utf8(changed).expect("base62 is ASCII");
        assert!(
            parse(&changed).is_err(),
            "a one-character change was accepted"
        );
    }
});
