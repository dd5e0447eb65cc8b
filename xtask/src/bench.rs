//! `cargo xtask bench`: runs the criterion benches and reports them against the baseline.
//!
//! Reads criterion's `<target>/criterion/**/new/{estimates,benchmark}.json`, prints a table per
//! group (mean, median, ratio to the `tokio-tungstenite` function of the same group and input,
//! throughput when the bench declares one) and writes it to `<target>/bench-report.md`, with a
//! section on the chat front end's browser bundle (raw and gzip sizes, `bundle.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::bundle;
use crate::json::{self, Value};
use crate::util::{self, Result};

/// The benchmark package.
const PACKAGE: &str = "tidings-benches";

/// In every group, the function every other one is compared with.
const BASELINE: &str = "tokio-tungstenite";

/// What a bench declared it processes per iteration.
#[derive(Clone, Copy)]
enum Throughput {
    Elements(f64),
    Bytes(f64),
    Bits(f64),
}

struct Entry {
    group: String,
    function: String,
    /// The input parameter (`BenchmarkId::new(function, value)`), if any.
    value: Option<String>,
    mean_ns: f64,
    median_ns: f64,
    throughput: Option<Throughput>,
}

impl Entry {
    fn name(&self) -> String {
        match &self.value {
            Some(value) if self.function.is_empty() => value.clone(),
            Some(value) => format!("{}/{value}", self.function),
            None => self.function.clone(),
        }
    }
}

/// `cargo xtask bench [--report-only] [cargo bench args] [-- criterion args]`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let report_only = args.iter().any(|a| a == "--report-only");
    let forwarded: Vec<&String> = args.iter().filter(|a| *a != "--report-only").collect();
    if !report_only {
        util::run(
            util::cargo()
                .args(["bench", "--package", PACKAGE])
                .args(forwarded)
                .current_dir(root),
        )?;
    }
    let target = util::target_dir(root);
    let criterion = target.join("criterion");
    let entries = collect(&criterion)?;
    if entries.is_empty() {
        return Err(format!(
            "no criterion results under {} (did the benches run?)",
            criterion.display()
        ));
    }
    let (mut text, mut markdown) = render(&entries);
    let (bundle_text, bundle_md) = bundle::report(root)?;
    text.push_str(&bundle_text);
    markdown.push_str(&bundle_md);
    print!("{text}");
    let report = target.join("bench-report.md");
    fs::write(&report, markdown).map_err(|e| format!("writing {}: {e}", report.display()))?;
    println!("\nbench: report written to {}", report.display());
    Ok(())
}

fn collect(criterion: &Path) -> Result<Vec<Entry>> {
    let mut dirs = Vec::new();
    find_new_dirs(criterion, &mut dirs);
    dirs.sort();
    let mut entries = Vec::new();
    for new in dirs {
        entries.push(read_entry(criterion, &new)?);
    }
    // Same input side by side, the baseline first.
    entries.sort_by_cached_key(|e| {
        (
            e.group.clone(),
            e.value.as_deref().map(natural_key),
            e.function != BASELINE,
            e.function.clone(),
        )
    });
    Ok(entries)
}

/// Sorts numeric inputs by number (`64` before `1024`), others by text.
fn natural_key(value: &str) -> (u8, u64, String) {
    match value.parse::<u64>() {
        Ok(n) => (0, n, String::new()),
        Err(_) => (1, 0, value.to_owned()),
    }
}

