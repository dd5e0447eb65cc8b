//! `cargo xtask docs`: builds the guide (docs/guide, mdBook) and checks it — every `{{#include}}` names a file and anchor that exist, and every internal link and anchor of the rendered HTML resolves.
//!
//! Why a checker here rather than `mdbook-linkcheck`: its last release (0.7.7) is built on the
//! mdbook 0.4 library and its renderer protocol, while `cargo xtask setup` installs mdbook 0.5
//! (the renderer context changed between them), and a second `cargo install` would add a
//! minute or more to a cold CI run. The guide's links are all internal (chapters, their
//! headings, the print page); external ones are not fetched (CI need not reach the web). The
//! rendered HTML is mdBook's own, regular output, so reading `href`/`src`/`id` attributes with
//! a small scanner is exact enough, and it checks what readers actually follow.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, Result};

/// The book's directory, relative to the workspace root.
pub(crate) const BOOK: &str = "docs/guide";

/// `cargo xtask docs`: include check, `mdbook build` into `<target>/guide`, link check.
pub(crate) fn run(root: &Path) -> Result<String> {
    let book = root.join(BOOK);
    let includes = check_includes(&book.join("src"))?;
    if util::first_line(Command::new("mdbook").arg("--version")).is_none() {
        return Err("mdbook is not installed: run `cargo xtask setup`".into());
    }
    let out = util::target_dir(root).join("guide");
    util::run(
        Command::new("mdbook")
            .arg("build")
            .arg(&book)
            .arg("--dest-dir")
            .arg(&out),
    )?;
    let report = check_links(&out)?;
    let summary = format!(
        "{includes} includes, {} pages, {} internal links checked, 0 broken (book in {})",
        report.pages,
        report.links,
        out.display()
    );
    println!("docs: {summary}");
    Ok(summary)
}

/// Every `{{#include PATH:ANCHOR}}` (or `{{#include PATH}}`) in the book's Markdown names an
/// existing file and, if given, an anchor that file opens with `ANCHOR: name` and closes with
/// `ANCHOR_END: name`. mdBook only warns about a missing anchor and renders nothing.
fn check_includes(src: &Path) -> Result<usize> {
    let mut count = 0;
    let mut broken = Vec::new();
    for md in files(src, "md")? {
        let text = read(&md)?;
        let dir = md.parent().unwrap_or(src);
        for (line_no, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(start) = rest.find("{{#include ") {
                let after = &rest[start + "{{#include ".len()..];
                let Some(end) = after.find("}}") else { break };
                let spec = after[..end].trim();
                rest = &after[end..];
                count += 1;
                let (path, anchor) = match spec.rsplit_once(':') {
                    Some((p, a)) if !a.chars().all(|c| c.is_ascii_digit()) => (p, Some(a)),
                    _ => (spec, None),
                };
                let where_ = format!("{}:{}", md.display(), line_no + 1);
                let file = dir.join(path);
                let Ok(code) = fs::read_to_string(&file) else {
                    broken.push(format!("{where_}: no file {}", file.display()));
                    continue;
                };
                if let Some(a) = anchor {
                    let open = format!("ANCHOR: {a}");
                    let close = format!("ANCHOR_END: {a}");
                    let has = |needle: &str| code.lines().any(|l| l.trim_end().ends_with(needle));
                    if !has(&open) || !has(&close) {
                        broken.push(format!("{where_}: no anchor `{a}` in {}", file.display()));
                    }
                }
            }
        }
    }
    if broken.is_empty() {
        Ok(count)
    } else {
        Err(format!(
            "{} broken include(s):\n  {}",
            broken.len(),
            broken.join("\n  ")
        ))
    }
}

/// What the link check saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkReport {
    pub(crate) pages: usize,
    pub(crate) links: usize,
}

