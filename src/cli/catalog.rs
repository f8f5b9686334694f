//! `agentgate catalog import|list`: turn Stripe's descriptions into a catalog and show what a
//! catalog holds. Neither command opens the database or needs the master key.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::output;
use crate::catalog::{self, json_schema, Catalog};

/// Catalog commands.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Read an operations extraction or a Stripe OpenAPI description (spec3.json) and print
    /// the catalog in the committed format; a summary goes to stderr.
    Import {
        /// The description to read.
        file: PathBuf,
        /// Write the catalog here instead of to stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the operations of a catalog (the embedded one by default).
    List {
        /// Print the discovery JSON: each operation with a JSON Schema of its parameters.
        #[arg(long)]
        json: bool,
        /// A catalog written by `agentgate catalog import`.
        #[arg(long)]
        catalog: Option<PathBuf>,
    },
}

/// Runs a catalog command.
pub fn run(command: CatalogCommand) -> anyhow::Result<()> {
    match command {
        CatalogCommand::Import { file, out } => import(&file, out.as_deref()),
        CatalogCommand::List { json, catalog } => list(json, catalog.as_deref()),
    }
}

fn import(file: &Path, out: Option<&Path>) -> anyhow::Result<()> {
    let text = read(file)?;
    let catalog =
        catalog::import(&text).with_context(|| format!("cannot import {}", file.display()))?;
    let lines = catalog.to_json_lines();
    match out {
        Some(path) => std::fs::write(path, &lines)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{lines}"),
    }
    eprintln!(
        "{} operations for Stripe API {}, {} passthrough routes",
        catalog.operations.len(),
        catalog.api_version,
        catalog.passthrough.len()
    );
    Ok(())
}

fn list(json: bool, path: Option<&Path>) -> anyhow::Result<()> {
    let catalog = match path {
        Some(path) => Catalog::from_json(&read(path)?)
            .with_context(|| format!("{} is not a catalog", path.display()))?,
        None => Catalog::embedded(),
    };
    if json {
        let data: Vec<_> = catalog
            .operations
            .iter()
            .map(json_schema::operation_json)
            .collect();
        return output::json(&json!({
            "object": "list",
            "api_version": catalog.api_version,
            "data": data,
        }));
    }
    let rows: Vec<Vec<String>> = catalog
        .operations
        .iter()
        .map(|op| {
            let required: Vec<&str> = op
                .params
                .iter()
                .filter(|field| field.required)
                .map(|field| field.name.as_str())
                .collect();
            let required = if required.is_empty() {
                "-".to_owned()
            } else {
                required.join(", ")
            };
            vec![op.id.clone(), op.method.clone(), op.path.clone(), required]
        })
        .collect();
    output::table(
        &["ID", "METHOD", "PATH", "REQUIRED"],
        &rows,
        "the catalog has no operations",
    )?;
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