/// Every `new/` directory holding an `estimates.json`.
fn find_new_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if entry.file_name() == "new" && path.join("estimates.json").is_file() {
            out.push(path);
        } else if entry.file_name() != "report" {
            find_new_dirs(&path, out);
        }
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    json::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_entry(criterion: &Path, new: &Path) -> Result<Entry> {
    let estimates = read_json(&new.join("estimates.json"))?;
    let point = |stat: &str| {
        estimates
            .get(stat)
            .and_then(|s| s.get("point_estimate"))
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("{}: no {stat}.point_estimate", new.display()))
    };
    let mean_ns = point("mean")?;
    let median_ns = point("median")?;

    // Names from the directory layout `<group>/<function>[/<value>]/new`, used when
    // benchmark.json is missing.
    let rel = new
        .parent()
        .and_then(|p| p.strip_prefix(criterion).ok())
        .map(|p| {
            p.iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut group = rel.first().cloned().unwrap_or_default();
    let mut function = rel.get(1..).map(|r| r.join("/")).unwrap_or_default();
    let mut value = None;
    let mut throughput = None;

    if let Ok(meta) = read_json(&new.join("benchmark.json")) {
        if let Some(g) = meta.get("group_id").and_then(Value::as_str) {
            group = g.to_owned();
            function = meta
                .get("function_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            value = meta
                .get("value_str")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        throughput = meta.get("throughput").and_then(parse_throughput);
    }
    Ok(Entry {
        group,
        function,
        value,
        mean_ns,
        median_ns,
        throughput,
    })
}

fn parse_throughput(t: &Value) -> Option<Throughput> {
    if let Some(n) = t.get("Elements").and_then(Value::as_f64) {
        return Some(Throughput::Elements(n));
    }
    if let Some(n) = t
        .get("ElementsAndBytes")
        .and_then(|e| e.get("elements"))
        .and_then(Value::as_f64)
    {
        return Some(Throughput::Elements(n));
    }
    if let Some(n) = t.get("Bits").and_then(Value::as_f64) {
        return Some(Throughput::Bits(n));
    }
    t.get("Bytes")
        .or_else(|| t.get("BytesDecimal"))
        .and_then(Value::as_f64)
        .map(Throughput::Bytes)
}

fn format_time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

fn format_throughput(throughput: Option<Throughput>, mean_ns: f64) -> String {
    let Some(throughput) = throughput else {
        return "-".to_owned();
    };
    if mean_ns <= 0.0 {
        return "-".to_owned();
    }
    let per_second = |n: f64| n / (mean_ns * 1e-9);
    match throughput {
        Throughput::Elements(n) => {
            let rate = per_second(n);
            if rate >= 1e6 {
                format!("{:.2} M msg/s", rate / 1e6)
            } else if rate >= 1e3 {
                format!("{:.1} k msg/s", rate / 1e3)
            } else {
                format!("{rate:.0} msg/s")
            }
        }
        Throughput::Bytes(n) => format!("{:.1} MiB/s", per_second(n) / (1024.0 * 1024.0)),
        Throughput::Bits(n) => format!("{:.1} Mbit/s", per_second(n) / 1e6),
    }
}

/// Renders the plain-text table (for the terminal) and the markdown report.
fn render(entries: &[Entry]) -> (String, String) {
    let mut groups: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in entries {
        groups.entry(&entry.group).or_default().push(entry);
    }
    let ratio_header = format!("vs {BASELINE}");
    let headers = [
        "benchmark",
        "mean",
        "median",
        ratio_header.as_str(),
        "throughput",
    ];
    let mut text = String::new();
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmark report\n");
    let _ = writeln!(
        md,
        "Criterion point estimates per iteration. `{ratio_header}` is the mean time divided by the mean \
         time of `{BASELINE}` in the same group and input (below 1.00x = faster than the baseline)."
    );
    for (group, list) in groups {
        let rows: Vec<[String; 5]> = list
            .iter()
            .map(|e| {
                let baseline = list
                    .iter()
                    .find(|b| b.function == BASELINE && b.value == e.value)
                    .map(|b| b.mean_ns);
                let ratio = match baseline {
                    Some(b) if b > 0.0 => format!("{:.2}x", e.mean_ns / b),
                    _ => "-".to_owned(),
                };
                [
                    e.name(),
                    format_time(e.mean_ns),
                    format_time(e.median_ns),
                    ratio,
                    format_throughput(e.throughput, e.mean_ns),
                ]
            })
            .collect();

        let mut widths = headers.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[&str]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w.saturating_sub(cell.chars().count());
                if i == 0 {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str("  ");
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                }
            }
            s.trim_end().to_owned()
        };
        let _ = writeln!(text, "\n{group}");
        let _ = writeln!(text, "{}", line(&headers));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
        let _ = writeln!(text, "{}", line(&rule));
        for row in &rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            let _ = writeln!(text, "{}", line(&cells));
        }

        let _ = writeln!(md, "\n## {group}\n");
        let _ = writeln!(md, "| {} |", headers.join(" | "));
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        for row in &rows {
            let _ = writeln!(md, "| {} |", row.join(" | "));
        }
    }
    (text, md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(group: &str, function: &str, mean_ns: f64, throughput: Option<Throughput>) -> Entry {
        Entry {
            group: group.to_owned(),
            function: function.to_owned(),
            value: None,
            mean_ns,
            median_ns: mean_ns,
            throughput,
        }
    }

    #[test]
    fn ratio_against_baseline_and_throughput() {
        let entries = [
            entry("echo", "tidings", 500.0, Some(Throughput::Elements(1000.0))),
            entry("echo", BASELINE, 1000.0, None),
            entry("other", "tidings", 10.0, None),
        ];
        let (text, md) = render(&entries);
        assert!(text.contains("0.50x"), "{text}");
        assert!(text.contains("1.00x"), "{text}");
        assert!(text.contains("2000.00 M msg/s"), "{text}");
        assert!(
            md.contains("| tidings | 500.0 ns | 500.0 ns | 0.50x | 2000.00 M msg/s |"),
            "{md}"
        );
        assert!(
            md.contains("| tidings | 10.0 ns | 10.0 ns | - | - |"),
            "{md}"
        );
    }

    #[test]
    fn times() {
        assert_eq!(format_time(12.0), "12.0 ns");
        assert_eq!(format_time(12_345.0), "12.35 µs");
        assert_eq!(format_time(2.5e6), "2.50 ms");
    }
}
