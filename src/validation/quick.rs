//! The one-pass check: each pair of the query and the body is followed down the operation's
//! schema and its value checked where it lands, without building the parameter tree. It
//! allocates only for percent-encoded keys and values and for nested objects with required
//! fields, where the tree allocates for every container and every bracketed key.
//!
//! It only ever accepts. A request it cannot decide alone (one it would refuse, or one
//! whose answer depends on pairs taken together) is left to the tree ([`super::decode`]
//! and [`super::validate`]), which gives the answer and words any refusal. So the one
//! property that matters is: whatever this accepts, the tree accepts. Taken together pairs
//! matter where the tree would see a conflict, a missing field, or a choice between
//! shapes, so this leaves to the tree:
//! - a value sent where the schema has an object, a map or a list (only the empty string
//!   passes there, and it conflicts with parts sent for the same name);
//! - a list sent both with `[]` and with numbered items (the same list schema met both
//!   ways anywhere in the request, which catches every conflict and a few harmless cases);
//! - `a[][k]`, whose items the tree groups by which keys repeat;
//! - parts under an anyOf (the tree needs one alternative that accepts all of them);
//! - what is past its fixed limits: an operation with more than [`MAX_TOP_FIELDS`]
//!   top-level fields, more than [`MAX_LISTS`] lists, more than [`MAX_OBJECTS`] nested
//!   objects with required fields.
//!
//! Nested objects with required fields are tracked by their decoded key, which is how the
//! tree tells them apart (`line_items[0]` and `line_items[00]` are two items to it).
//!
//! Repeated keys need no care: the tree keeps the last value of a plain key, and this
//! checks every value, so when all pass the last one does.

use crate::catalog::{Field, Kind, Operation, Schema};

use super::form::{raw_pairs, split_key, Component};
use super::{check_empty, check_path_args, check_text, field_index, ParamPath};

/// Top-level fields an operation may have for the one-pass check to track which required
/// ones were sent.
const MAX_TOP_FIELDS: usize = 256;
/// List schemas whose addressing (`[]` or numbered) the check remembers; a request with
/// more lists is left to the tree.
const MAX_LISTS: usize = 8;
/// Nested objects with required fields the check tracks; a request with more is left to
/// the tree.
const MAX_OBJECTS: usize = 64;

/// Whether the request is one the tree would accept, decided in one pass; `false` means
/// "ask the tree", not "refused".
pub(super) fn accepts(
    operation: &Operation,
    path_args: &[&str],
    query: Option<&str>,
    body: Option<&[u8]>,
) -> bool {
    if operation.params.len() > MAX_TOP_FIELDS || check_path_args(operation, path_args).is_err() {
        return false;
    }
    let mut walk = Walk::default();
    for source in [query.map(str::as_bytes), body].into_iter().flatten() {
        for (key, value) in raw_pairs(source) {
            let key = key.decoded();
            if !key.is_empty() && !walk.accepts_pair(&operation.params, &key, value) {
                return false;
            }
        }
    }
    let top_complete = (operation.params.iter().enumerate())
        .all(|(index, field)| !field.required || walk.sent(index));
    top_complete && walk.objects_complete()
}

/// Where a value landed, which decides how an empty value is judged (as the tree does).
#[derive(Clone, Copy)]
enum Place {
    /// A field of an object: empty is refused when the field is required and not emptyable.
    Field { required: bool },
    /// A map's value: empty removes the key, whatever the values' type.
    MapValue,
    /// A list item, sent with `[]` or numbered.
    Item,
}

