//! Property tests of the validator against the embedded catalog, in process: random valid
//! requests for every listed operation are accepted, and one random fault in such a request
//! is refused naming the parameter and carrying the code Stripe would send.

use std::rc::Rc;
use std::sync::LazyLock;

use agentgate::catalog::{Catalog, Field, Kind, Operation, Schema};
use agentgate::validation::{accepted_in_one_pass, check, decode, validate, Violation};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::Union;

static CATALOG: LazyLock<Catalog> = LazyLock::new(Catalog::embedded);

/// Nesting depth below which optional fields are still chosen; deeper, only what is required.
const MAX_DEPTH: usize = 4;
/// At most this many optional top-level parameters per request.
const TOP_OPTIONAL: usize = 8;
/// At most this many optional fields per nested object.
const NESTED_OPTIONAL: usize = 3;
/// A name no listed operation and no Stripe object has.
const UNKNOWN: &str = "agentgate_bogus";
/// Text characters, including every one form encoding must escape and multi-byte ones.
const CHARS: &[char] = &[
    'a', 'Z', '0', '9', '_', '-', '.', ' ', '&', '=', '+', '%', '[', ']', '?', '#', '/', 'é', '日',
    '🦀',
];
/// Map key characters: as [`CHARS`] without the brackets that delimit the key itself.
const KEY_CHARS: &[char] = &['k', 'Q', '7', '_', ' ', '&', '=', '+', '%', 'ü'];
/// Multi-byte characters, so that a length limit is checked in characters, not bytes.
const WIDE: &[char] = &['é', '日', '🦀'];

