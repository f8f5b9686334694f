//! A tool call's JSON arguments in Stripe's form encoding (`metadata[plan]=pro`,
//! `items[0][price]=price_1`), the encoding the data plane validates and Stripe reads. It
//! only encodes: whether the values are right is the data plane's catalog check.

use serde_json::{Map, Value};

/// The arguments as an `application/x-www-form-urlencoded` string: objects in bracket
/// notation, arrays by index (as Stripe's SDKs send them), booleans as `true`/`false`, and
/// `null` as the empty string (Stripe's way to unset a field).
pub fn encode(arguments: &Map<String, Value>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in arguments {
        append(&mut form, name.clone(), value);
    }
    form.finish()
}

fn append(form: &mut form_urlencoded::Serializer<'_, String>, name: String, value: &Value) {
    match value {
        Value::Null => {
            form.append_pair(&name, "");
        }
        Value::Bool(flag) => {
            form.append_pair(&name, if *flag { "true" } else { "false" });
        }
        Value::Number(number) => {
            form.append_pair(&name, &number.to_string());
        }
        Value::String(text) => {
            form.append_pair(&name, text);
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                append(form, format!("{name}[{index}]"), item);
            }
        }
        Value::Object(fields) => {
            for (field, item) in fields {
                append(form, format!("{name}[{field}]"), item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encoded(value: Value) -> String {
        match value {
            Value::Object(arguments) => encode(&arguments),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn nested_values_use_stripes_bracket_notation() {
        let form = encoded(json!({
            "amount": 500,
            "capture": false,
            "metadata": {"plan": "pro & co"},
            "items": [{"price": "price_1", "quantity": 2}],
            "description": null,
        }));
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        pairs.sort();
        let expected = [
            ("amount", "500"),
            ("capture", "false"),
            ("description", ""),
            ("items[0][price]", "price_1"),
            ("items[0][quantity]", "2"),
            ("metadata[plan]", "pro & co"),
        ];
        assert_eq!(
            pairs,
            expected.map(|(name, value)| (name.to_owned(), value.to_owned()))
        );
    }
}