/// What the pass remembers across pairs.
#[derive(Default)]
struct Walk<'c> {
    /// The top-level fields sent, by their index in the operation's sorted fields.
    sent: [u64; MAX_TOP_FIELDS / 64],
    /// List schemas met so far, and whether with `[]` (else numbered).
    lists: [Option<(&'c Schema, bool)>; MAX_LISTS],
    /// Nested objects with required fields, as sent.
    objects: Vec<SentObject<'c>>,
}

/// A nested object with required fields, as the tree would build it from the pairs.
struct SentObject<'c> {
    /// Its key as decoded (`line_items[0][price_data]`): the tree's identity of the object.
    key: String,
    /// Its fields, sorted by name.
    fields: &'c [Field],
    /// Which of its first 64 fields were sent, by index.
    sent: u64,
}

impl<'c> Walk<'c> {
    fn sent(&self, index: usize) -> bool {
        self.sent[index / 64] & (1 << (index % 64)) != 0
    }

    /// Follows one pair down the schema and checks its value where it lands.
    fn accepts_pair(&mut self, fields: &'c [Field], key: &str, value: Component<'_>) -> bool {
        let (name, parts) = split_key(key);
        let Some(index) = field_index(fields, &key[name]) else {
            return false;
        };
        self.sent[index / 64] |= 1 << (index % 64);
        let field = &fields[index];
        let mut schema = &field.schema;
        let mut place = Place::Field {
            required: field.required,
        };
        let mut after_append = false;
        for part in parts {
            if after_append {
                return false;
            }
            (schema, place) = match &schema.kind {
                Kind::Object { fields } => {
                    let Some(index) = field_index(fields, &key[part.clone()]) else {
                        return false;
                    };
                    // The object is the key up to the `[` that opens this part.
                    if !self.object_field_sent(&key[..part.start - 1], fields, index) {
                        return false;
                    }
                    let field = &fields[index];
                    (
                        &field.schema,
                        Place::Field {
                            required: field.required,
                        },
                    )
                }
                Kind::Map { values } if !part.is_empty() => (&**values, Place::MapValue),
                Kind::Array { items } => {
                    after_append = part.is_empty();
                    if !(after_append || is_index(&key[part]))
                        || !self.addressed(schema, after_append)
                    {
                        return false;
                    }
                    (&**items, Place::Item)
                }
                _ => return false,
            };
        }
        if matches!(
            schema.kind,
            Kind::Object { .. } | Kind::Map { .. } | Kind::Array { .. }
        ) {
            return false;
        }
        let path = ParamPath::default();
        match (value.is_empty(), place) {
            (false, _) => accepts_value(schema, value),
            (true, Place::Field { required }) => check_empty(schema, required, &path).is_ok(),
            (true, Place::MapValue) => true,
            (true, Place::Item) => check_empty(schema, false, &path).is_ok(),
        }
    }

    /// Records that the field at `index` of the nested object sent as `key` was sent, when
    /// the object has required fields to check at the end; false when the pass cannot
    /// keep track (too many such objects).
    fn object_field_sent(&mut self, key: &str, fields: &'c [Field], index: usize) -> bool {
        if !fields.iter().any(|field| field.required) {
            return true;
        }
        let bit = 1u64
            .checked_shl(u32::try_from(index).unwrap_or(u32::MAX))
            .unwrap_or(0);
        // Newest first: an object's fields are usually sent together.
        if let Some(object) = (self.objects.iter_mut().rev())
            .find(|object| std::ptr::eq(object.fields, fields) && object.key == key)
        {
            object.sent |= bit;
            return true;
        }
        if self.objects.len() == MAX_OBJECTS {
            return false;
        }
        self.objects.push(SentObject {
            key: key.to_owned(),
            fields,
            sent: bit,
        });
        true
    }

    /// Whether every nested object sent has its required fields.
    fn objects_complete(&self) -> bool {
        self.objects.iter().all(|object| {
            (object.fields.iter().enumerate()).all(|(index, field)| {
                !field.required || index < 64 && object.sent & (1 << index) != 0
            })
        })
    }

