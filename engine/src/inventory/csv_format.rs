//! CSV inventories: a header row, then one row per host. Cells are typed by what they spell
//! (numbers, booleans, text); empty cells are absent.

use super::{check_host_name, infer_scalar, Problem, RawHost};
use serde_json::Map;

pub fn read(text: &str, name_keys: &[String]) -> Result<Vec<RawHost>, Vec<Problem>> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header_err = |e: csv::Error| {
        vec![Problem {
            line: e.position().map(|p| p.line() as usize).or(Some(1)),
            message: format!("cannot read the header row: {e}"),
        }]
    };
    let headers = rdr.headers().map_err(header_err)?.clone();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for h in headers.iter() {
        if h.is_empty() {
            problems.push(Problem::at(1, "the header row has an empty column name"));
        } else if !seen.insert(h) {
            problems.push(Problem::at(1, format!("the header row names `{h}` twice")));
        }
    }
    let Some(name_col) = name_keys
        .iter()
        .find_map(|k| headers.iter().position(|h| h == k))
    else {
        problems.push(Problem::at(
            1,
            format!(
                "no host name column (looked for {})",
                name_keys
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem {
                    line: e.position().map(|p| p.line() as usize),
                    message: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        if rec.get(0).is_some_and(|c| c.starts_with('#')) || rec.iter().all(str::is_empty) {
            continue;
        }
        if rec.len() != headers.len() {
            problems.push(Problem::at(
                line,
                format!(
                    "the row has {} fields; the header has {}",
                    rec.len(),
                    headers.len()
                ),
            ));
            continue;
        }
        let name = rec.get(name_col).unwrap_or("").to_string();
        if let Err(e) = check_host_name(&name) {
            problems.push(Problem::at(line, e));
            continue;
        }
        let mut vars = Map::new();
        for (h, cell) in headers.iter().zip(rec.iter()) {
            if !cell.is_empty() {
                vars.insert(h.to_string(), infer_scalar(cell));
            }
        }
        out.push(RawHost {
            name,
            line,
            vars,
            groups: Vec::new(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}
