//! The agentgate key format: `agk_` + 32 random base62 characters (190 bits) + a 6-character
//! base62 CRC32 checksum, in the manner of GitHub's tokens. A scanner tells a real key from
//! noise without a lookup, and a mistyped key is refused before the database is asked.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::ids::{random_base62, BASE62};

/// Every agentgate key starts with this, so secret scanners and people recognise it.
pub const KEY_PREFIX: &str = "agk_";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const KEY_LEN: usize = KEY_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// Characters of the random part shown in listings.
const SHOWN_LEN: usize = 6;

/// SHA-256 of a whole key: what the store keeps and the cache is keyed by.
pub type KeyHash = [u8; 32];

/// A newly minted key. The text is shown once and then dropped (zeroized).
pub struct GeneratedKey {
    /// The full key, to hand to the agent.
    pub text: Zeroizing<String>,
    /// Its hash, to store.
    pub hash: KeyHash,
    /// Its recognisable start, to list (`agk_Ab3dE9`).
    pub prefix: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeneratedKey({}…)", self.prefix)
    }
}

/// Why a presented key was refused before any lookup.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Wrong prefix, length or alphabet.
    #[error("not an agentgate key")]
    Malformed,
    /// Well formed, but the checksum does not match (a typo or a guess).
    #[error("agentgate key checksum mismatch")]
    BadChecksum,
}

/// Mints a new random key.
pub fn generate() -> GeneratedKey {
    let text = compose(&random_base62(RANDOM_LEN));
    GeneratedKey {
        hash: hash(&text),
        prefix: text[..KEY_PREFIX.len() + SHOWN_LEN].to_owned(),
        text,
    }
}

/// The key made of the prefix, `random` (32 base62 characters) and its checksum. Public so
/// the fuzz target (`fuzz/fuzz_targets/agent_key.rs`) can check that [`parse`] accepts
/// exactly the keys made here.
pub fn compose(random: &str) -> Zeroizing<String> {
    let body = format!("{KEY_PREFIX}{random}");
    let sum = checksum(&body);
    Zeroizing::new(format!("{body}{}", String::from_utf8_lossy(&sum)))
}

/// Checks the form and checksum of a presented key and returns its hash.
pub fn parse(text: &str) -> Result<KeyHash, KeyFormatError> {
    let well_formed = text.len() == KEY_LEN
        && text.starts_with(KEY_PREFIX)
        && text[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Err(KeyFormatError::Malformed);
    }
    let (body, sum) = text.split_at(KEY_LEN - CHECKSUM_LEN);
    if checksum(body) != sum.as_bytes() {
        return Err(KeyFormatError::BadChecksum);
    }
    Ok(hash(text))
}

fn hash(text: &str) -> KeyHash {
    Sha256::digest(text.as_bytes()).into()
}

/// CRC32 of the key body in base62 digits, left-padded to six (checked on every request,
/// so it stays on the stack).
fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut value = u64::from(crc32fast::hash(body.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_to_its_hash() {
        let key = generate();
        assert_eq!(key.text.len(), KEY_LEN);
        assert!(key.text.starts_with(&key.prefix));
        assert_eq!(parse(&key.text), Ok(key.hash));
    }

    #[test]
    fn one_changed_character_fails_the_checksum() {
        let key = generate();
        let mut text = key.text.to_string();
        let i = KEY_PREFIX.len() + 3;
        let replacement = if &text[i..=i] == "a" { "b" } else { "a" };
        text.replace_range(i..=i, replacement);
        assert_eq!(parse(&text), Err(KeyFormatError::BadChecksum));
    }

    #[test]
    fn wrong_prefix_length_or_alphabet_is_malformed() {
        let key = generate();
        for bad in [
            String::new(),
            key.text.replacen("agk_", "sk_", 1),
            format!("{}x", key.text.as_str()),
            key.text.replace(&key.text[10..11], "é"),
            "agk_".repeat(3000),
        ] {
            assert_eq!(parse(&bad), Err(KeyFormatError::Malformed), "{bad:.20}");
        }
    }

    #[test]
    fn debug_shows_only_the_prefix() {
        let key = generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(key.text.as_str()));
    }
}
