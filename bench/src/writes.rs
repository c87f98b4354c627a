//! What the hub decides to store: store/skip precision and recall of the code path
//! ([`hearth_hub::memory::kind::classify`]) on labelled household turns, and on LoCoMo turns
//! against the observations LoCoMo's annotators drew from them (a turn no observation cites
//! is a rough "nothing worth storing").

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hearth_hub::memory::kind::{labelled, Scores};

/// One row of the table.
#[derive(Debug)]
pub struct Row {
    /// What was measured.
    pub set: String,
    /// The scores.
    pub scores: Scores,
}

/// Scores each labelled TSV file (`label<TAB>kind<TAB>text`).
pub fn household(files: &[PathBuf]) -> anyhow::Result<Vec<Row>> {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            let rows = labelled(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            Ok(Row {
                set: f.display().to_string(),
                scores: Scores::of(rows),
            })
        })
        .collect()
}

/// Scores the turns of each LoCoMo file in `data` (a folder or a file) against its
/// `session_N_observation` citations.
pub fn locomo(data: &Path) -> anyhow::Result<Row> {
    let files = crate::locomo::files(data)?;
    let mut turns: Vec<(String, bool)> = Vec::new();
    for f in &files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", f.display()))?;
        let conv = json.get("conversation").unwrap_or(&json);
        let cited = cited(&json);
        for n in 1.. {
            let Some(session) = conv.get(format!("session_{n}")).and_then(|s| s.as_array()) else {
                break;
            };
            for turn in session {
                let id = turn.get("dia_id").and_then(|v| v.as_str()).unwrap_or("");
                let said = turn.get("text").and_then(|v| v.as_str()).unwrap_or("");
                turns.push((said.to_string(), cited.contains(id.trim())));
            }
        }
    }
    Ok(Row {
        set: format!("LoCoMo observations ({} conversations)", files.len()),
        scores: Scores::of(turns.iter().map(|(t, c)| (t.as_str(), *c))),
    })
}

/// The turn ids some observation cites.
fn cited(json: &serde_json::Value) -> HashSet<String> {
    let mut out = HashSet::new();
    let Some(map) = json.as_object() else {
        return out;
    };
    let observations = map
        .iter()
        .filter(|(k, _)| k.ends_with("_observation"))
        .filter_map(|(_, v)| v.as_object());
    for by_speaker in observations {
        for list in by_speaker.values().filter_map(|v| v.as_array()) {
            for o in list {
                match o.get(1) {
                    Some(serde_json::Value::String(id)) => {
                        out.insert(id.trim().to_string());
                    }
                    Some(serde_json::Value::Array(ids)) => {
                        out.extend(
                            ids.iter()
                                .filter_map(|i| i.as_str())
                                .map(|i| i.trim().to_string()),
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// The table.
pub fn print(rows: &[Row], show_wrong: usize) {
    println!("| set | turns | store precision | store recall | stored wrongly | missed |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let s = &r.scores;
        println!(
            "| {} | {} | {:.3} | {:.3} | {} | {} |",
            r.set,
            s.rows,
            s.precision(),
            s.recall(),
            s.false_store,
            s.missed
        );
    }
    for r in rows.iter().filter(|_| show_wrong > 0) {
        println!("\n{}: decided against the label", r.set);
        for (text, label, kind) in r.scores.wrong.iter().take(show_wrong) {
            println!("  {label:>5} → {:<10} {text}", kind.name());
        }
    }
}
