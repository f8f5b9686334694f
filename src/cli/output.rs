//! Printing for people (aligned columns) and for scripts (JSON), in one place.

use std::fmt::Display;
use std::io::Write;

use serde::Serialize;

/// Writes one line to stdout. Unlike `println!` it returns an error instead of panicking
/// when the reader went away (`agentgate logs list | head`); `main` ends quietly on it.
pub fn line(text: impl Display) -> std::io::Result<()> {
    writeln!(std::io::stdout().lock(), "{text}")
}

/// Prints rows as left-aligned columns under a header; an empty list prints `empty`.
pub fn table(headers: &[&str], rows: &[Vec<String>], empty: &str) -> std::io::Result<()> {
    if rows.is_empty() {
        return line(empty);
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let print_row = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        line(padded.join("  ").trim_end())
    };
    print_row(headers.to_vec())?;
    for row in rows {
        print_row(row.iter().map(String::as_str).collect())?;
    }
    Ok(())
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
    table(headers, &rows, empty)?;
    Ok(())
}

/// Prints a value as one line of JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    line(serde_json::to_string(value)?)?;
    Ok(())
}

/// An optional timestamp as RFC 3339, or `never`.
pub fn time_or(millis: Option<i64>, none: &str) -> String {
    millis.map_or_else(|| none.to_owned(), crate::time::rfc3339)
}