/// Checks every relative `href`/`src` of every `.html` page under `out`: the file exists and,
/// for `#fragment`, the target page has that `id`.
pub(crate) fn check_links(out: &Path) -> Result<LinkReport> {
    let pages = files(out, "html")?;
    let mut ids: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut texts = Vec::new();
    for page in &pages {
        let text = read(page)?;
        ids.insert(page.clone(), attributes(&text, "id").into_iter().collect());
        texts.push((page.clone(), text));
    }
    let mut links = 0;
    let mut broken = Vec::new();
    for (page, text) in &texts {
        // mdBook's 404 page resolves its links against `site-url`, not its own location.
        if page.file_name().is_some_and(|n| n == "404.html") {
            continue;
        }
        let dir = page.parent().unwrap_or(out);
        let mut targets = attributes(text, "href");
        targets.extend(attributes(text, "src"));
        for target in targets {
            if is_external(&target) {
                continue;
            }
            links += 1;
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let path = path.split('?').next().unwrap_or_default();
            let file = if path.is_empty() {
                page.clone()
            } else {
                let f = normalize(&dir.join(path));
                if path.ends_with('/') || f.is_dir() {
                    f.join("index.html")
                } else {
                    f
                }
            };
            let rel = util::rel(out, page);
            if !file.is_file() {
                broken.push(format!("{rel}: `{target}`: no such file"));
                continue;
            }
            if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
                let found = ids.get(&file).is_some_and(|set| set.contains(fragment));
                if !found {
                    broken.push(format!("{rel}: `{target}`: no id `{fragment}` there"));
                }
            }
        }
    }
    if broken.is_empty() {
        Ok(LinkReport {
            pages: pages.len(),
            links,
        })
    } else {
        Err(format!(
            "{} broken link(s) in the guide:\n  {}",
            broken.len(),
            broken.join("\n  ")
        ))
    }
}

fn is_external(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    lower.starts_with("//")
        || ["http:", "https:", "mailto:", "data:", "javascript:", "tel:"]
            .iter()
            .any(|s| lower.starts_with(s))
}

/// Values of `name="..."` (or `name='...'`) attributes, entity `&amp;` decoded. Only whole
/// attribute names count (`data-id=` is not `id=`).
pub(crate) fn attributes(html: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = html.as_bytes();
    let pattern = format!("{name}=");
    let mut from = 0;
    while let Some(i) = html[from..].find(&pattern) {
        let at = from + i;
        from = at + pattern.len();
        let before = at.checked_sub(1).map(|b| bytes[b]);
        if before.is_some_and(|b| !(b == b' ' || b == b'\n' || b == b'\t' || b == b'\r')) {
            continue;
        }
        let Some(&quote) = bytes.get(from) else { break };
        if quote != b'"' && quote != b'\'' {
            continue;
        }
        let start = from + 1;
        let Some(len) = html[start..].find(quote as char) else {
            break;
        };
        out.push(html[start..start + len].replace("&amp;", "&"));
        from = start + len;
    }
    out
}

/// `a/b/../c` → `a/c` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Files under `dir` (recursively) ending in `.ext`, sorted.
fn files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).map_err(|e| format!("reading {}: {e}", d.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("reading {}: {e}", d.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_read_whole() {
        let html =
            r##"<a href="a.html#x" data-href="no">t</a><h2 id="x">x</h2><p data-id="y" id='z'>"##;
        assert_eq!(attributes(html, "href"), ["a.html#x"]);
        assert_eq!(attributes(html, "id"), ["x", "z"]);
    }

    #[test]
    fn broken_links_and_anchors_are_found() {
        let dir = std::env::temp_dir().join(format!("xtask-links-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(
            dir.join("index.html"),
            r##"<a href="sub/p.html#here">ok</a> <a href="https://x.invalid/">ext</a> <a href="#top">self</a><div id="top"></div>"##,
        )
        .unwrap();
        fs::write(
            dir.join("sub/p.html"),
            r#"<h1 id="here"></h1><a href="../index.html">up</a>"#,
        )
        .unwrap();
        assert_eq!(
            check_links(&dir).unwrap(),
            LinkReport { pages: 2, links: 3 }
        );
        fs::write(
            dir.join("sub/q.html"),
            r##"<a href="p.html#gone">x</a><a href="nope.html">y</a>"##,
        )
        .unwrap();
        let err = check_links(&dir).unwrap_err();
        assert!(err.contains("2 broken link(s)"), "{err}");
        assert!(
            err.contains("no id `gone`") && err.contains("nope.html"),
            "{err}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
