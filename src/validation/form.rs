//! Stripe's form encoding decoded into a tree: `a[b]=1`, `a[0][c]=2`, `expand[]=x`.
//!
//! The rules follow the Rack parser Stripe's API is known to share: a key is a name
//! followed by bracketed parts; `[]` appends to a list (`a[][k]` starts a new item when the
//! last one already has `k`); a repeated plain key keeps its last value; a key used both as
//! a value and as a container is a conflict the caller reports.

use std::borrow::Cow;
use std::ops::Range;

/// A decoded value: text, named parts, or a list built with `[]`.
#[derive(Debug, PartialEq)]
pub enum Node<'a> {
    /// `name=value`.
    Leaf(Cow<'a, str>),
    /// `name[key]=...`, keys in the order first seen (array indices stay text here).
    Map(Vec<(Cow<'a, str>, Node<'a>)>),
    /// `name[]=...`.
    List(Vec<Node<'a>>),
}

/// A key that was used both as a value and as a container, or both as a list and as a map.
#[derive(Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The key as sent, decoded (`address[city]`).
    pub key: String,
}

impl<'a> Node<'a> {
    /// The named part `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Map(entries) => entries
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, node)| node),
            _ => None,
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs (from a query string or a body) into
/// `root`, a map.
pub fn decode_into<'a>(
    input: &'a [u8],
    root: &mut Vec<(Cow<'a, str>, Node<'a>)>,
) -> Result<(), Conflict> {
    for (key, value) in pairs(input) {
        if key.is_empty() {
            continue;
        }
        insert(root, key, value).map_err(|key| Conflict { key })?;
    }
    Ok(())
}

/// The bytes the scan of a pair stops at: its end, its `=`, and what needs decoding. A
/// table lookup per byte, so the ordinary bytes between them cost little.
const STOPS: [bool; 256] = {
    let mut stops = [false; 256];
    stops[b'&' as usize] = true;
    stops[b'=' as usize] = true;
    stops[b'+' as usize] = true;
    stops[b'%' as usize] = true;
    stops
};

/// The pairs of `application/x-www-form-urlencoded` input, decoded exactly as
/// `form_urlencoded::parse` decodes them (pairs split at `&`, empty ones skipped, the key
/// ending at the first `=`, `+` a space, `%XX` a byte, invalid UTF-8 replaced).
pub(super) fn pairs(input: &[u8]) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    raw_pairs(input).map(|(key, value)| (key.decoded(), value.decoded()))
}

/// One key or value of a form pair as it was sent, decoded only when asked: a check that
/// needs no more than its length (most strings) never pays for the decoding.
#[derive(Clone, Copy)]
pub(super) struct Component<'a> {
    /// The bytes as sent.
    raw: &'a [u8],
    /// The same bytes as text, when they need no decoding: no `+` or `%`, in valid UTF-8.
    plain: Option<&'a str>,
}

impl<'a> Component<'a> {
    /// The text the component stands for; borrowed when it needs no decoding.
    pub(super) fn decoded(&self) -> Cow<'a, str> {
        match self.plain {
            Some(text) => Cow::Borrowed(text),
            None => Cow::Owned(decode_component(self.raw)),
        }
    }

    /// Whether it decodes to the empty text: only the empty component does, since every
    /// byte sent decodes to at least one character.
    pub(super) fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// At least as many as the characters it decodes to: each byte sent decodes to at most
    /// one (`%XX` three to one, `+` one to one, an invalid sequence to one replacement).
    pub(super) fn max_chars(&self) -> usize {
        self.raw.len()
    }
}