/// One generated value, before encoding.
#[derive(Clone, Debug)]
enum Gen {
    Leaf(String, Tag),
    /// Named parts; the flag marks an object under an anyOf with several container shapes.
    Object(Vec<(&'static str, Gen)>, bool),
    /// Items; the flag asks for `a[]=` when every item is a single value.
    List(Vec<Gen>, bool),
    Map(Vec<(String, Gen)>),
}

/// What a leaf is, for choosing a fault to put into it.
#[derive(Clone, Copy, Debug)]
enum LeafKind {
    Integer,
    ClosedEnum(&'static [String]),
    Boolean,
    LimitedText(u32),
    Other,
}

/// A leaf's kind, and whether it lies under an anyOf (where another alternative may accept
/// a fault, or refuse it in its own words).
#[derive(Clone, Copy, Debug)]
struct Tag {
    kind: LeafKind,
    in_any_of: bool,
}

/// Where in the schema tree a strategy is built.
#[derive(Clone, Copy)]
struct Ctx {
    depth: usize,
    in_any_of: bool,
    ambiguous: bool,
}

impl Ctx {
    fn child(self) -> Self {
        Self {
            depth: self.depth + 1,
            ..self
        }
    }

    fn tag(self, kind: LeafKind) -> Tag {
        Tag {
            kind,
            in_any_of: self.in_any_of,
        }
    }
}

/// A generated request, encoded as pairs, with what is known about each leaf.
#[derive(Clone, Debug)]
struct Request {
    op: usize,
    path_args: Vec<String>,
    pairs: Vec<(String, String)>,
    leaves: Vec<LeafAt>,
    /// Bracketed names of the generated objects whose fields are unambiguous.
    objects: Vec<String>,
    /// Brackets sent unescaped, as the SDKs send them.
    literal_brackets: bool,
    /// Spaces sent as `%20` rather than `+`.
    spaces_as_percent: bool,
}

/// A leaf of a request: its pair, and its name as Stripe writes it (`expand[]` items by index).
#[derive(Clone, Debug)]
struct LeafAt {
    pair: usize,
    param: String,
    tag: Tag,
}

/// A fault put into a valid request, and the refusal it must earn.
#[derive(Clone, Debug)]
struct Mutation {
    edit: Edit,
    code: Option<&'static str>,
    param: String,
}

#[derive(Clone, Debug)]
enum Edit {
    /// Append `key=1`.
    Add(String),
    /// Drop every pair of this top-level parameter.
    Remove(&'static str),
    /// Set the value of the pair at this index.
    Set(usize, String),
}

fn text(max: Option<u32>) -> BoxedStrategy<String> {
    let cap = max.map_or(16, |max| max.min(16)) as usize;
    let short = prop::collection::vec(select(CHARS), 1..=cap).prop_map(String::from_iter);
    match max {
        Some(max) if max <= 5000 => prop_oneof![
            9 => short,
            1 => select(WIDE).prop_map(move |c| c.to_string().repeat(max as usize)),
        ]
        .boxed(),
        _ => short.boxed(),
    }
}

fn schema_strategy(schema: &'static Schema, ctx: Ctx) -> Option<BoxedStrategy<Gen>> {
    let emptyable = schema.emptyable
        || matches!(&schema.kind, Kind::AnyOf { any_of } if any_of.iter().any(|alt| alt.emptyable));
    let empty = Gen::Leaf(String::new(), ctx.tag(LeafKind::Other));
    match (kind_strategy(&schema.kind, ctx), emptyable) {
        (Some(value), true) => Some(prop_oneof![1 => Just(empty), 7 => value].boxed()),
        (Some(value), false) => Some(value),
        (None, true) => Some(Just(empty).boxed()),
        (None, false) => None,
    }
}

fn leaf(strategy: impl Strategy<Value = String> + 'static, tag: Tag) -> BoxedStrategy<Gen> {
    strategy
        .prop_map(move |value| Gen::Leaf(value, tag))
        .boxed()
}

fn kind_strategy(kind: &'static Kind, ctx: Ctx) -> Option<BoxedStrategy<Gen>> {
    match kind {
        Kind::Object { fields } => object_strategy(fields, ctx, false),
        Kind::Array { items } => {
            let item = schema_strategy(items, ctx.child())?;
            let strategy = (prop::collection::vec(item, 1..=3), any::<bool>())
                .prop_map(|(items, brackets)| Gen::List(items, brackets));
            Some(strategy.boxed())
        }
        Kind::Map { values } => Some(map_strategy(values, ctx)),
        Kind::AnyOf { any_of } => {
            let containers = any_of.iter().filter(|alt| is_container(&alt.kind)).count();
            let ctx = Ctx {
                in_any_of: true,
                ambiguous: ctx.ambiguous || containers > 1,
                ..ctx
            };
            let alternatives: Vec<_> = any_of
                .iter()
                .filter_map(|alt| schema_strategy(alt, ctx))
                .collect();
            (!alternatives.is_empty()).then(|| Union::new(alternatives).boxed())
        }
        _ => scalar_strategy(kind, ctx),
    }
}

fn scalar_strategy(kind: &'static Kind, ctx: Ctx) -> Option<BoxedStrategy<Gen>> {
    Some(match kind {
        Kind::String {
            max_length: Some(0),
            ..
        } => return None,
        Kind::String { max_length, .. } => {
            let kind = max_length.map_or(LeafKind::Other, LeafKind::LimitedText);
            leaf(text(*max_length), ctx.tag(kind))
        }
        Kind::Integer => leaf(
            prop_oneof![
                (0..100_000i64).prop_map(|n| n.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                (0..1000u32).prop_map(|n| format!("-{n:04}")),
            ],
            ctx.tag(LeafKind::Integer),
        ),
        Kind::Number => leaf(
            prop_oneof![
                (0..1_000_000u32, 0..100u32)
                    .prop_map(|(whole, cents)| format!("{whole}.{cents:02}")),
                prop::num::f64::NORMAL.prop_map(|n| n.to_string()),
                prop::num::f64::NORMAL.prop_map(|n| format!("{n:e}")),
            ],
            ctx.tag(LeafKind::Other),
        ),
        Kind::Boolean => leaf(
            select(&["true", "false"][..]).prop_map(String::from),
            ctx.tag(LeafKind::Boolean),
        ),
        Kind::Enum { values, open } => match (values.is_empty(), open) {
            (true, false) => return None,
            (true, true) => leaf(text(Some(40)), ctx.tag(LeafKind::Other)),
            (false, false) => leaf(select(&values[..]), ctx.tag(LeafKind::ClosedEnum(values))),
            (false, true) => leaf(
                prop_oneof![select(&values[..]), text(Some(40))],
                ctx.tag(LeafKind::Other),
            ),
        },
        Kind::Object { .. } | Kind::Array { .. } | Kind::Map { .. } | Kind::AnyOf { .. } => {
            unreachable!("containers are built by kind_strategy")
        }
    })
}

/// One to three distinct keys; a key's value may be empty, which removes that key.
fn map_strategy(values: &'static Schema, ctx: Ctx) -> BoxedStrategy<Gen> {
    let empty = Just(Gen::Leaf(String::new(), ctx.tag(LeafKind::Other)));
    let value = match schema_strategy(values, ctx.child()) {
        Some(value) => prop_oneof![1 => empty, 5 => value].boxed(),
        None => empty.boxed(),
    };
    let key = prop::collection::vec(select(KEY_CHARS), 1..=8).prop_map(String::from_iter);
    prop::collection::btree_map(key, value, 1..=3)
        .prop_map(|entries| Gen::Map(entries.into_iter().collect()))
        .boxed()
}

fn is_container(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Object { .. } | Kind::Map { .. } | Kind::Array { .. }
    )
}

type FieldStrategy = BoxedStrategy<(&'static str, Gen)>;

/// Every required field, and a random few optional ones (at least one field when nothing is
/// required, so that a sent object is never empty). An object without properties is sent
/// as an empty value (`payment_method_data[affirm]=`), the form encoding of an empty hash.
fn object_strategy(fields: &'static [Field], ctx: Ctx, root: bool) -> Option<BoxedStrategy<Gen>> {
    if fields.is_empty() && !root {
        return Some(Just(Gen::Leaf(String::new(), ctx.tag(LeafKind::Other))).boxed());
    }
    let field = |field: &'static Field| {
        let name = field.name.as_str();
        schema_strategy(&field.schema, ctx.child())
            .map(|gen| gen.prop_map(move |gen| (name, gen)).boxed())
    };
    let required: Vec<FieldStrategy> = fields
        .iter()
        .filter(|f| f.required)
        .map(field)
        .collect::<Option<_>>()?;
    let optional: Vec<FieldStrategy> = if ctx.depth >= MAX_DEPTH && !required.is_empty() {
        Vec::new()
    } else {
        fields
            .iter()
            .filter(|f| !f.required)
            .filter_map(field)
            .collect()
    };
    let min = usize::from(!root && required.is_empty());
    if min > optional.len() {
        return None;
    }
    let limit = if root { TOP_OPTIONAL } else { NESTED_OPTIONAL };
    let max = limit.max(min).min(optional.len());
    let (required, optional) = (Rc::new(required), Rc::new(optional));
    let ambiguous = ctx.ambiguous;
    Some(
        subsequence((0..optional.len()).collect::<Vec<_>>(), min..=max)
            .prop_flat_map(move |chosen| {
                let mut parts = (*required).clone();
                parts.extend(chosen.into_iter().map(|index| optional[index].clone()));
                parts
            })
            .prop_map(move |parts| Gen::Object(parts, ambiguous))
            .boxed(),
    )
}

fn operation_strategy(index: usize, operation: &'static Operation) -> BoxedStrategy<Request> {
    let root = Ctx {
        depth: 0,
        in_any_of: false,
        ambiguous: false,
    };
    let params = object_strategy(&operation.params, root, true)
        .unwrap_or_else(|| panic!("{}: no valid request can be generated", operation.id));
    let path_args: Vec<_> = operation
        .path_params
        .iter()
        .map(|param| {
            let cap = param.max_length.map_or(24, |max| max.min(24)) as usize;
            prop::collection::vec(select(&['c', 'u', 's', '_', 'A', '1'][..]), 1..=cap)
                .prop_map(String::from_iter)
        })
        .collect();
    (params, path_args, any::<(bool, bool)>())
        .prop_map(move |(params, path_args, spelling)| {
            Request::new(index, &params, path_args, spelling)
        })
        .boxed()
}

/// A valid request for any listed operation.
fn valid_requests() -> BoxedStrategy<Request> {
    let operations = &CATALOG.operations;
    assert_eq!(
        operations.len(),
        30,
        "the embedded catalog lists the 30 operations"
    );
    Union::new(
        operations
            .iter()
            .enumerate()
            .map(|(index, op)| operation_strategy(index, op)),
    )
    .boxed()
}

/// A valid request and one fault that applies to it, the kind of fault chosen first.
fn mutated_requests() -> impl Strategy<Value = (Request, Mutation)> {
    valid_requests().prop_flat_map(|request| {
        let groups = mutations(&CATALOG.operations[request.op], &request);
        (Just(request), select(groups).prop_flat_map(select))
    })
}

impl Request {
    fn new(op: usize, params: &Gen, path_args: Vec<String>, spelling: (bool, bool)) -> Self {
        let mut request = Request {
            op,
            path_args,
            pairs: Vec::new(),
            leaves: Vec::new(),
            objects: Vec::new(),
            literal_brackets: spelling.0,
            spaces_as_percent: spelling.1,
        };
        let Gen::Object(fields, _) = params else {
            unreachable!("parameters are an object")
        };
        for (name, gen) in fields {
            request.flatten(gen, name, name);
        }
        request
    }

    fn flatten(&mut self, gen: &Gen, key: &str, param: &str) {
        match gen {
            Gen::Leaf(value, tag) => {
                self.leaves.push(LeafAt {
                    pair: self.pairs.len(),
                    param: param.to_owned(),
                    tag: *tag,
                });
                self.pairs.push((key.to_owned(), value.clone()));
            }
            Gen::Object(fields, ambiguous) => {
                if !ambiguous {
                    self.objects.push(key.to_owned());
                }
                for (name, gen) in fields {
                    self.flatten(gen, &format!("{key}[{name}]"), &format!("{param}[{name}]"));
                }
            }
            Gen::List(items, brackets) => {
                let listed = *brackets && items.iter().all(|item| matches!(item, Gen::Leaf(..)));
                for (index, item) in items.iter().enumerate() {
                    let item_key = if listed {
                        format!("{key}[]")
                    } else {
                        format!("{key}[{index}]")
                    };
                    self.flatten(item, &item_key, &format!("{param}[{index}]"));
                }
            }
            Gen::Map(entries) => {
                for (name, gen) in entries {
                    self.flatten(gen, &format!("{key}[{name}]"), &format!("{param}[{name}]"));
                }
            }
        }
    }

    /// `pairs` as `application/x-www-form-urlencoded` in this request's spelling.
    fn encode(&self, pairs: &[(String, String)]) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs {
            form.append_pair(key, value);
        }
        let mut encoded = form.finish();
        // In the serializer's output `%5B` can only be an escaped `[`, and `+` only a space.
        if self.literal_brackets {
            encoded = encoded.replace("%5B", "[").replace("%5D", "]");
        }
        if self.spaces_as_percent {
            encoded = encoded.replace('+', "%20");
        }
        encoded
    }

    /// Decodes and validates `encoded` as the gateway does: GET and DELETE parameters from
    /// the query, POST parameters from the body.
    /// The gateway's entry point ([`check`]) must answer as the tree does, word for word.
    fn check(&self, encoded: &str) -> Result<(), Violation> {
        let operation = &CATALOG.operations[self.op];
        let path_args: Vec<&str> = self.path_args.iter().map(String::as_str).collect();
        let (query, body) = match operation.method.as_str() {
            "POST" => (None, Some(encoded.as_bytes())),
            _ => (Some(encoded), None),
        };
        let tree = tree_verdict(operation, &path_args, query, body);
        assert_eq!(
            check(operation, &path_args, query, body),
            tree,
            "{} {encoded}",
            operation.id
        );
        tree
    }
}

/// The tree's verdict: decode, then validate.
fn tree_verdict(
    operation: &Operation,
    path_args: &[&str],
    query: Option<&str>,
    body: Option<&[u8]>,
) -> Result<(), Violation> {
    validate(operation, path_args, &decode(query, body)?)
}

/// A form built from an operation's own names in the shapes that conflict only together:
/// plain values, emptied values, named and numbered parts, `[]` appends, repeats. Its pairs
/// use two of the operation's parameters at most, so that they meet on the same one.
fn tangled_forms() -> impl Strategy<Value = (usize, String)> {
    let with_params: Vec<usize> = (CATALOG.operations.iter().enumerate())
        .filter(|(_, operation)| !operation.params.is_empty())
        .map(|(index, _)| index)
        .collect();
    select(with_params)
        .prop_flat_map(|op| {
            let count = CATALOG.operations[op].params.len();
            (Just(op), 0..count, 0..count)
        })
        .prop_flat_map(|(op, first, second)| {
            let fields = &CATALOG.operations[op].params;
            let (first, second) = (&fields[first], &fields[second]);
            let parts: Vec<&'static str> = [first, second]
                .into_iter()
                .flat_map(|field| nested_names(&field.schema))
                .chain(["k", "0", "1", ""])
                .collect();
            let part = select(parts).prop_map(|part| format!("[{part}]"));
            let name = select(vec![first.name.as_str(), second.name.as_str()]);
            let key = (name, prop::collection::vec(part, 0..3))
                .prop_map(|(name, parts)| format!("{name}{}", parts.concat()));
            let value = select(&["", "1", "x", "true", "usd", "2.5", "%5B", "a+b"][..]);
            prop::collection::vec((key, value), 1..6).prop_map(move |pairs| {
                let form: Vec<String> = (pairs.iter())
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect();
                (op, form.join("&"))
            })
        })
}

/// A valid request with one pair added that meets another on the same parameter in a
/// different shape (the value emptied where it has parts, a list both appended to and
/// numbered, parts under a single value, keys under an appended item), or with one key
/// dropped (a nested object's required field, say).
fn tangled_requests() -> impl Strategy<Value = (Request, Vec<(String, String)>)> {
    (
        valid_requests(),
        any::<prop::sample::Index>(),
        0..5u8,
        any::<bool>(),
    )
        .prop_map(|(request, at, how, before)| {
            let mut pairs = request.pairs.clone();
            let Some((key, value)) = pairs.get(at.index(pairs.len().max(1))).cloned() else {
                return (request, pairs);
            };
            let added = match how {
                0 => key
                    .rfind('[')
                    .map(|open| (key[..open].to_owned(), String::new())),
                1 if key.contains("[]") => Some((key.replacen("[]", "[0]", 1), value)),
                1 => numbered(&key).map(|numbered| (numbered, value)),
                2 => Some((format!("{key}[k]"), "1".to_owned())),
                3 => {
                    pairs.retain(|(other, _)| *other != key);
                    None
                }
                _ => key
                    .find("[]")
                    .map(|at| (format!("{}[k]", &key[..at + 2]), value)),
            };
            if let Some(added) = added {
                let at = if before { 0 } else { pairs.len() };
                pairs.insert(at, added);
            }
            (request, pairs)
        })
}

/// `key` with its first numbered part (`[0]`) written as an append (`[]`).
fn numbered(key: &str) -> Option<String> {
    let open = key.find("[0]").or_else(|| key.find("[1]"))?;
    Some(format!("{}[]{}", &key[..open], &key[open + 3..]))
}

/// The field names of an object, or of a list's object items: the parts a key may name.
fn nested_names(schema: &'static Schema) -> Vec<&'static str> {
    match &schema.kind {
        Kind::Object { fields } => fields.iter().map(|field| field.name.as_str()).collect(),
        Kind::Array { items } => nested_names(items),
        _ => Vec::new(),
    }
}

/// The faults that apply to `request`, grouped by kind so that each kind is as likely.
fn mutations(operation: &'static Operation, request: &Request) -> Vec<Vec<Mutation>> {
    assert!(operation.params.iter().all(|field| field.name != UNKNOWN));
    let unknown = |param: String| Mutation {
        edit: Edit::Add(param.clone()),
        code: Some("parameter_unknown"),
        param,
    };
    let mut groups = vec![
        vec![unknown(UNKNOWN.to_owned())],
        (request.objects.iter())
            .map(|object| unknown(format!("{object}[{UNKNOWN}]")))
            .collect(),
        (operation.params.iter().filter(|field| field.required))
            .map(|field| Mutation {
                edit: Edit::Remove(&field.name),
                code: Some("parameter_missing"),
                param: field.name.clone(),
            })
            .collect(),
    ];
    let mut by_kind: [Vec<Mutation>; 4] = Default::default();
    for leaf in request.leaves.iter().filter(|leaf| !leaf.tag.in_any_of) {
        let (group, value, code) = match leaf.tag.kind {
            LeafKind::Integer => (0, "x1".to_owned(), Some("parameter_invalid_integer")),
            LeafKind::ClosedEnum(values) => {
                assert!(!values.iter().any(|value| value == "not listed"));
                (1, "not listed".to_owned(), None)
            }
            LeafKind::Boolean => (2, "maybe".to_owned(), None),
            LeafKind::LimitedText(max) => (3, "é".repeat(max as usize + 1), None),
            LeafKind::Other => continue,
        };
        by_kind[group].push(Mutation {
            edit: Edit::Set(leaf.pair, value),
            code,
            param: leaf.param.clone(),
        });
    }
    groups.extend(by_kind);
    groups.retain(|group| !group.is_empty());
    groups
}

/// The pairs of `request` with `edit` applied.
fn apply(edit: &Edit, pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut pairs = pairs.to_vec();
    match edit {
        Edit::Add(key) => pairs.push((key.clone(), "1".to_owned())),
        Edit::Remove(name) => pairs.retain(|(key, _)| key.split('[').next() != Some(name)),
        Edit::Set(index, value) => pairs[*index].1 = value.clone(),
    }
    pairs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_valid_request_for_any_listed_operation_is_accepted(request in valid_requests()) {
        let encoded = request.encode(&request.pairs);
        let id = &CATALOG.operations[request.op].id;
        prop_assert_eq!(request.check(&encoded), Ok(()), "{} {}", id, encoded);
    }

    #[test]
    fn what_the_one_pass_check_accepts_the_tree_accepts((op, form) in tangled_forms()) {
        let operation = &CATALOG.operations[op];
        let args: Vec<&str> = operation.path_params.iter().map(|_| "id_1").collect();
        let (query, body) = match operation.method.as_str() {
            "POST" => (None, Some(form.as_bytes())),
            _ => (Some(form.as_str()), None),
        };
        let tree = tree_verdict(operation, &args, query, body);
        if accepted_in_one_pass(operation, &args, query, body) {
            prop_assert_eq!(&tree, &Ok(()), "{} {}", operation.id, form);
        }
        prop_assert_eq!(check(operation, &args, query, body), tree, "{} {}", operation.id, form);
    }

    #[test]
    fn a_valid_request_tangled_by_one_pair_is_accepted_in_one_pass_only_if_the_tree_accepts(
        (request, pairs) in tangled_requests()
    ) {
        let operation = &CATALOG.operations[request.op];
        let args: Vec<&str> = request.path_args.iter().map(String::as_str).collect();
        let encoded = request.encode(&pairs);
        let (query, body) = match operation.method.as_str() {
            "POST" => (None, Some(encoded.as_bytes())),
            _ => (Some(encoded.as_str()), None),
        };
        // `check` asserts that the gateway's entry point answers as the tree does.
        let tree = request.check(&encoded);
        if accepted_in_one_pass(operation, &args, query, body) {
            prop_assert_eq!(tree, Ok(()), "{} {}", operation.id, encoded);
        }
    }

    #[test]
    fn one_fault_in_a_valid_request_is_refused_naming_the_param((request, mutation) in mutated_requests()) {
        let encoded = request.encode(&apply(&mutation.edit, &request.pairs));
        let id = &CATALOG.operations[request.op].id;
        let refusal = request.check(&encoded);
        prop_assert!(refusal.is_err(), "{} {} was accepted", id, encoded);
        let refusal = refusal.unwrap_err();
        prop_assert_eq!(
            (refusal.code, refusal.param),
            (mutation.code, Some(mutation.param)),
            "{} {}: {}", id, encoded, refusal.message
        );
    }
}
