//! `stylize models`: the shipped models and their cards.

use anyhow::{Context, Result};
use clap::Args;
use stylize::catalog;

/// Arguments of `stylize models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Print the full model card of this model.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `stylize models`.
pub fn run(args: ModelsArgs) -> Result<()> {
    let dir = catalog::models_dir();
    let models =
        catalog::list_in(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
    if let Some(name) = &args.name {
        let m = models.iter().find(|m| &m.name == name).ok_or_else(|| {
            super::BadInput(format!(
                "no shipped model named '{name}' (shipped: {})",
                models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        match &m.card {
            Some(card) => print!(
                "{}",
                std::fs::read_to_string(card)
                    .with_context(|| format!("cannot read {}", card.display()))?
            ),
            None => println!("{} has no model card", m.name),
        }
        return Ok(());
    }
    if args.json {
        let list: Vec<_> = models
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name,
                    "path": m.path,
                    "fp16": m.fp16,
                    "card": m.card,
                    "bytes": m.bytes,
                    "default": m.is_default,
                    "summary": m.summary(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if models.is_empty() {
        println!("no models in {}", dir.display());
        return Ok(());
    }
    println!("models in {}:", dir.display());
    for m in &models {
        let mut summary = m.summary().unwrap_or_default().replace('*', "");
        if summary.chars().count() > 90 {
            summary = summary.chars().take(89).collect::<String>() + "…";
        }
        println!(
            "  {}{:<18} {:>7.2} MB{}  {}",
            if m.is_default { "*" } else { " " },
            m.name,
            m.bytes as f64 / 1e6,
            if m.fp16.is_some() { " +fp16" } else { "      " },
            summary
        );
    }
    println!("(* = default; `stylize models NAME` prints a model's card; use with --model NAME)");
    Ok(())
}