/// The pairs of form input as [`Component`]s. The input's UTF-8 is checked once, so a
/// component with no `+` or `%` (most parts of an SDK's request) is borrowed as it is.
pub(super) fn raw_pairs(input: &[u8]) -> impl Iterator<Item = (Component<'_>, Component<'_>)> {
    let text = std::str::from_utf8(input).ok();
    let component = move |range: Range<usize>, plain: bool| Component {
        // `&` and `=` are ASCII, so the range's ends are character boundaries.
        plain: text.filter(|_| plain).map(|text| &text[range.clone()]),
        raw: &input[range],
    };
    let mut start = 0;
    std::iter::from_fn(move || loop {
        if start >= input.len() {
            return None;
        }
        // One scan of the pair finds its end, its `=`, and whether either side needs
        // decoding.
        let mut equals = None;
        let mut plain = [true, true];
        let mut at = start;
        let end = loop {
            let Some(skipped) = input[at..].iter().position(|&b| STOPS[usize::from(b)]) else {
                break input.len();
            };
            at += skipped;
            match input[at] {
                b'&' => break at,
                b'=' if equals.is_none() => equals = Some(at),
                b'+' | b'%' => plain[usize::from(equals.is_some())] = false,
                _ => {}
            }
            at += 1;
        };
        let sequence = start..end;
        start = end + 1;
        if sequence.is_empty() {
            continue;
        }
        let (key, value) = match equals {
            Some(at) => (sequence.start..at, at + 1..end),
            None => (sequence, end..end),
        };
        return Some((component(key, plain[0]), component(value, plain[1])));
    })
}

/// One key or value of a form pair with `+` or `%` in it (or invalid UTF-8), decoded:
/// `+` is a space, `%` and two hex digits a byte, any other `%` stays as it is.
fn decode_component(raw: &[u8]) -> String {
    let hex = |at: usize| raw.get(at).and_then(|&b| char::from(b).to_digit(16));
    let mut bytes = Vec::with_capacity(raw.len());
    let mut at = 0;
    while at < raw.len() {
        match raw[at] {
            b'+' => bytes.push(b' '),
            b'%' => match (hex(at + 1), hex(at + 2)) {
                (Some(high), Some(low)) => {
                    bytes.extend(u8::try_from(high * 16 + low).ok());
                    at += 2;
                }
                _ => bytes.push(b'%'),
            },
            byte => bytes.push(byte),
        }
        at += 1;
    }
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(invalid) => String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
    }
}

/// Splits `a[b][]` into the byte range of `a` and its bracketed parts `b`, ``; a key
/// whose brackets do not close is one plain name (Stripe then reports it as unknown).
pub(super) fn split_key(key: &str) -> (Range<usize>, KeyParts<'_>) {
    let whole = (0..key.len(), KeyParts { key, at: key.len() });
    // Byte searches (keys are short, so a plain loop beats a vectorised search); the
    // brackets are ASCII, so their offsets are character boundaries.
    let Some(open) = position(key.as_bytes(), b'[').filter(|&open| open > 0) else {
        return whole;
    };
    let mut at = open;
    while at < key.len() {
        if key.as_bytes()[at] != b'[' {
            return whole;
        }
        let Some(close) = position(&key.as_bytes()[at..], b']') else {
            return whole;
        };
        at += close + 1;
    }
    (0..open, KeyParts { key, at: open })
}

/// The byte ranges of a key's bracketed parts, in order; made by [`split_key`], which has
/// checked that every bracket closes.
pub(super) struct KeyParts<'k> {
    key: &'k str,
    at: usize,
}

impl Iterator for KeyParts<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let rest = self
            .key
            .as_bytes()
            .get(self.at..)
            .filter(|rest| !rest.is_empty())?;
        let close = position(rest, b']')?;
        let part = self.at + 1..self.at + close;
        self.at += close + 1;
        Some(part)
    }
}

/// Where `byte` first occurs in `bytes`.
fn position(bytes: &[u8], byte: u8) -> Option<usize> {
    bytes.iter().position(|&b| b == byte)
}