    /// Records that the list `schema` was addressed with `[]` (`appended`) or by number;
    /// false when it was met the other way before, or too many lists were met.
    fn addressed(&mut self, schema: &'c Schema, appended: bool) -> bool {
        for slot in &mut self.lists {
            match slot {
                Some((seen, how)) if std::ptr::eq(*seen, schema) => return *how == appended,
                Some(_) => {}
                None => {
                    *slot = Some((schema, appended));
                    return true;
                }
            }
        }
        false
    }
}

/// Whether a value sent is one `schema` takes, as [`check_text`] judges it. A string no
/// longer as sent than its limit is within it however it decodes, so it is not decoded.
fn accepts_value(schema: &Schema, value: Component<'_>) -> bool {
    match &schema.kind {
        Kind::String {
            max_length: None, ..
        } => true,
        Kind::String {
            max_length: Some(max),
            ..
        } if value.max_chars() <= *max as usize => true,
        _ => check_text(schema, &value.decoded(), &ParamPath::default()).is_ok(),
    }
}

/// A numbered item, as the tree reads one: digits only, within `u32`.
fn is_index(part: &str) -> bool {
    part.bytes().all(|b| b.is_ascii_digit()) && part.parse::<u32>().is_ok()
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;
    use crate::catalog::Catalog;
    use crate::validation::{decode, validate};

    static CATALOG: LazyLock<Catalog> = LazyLock::new(Catalog::embedded);

    /// The one-pass verdict on `form` for `id` (its query for a GET, else its body), and
    /// the tree's, which must accept whatever the one pass accepts.
    fn verdicts(id: &str, form: &str) -> (bool, bool) {
        let operation = CATALOG.operation(id).expect("a listed operation");
        let args: Vec<&str> = operation.path_params.iter().map(|_| "cus_1").collect();
        let (query, body) = match operation.method.as_str() {
            "GET" => (Some(form), None),
            _ => (None, Some(form.as_bytes())),
        };
        let quick = accepts(operation, &args, query, body);
        let tree = decode(query, body).and_then(|params| validate(operation, &args, &params));
        assert!(
            !quick || tree.is_ok(),
            "{id}: one pass accepted what the tree refuses: {tree:?}"
        );
        (quick, tree.is_ok())
    }

    #[test]
    fn an_sdk_create_is_accepted_in_one_pass_in_either_bracket_spelling() {
        let body = "email=jennyrosen%40example.com&name=Jenny+Rosen&description=bench\
                    &metadata[order_id]=6735&metadata[source]=wrk&expand[]=default_source";
        assert_eq!(verdicts("customers.create", body), (true, true));
        let escaped = body.replace('[', "%5B").replace(']', "%5D");
        assert_eq!(verdicts("customers.create", &escaped), (true, true));
    }

    #[test]
    fn numbered_items_nested_objects_and_queries_are_accepted_in_one_pass() {
        let body = "mode=payment&success_url=https%3A%2F%2Fexample.com\
                    &line_items[0][price]=price_1&line_items[0][quantity]=2\
                    &line_items[1][price]=price_2&line_items[1][quantity]=1";
        assert_eq!(verdicts("checkout.sessions.create", body), (true, true));
        let query = "limit=3&customer=cus_1&expand[]=data.customer";
        assert_eq!(verdicts("payment_intents.list", query), (true, true));
        assert_eq!(
            verdicts("payment_intents.create", "amount=2000&currency=usd"),
            (true, true)
        );
    }

    #[test]
    fn what_the_tree_refuses_is_left_to_the_tree() {
        for (id, body) in [
            ("customers.create", "bogus=1"),
            ("payment_intents.create", "amount=&currency=usd"),
            ("customers.create", "metadata[k][deeper]=1"),
            ("customers.create", "name=x&name[first]=y"),
            ("customers.create", "expand=default_source"),
            ("payment_intents.create", "amount=2000"),
            ("payment_intents.create", "amount=20.5&currency=usd"),
            ("prices.create", "currency=usd&billing_scheme=sometimes"),
            ("payment_intents.list", "limit=many"),
        ] {
            assert_eq!(verdicts(id, body), (false, false), "{id} {body}");
        }
    }

    #[test]
    fn pairs_that_conflict_only_together_are_left_to_the_tree() {
        for body in [
            // An emptied map, then one of its keys.
            "metadata=&metadata[k]=v",
            // The same list appended to and numbered.
            "expand[]=a&expand[0]=b",
            "expand[0]=b&expand[]=a",
        ] {
            assert_eq!(verdicts("customers.create", body), (false, false), "{body}");
        }
    }

    #[test]
    fn shapes_the_one_pass_does_not_follow_are_decided_by_the_tree() {
        // An anyOf with parts, items grouped by their repeated keys: accepted by the tree,
        // not in one pass.
        for (id, body) in [
            ("payment_intents.list", "created[gte]=1"),
            (
                "checkout.sessions.create",
                "line_items[][price]=p&line_items[][price]=q",
            ),
        ] {
            assert_eq!(verdicts(id, body), (false, true), "{id} {body}");
        }
    }

    #[test]
    fn each_nested_object_sent_must_have_its_required_fields() {
        let cases = [
            ("currency=usd&recurring[interval]=month", (true, true)),
            ("currency=usd&recurring[interval_count]=1", (false, false)),
            ("currency=usd&recurring[interval]=", (false, false)),
        ];
        for (body, verdict) in cases {
            assert_eq!(verdicts("prices.create", body), verdict, "{body}");
        }
        let both = "mode=payment&line_items[0][price_data][currency]=eur\
                    &line_items[0][price_data][unit_amount]=5&line_items[0][quantity]=1\
                    &line_items[1][price_data][product]=prod_1\
                    &line_items[1][price_data][currency]=eur&line_items[1][quantity]=1";
        assert_eq!(verdicts("checkout.sessions.create", both), (true, true));
        // The second item's prices lack the currency the first item's have.
        let second = both.replace(
            "line_items[1][price_data][currency]",
            "line_items[1][price_data][unit_amount]",
        );
        assert_eq!(
            verdicts("checkout.sessions.create", &second),
            (false, false)
        );
        // `01` is an item of its own to the tree, so the currency sent for it is not the
        // second item's.
        let renumbered = both.replace(
            "line_items[1][price_data][currency]",
            "line_items[01][price_data][currency]",
        );
        assert_eq!(
            verdicts("checkout.sessions.create", &renumbered),
            (false, false)
        );
    }

    #[test]
    fn values_are_decoded_where_their_kind_needs_the_text() {
        // `name` takes at most 256 characters: 256 sent plainly pass on their length; 200
        // sent as 600 bytes of escapes pass once decoded.
        let plain = format!("name={}", "a".repeat(256));
        assert_eq!(verdicts("customers.create", &plain), (true, true));
        let escaped = format!("name={}", "%41".repeat(200));
        assert_eq!(verdicts("customers.create", &escaped), (true, true));
        for over in ["a".repeat(257), "%41".repeat(257)] {
            let body = format!("name={over}");
            assert_eq!(verdicts("customers.create", &body), (false, false));
        }
        // An enum's value is compared decoded.
        for (value, verdict) in [("per%5Funit", (true, true)), ("per%5Fday", (false, false))] {
            let body = format!("currency=usd&billing_scheme={value}");
            assert_eq!(verdicts("prices.create", &body), verdict, "{value}");
        }
    }

    #[test]
    fn a_repeated_key_passes_only_when_every_value_does() {
        assert_eq!(
            verdicts("payment_intents.create", "amount=1&amount=2&currency=usd"),
            (true, true)
        );
        // The tree keeps the last value, so it accepts; the one pass leaves it to the tree.
        assert_eq!(
            verdicts("payment_intents.create", "amount=x&amount=2&currency=usd"),
            (false, true)
        );
    }
}
