//! Printing for people (aligned columns) and for scripts (JSON), in one place.

use serde::Serialize;

/// Prints rows as left-aligned columns under a header; an empty list prints `empty`.
pub fn table(headers: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
        return;
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints records as a JSON array (`json`) or as a table, so every list command behaves
/// alike.
pub fn list<'a, T, O: Serialize>(
    json: bool,
    records: &'a [T],
    to_json: impl Fn(&'a T) -> O,
    headers: &[&str],
    to_row: impl Fn(&T) -> Vec<String>,
    empty: &str,
) -> anyhow::Result<()> {
    if json {
        let out: Vec<O> = records.iter().map(to_json).collect();
        return self::json(&out);
    }
    let rows: Vec<Vec<String>> = records.iter().map(to_row).collect();
    table(headers, &rows, empty);
    Ok(())
}

/// Prints a value as one line of JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// An optional timestamp as RFC 3339, or `never`.
pub fn time_or(millis: Option<i64>, none: &str) -> String {
    millis.map_or_else(|| none.to_owned(), crate::time::rfc3339)
}