/// Places one pair; the key comes back as the error when it conflicts with earlier pairs.
fn insert<'a>(
    root: &mut Vec<(Cow<'a, str>, Node<'a>)>,
    key: Cow<'a, str>,
    value: Cow<'a, str>,
) -> Result<(), String> {
    let (name, parts) = split_key(&key);
    // Parts borrow from the input where the key needed no percent-decoding.
    let piece = |range: Range<usize>| -> Cow<'a, str> {
        match &key {
            Cow::Borrowed(whole) => {
                let whole: &'a str = whole;
                Cow::Borrowed(&whole[range])
            }
            Cow::Owned(whole) => Cow::Owned(whole[range].to_owned()),
        }
    };
    let name = piece(name);
    let parts: Vec<Cow<'a, str>> = parts.map(piece).collect();
    let slot = map_slot(root, name, parts.first().map(|part| &**part));
    place(slot, &parts, value).map_err(|()| key.into_owned())
}

/// What a fresh slot holds, given the part that will go into it next.
fn empty_container<'a>(next: Option<&str>) -> Option<Node<'a>> {
    match next {
        None => None,
        Some("") => Some(Node::List(Vec::new())),
        Some(_) => Some(Node::Map(Vec::new())),
    }
}

/// The entry `name` of a map, created for the coming `next` part when missing.
fn map_slot<'m, 'a>(
    entries: &'m mut Vec<(Cow<'a, str>, Node<'a>)>,
    name: Cow<'a, str>,
    next: Option<&str>,
) -> &'m mut Node<'a> {
    let index = match entries.iter().position(|(existing, _)| *existing == name) {
        Some(index) => index,
        None => {
            let node = empty_container(next).unwrap_or(Node::Leaf(Cow::Borrowed("")));
            entries.push((name, node));
            entries.len() - 1
        }
    };
    &mut entries[index].1
}

fn place<'a>(node: &mut Node<'a>, parts: &[Cow<'a, str>], value: Cow<'a, str>) -> Result<(), ()> {
    let Some((part, rest)) = parts.split_first() else {
        return match node {
            Node::Leaf(existing) => {
                *existing = value;
                Ok(())
            }
            _ => Err(()),
        };
    };
    if part.is_empty() {
        let Node::List(items) = node else {
            return Err(());
        };
        let Some(child) = rest.first() else {
            items.push(Node::Leaf(value));
            return Ok(());
        };
        let starts_new_item = match items.last() {
            Some(Node::Map(entries)) => entries.iter().any(|(name, _)| name == child),
            Some(_) => return Err(()),
            None => true,
        };
        if starts_new_item {
            items.push(Node::Map(Vec::new()));
        }
        let last = items.last_mut().expect("an item was just ensured");
        place(last, rest, value)
    } else {
        let Node::Map(entries) = node else {
            return Err(());
        };
        let slot = map_slot(entries, part.clone(), rest.first().map(|part| &**part));
        place(slot, rest, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &str) -> Result<Node<'_>, Conflict> {
        let mut root = Vec::new();
        decode_into(input.as_bytes(), &mut root)?;
        Ok(Node::Map(root))
    }

    fn leaf(text: &str) -> Node<'_> {
        Node::Leaf(Cow::Borrowed(text))
    }

    #[test]
    fn pairs_decode_exactly_as_form_urlencoded_does() {
        let inputs: [&[u8]; 23] = [
            b"a=%2B&%2b=%+1",
            b"a=%4+&b=%%41",
            b"&a=1&",
            b"a=%e2%82%ac+%E2%82",
            b"\xff=%41",
            b"",
            b"&&",
            b"a=1&b=2",
            b"email=jenny%40example.com&name=Jenny+Rosen",
            b"metadata[order_id]=6735&expand[]=default_source",
            b"metadata%5Bk%5D=v%20w",
            b"a",
            b"a=",
            b"=v",
            b"a==b=c",
            b"a=%",
            b"a=%4",
            b"a=%zz&b=%4G",
            b"a=%C3%A9&b=\xc3\xa9",
            b"a=%FF%FE&b=\xff",
            b"a=+%2B+&+=+",
            b"a=1;b=2",
            b"x=\xe2\x82&y=\xe2\x82\xac",
        ];
        for input in inputs {
            let ours: Vec<(Cow<'_, str>, Cow<'_, str>)> = pairs(input).collect();
            let oracle: Vec<(Cow<'_, str>, Cow<'_, str>)> = form_urlencoded::parse(input).collect();
            assert_eq!(ours, oracle, "{:?}", String::from_utf8_lossy(input));
        }
    }

    proptest::proptest! {
        /// Any input made of the bytes the decoder treats specially (and some that are
        /// not UTF-8 on their own) decodes to `form_urlencoded`'s pairs.
        #[test]
        fn pairs_decode_as_form_urlencoded_does_on_any_input(
            input in proptest::collection::vec(
                proptest::sample::select(b"a=&+%2Bf[]\xc3\xa9\xff ".to_vec()),
                0..40,
            )
        ) {
            let ours: Vec<(Cow<'_, str>, Cow<'_, str>)> = pairs(&input).collect();
            let oracle: Vec<(Cow<'_, str>, Cow<'_, str>)> = form_urlencoded::parse(&input).collect();
            proptest::prop_assert_eq!(ours, oracle);
        }
    }

    #[test]
    fn plain_components_are_borrowed_and_encoded_ones_decoded() {
        let decoded: Vec<_> = pairs(b"email=jenny%40example.com&expand[]=customer").collect();
        assert!(
            matches!(decoded[0], (Cow::Borrowed("email"), Cow::Owned(ref v)) if v == "jenny@example.com")
        );
        assert!(matches!(
            decoded[1],
            (Cow::Borrowed("expand[]"), Cow::Borrowed("customer"))
        ));
    }

    #[test]
    fn nested_objects_arrays_and_lists_decode_into_a_tree() {
        let tree = decode(
            "amount=2000&metadata[order]=7&line_items[0][price]=price_1&line_items[0][quantity]=2\
             &line_items[1][price]=price_2&expand[]=customer&expand[]=invoice",
        )
        .unwrap();
        assert_eq!(tree.get("amount"), Some(&leaf("2000")));
        assert_eq!(tree.get("metadata").unwrap().get("order"), Some(&leaf("7")));
        let items = tree.get("line_items").unwrap();
        assert_eq!(items.get("0").unwrap().get("quantity"), Some(&leaf("2")));
        assert_eq!(items.get("1").unwrap().get("price"), Some(&leaf("price_2")));
        assert_eq!(
            tree.get("expand"),
            Some(&Node::List(vec![leaf("customer"), leaf("invoice")]))
        );
    }

    #[test]
    fn percent_encoded_brackets_and_plus_signs_decode() {
        let tree = decode("metadata%5Bnote%5D=a+b%21&description=").unwrap();
        let note = tree.get("metadata").unwrap().get("note").unwrap();
        assert_eq!(note, &Node::Leaf(Cow::Owned("a b!".into())));
        assert_eq!(tree.get("description"), Some(&leaf("")));
    }

    #[test]
    fn list_of_objects_starts_a_new_item_when_a_key_repeats() {
        let tree = decode("items[][price]=a&items[][quantity]=1&items[][price]=b").unwrap();
        let Some(Node::List(items)) = tree.get("items") else {
            panic!("a list");
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].get("quantity"), Some(&leaf("1")));
        assert_eq!(items[1].get("price"), Some(&leaf("b")));
    }

    #[test]
    fn repeated_plain_key_keeps_the_last_value() {
        let tree = decode("limit=3&limit=5").unwrap();
        assert_eq!(tree.get("limit"), Some(&leaf("5")));
    }

    #[test]
    fn a_key_used_as_value_and_container_is_a_conflict() {
        assert_eq!(
            decode("address=x&address[city]=Paris").unwrap_err().key,
            "address[city]"
        );
        assert_eq!(
            decode("address[city]=Paris&address=x").unwrap_err().key,
            "address"
        );
        assert!(decode("expand[]=a&expand[x]=b").is_err());
    }

    #[test]
    fn unclosed_brackets_stay_one_plain_name() {
        let tree = decode("a[b=1&c]d=2").unwrap();
        assert_eq!(tree.get("a[b"), Some(&leaf("1")));
        assert_eq!(tree.get("c]d"), Some(&leaf("2")));
    }
}
