//! Checks the documentation's relative links: every `[text](target)` in `README.md` and
//! `docs/*.md` that is not an `http(s)://` or `mailto:` address must name a file that
//! exists, and any `#anchor` must match a heading of its target (GitHub's slugs). Also
//! keeps the README a front door: at most 300 lines.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The most lines `README.md` may have; reference material belongs in `docs/`.
const README_MAX_LINES: usize = 300;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `README.md` and every `docs/*.md`, sorted.
fn documentation_files() -> Vec<PathBuf> {
    let root = repo_root();
    let docs = root.join("docs");
    let mut files: Vec<PathBuf> = fs::read_dir(&docs)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", docs.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", docs.display()))
                .path()
        })
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    files.sort();
    files.insert(0, root.join("README.md"));
    files
}

/// The paragraphs (runs of non-blank lines) of a markdown text that lie outside fenced
/// code blocks.
fn prose_paragraphs(text: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut paragraphs = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let is_fence = trimmed.starts_with("```") || trimmed.starts_with("~~~");
        if is_fence || in_fence || trimmed.is_empty() {
            if !current.is_empty() {
                paragraphs.push(current.join("\n"));
                current.clear();
            }
            if is_fence {
                in_fence = !in_fence;
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        paragraphs.push(current.join("\n"));
    }
    paragraphs
}

/// A paragraph with its inline code spans (`` `...` ``, which may run over a line break)
/// removed, so code is never read as a link. An unmatched backtick is kept as text.
fn without_code_spans(paragraph: &str) -> String {
    let parts: Vec<&str> = paragraph.split('`').collect();
    let last = parts.len() - 1;
    let mut prose = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i == last && i % 2 == 1 {
            // An odd number of backticks: the last one opens no span.
            prose.push('`');
            prose.push_str(part);
        } else if i % 2 == 0 {
            prose.push_str(part);
        }
    }
    prose
}

/// The targets of the inline links `[text](target)` (and images) of a markdown text, outside
/// code, without any `"title"`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for paragraph in prose_paragraphs(text) {
        let prose = without_code_spans(&paragraph);
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = after[..end].split_whitespace().next().unwrap_or("");
            targets.push(target.trim_matches(['<', '>']).to_string());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lowercase, punctuation other than `-` and `_` dropped,
/// each space a `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown text's ATX headings; a repeated slug gets `-1`, `-2`, ...
/// like GitHub's.
fn heading_anchors(text: &str) -> HashSet<String> {
    let mut anchors = HashSet::new();
    for line in prose_paragraphs(text).iter().flat_map(|p| p.lines()) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(line[hashes..].trim().trim_end_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while anchors.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        anchors.insert(anchor);
    }
    anchors
}

fn is_external(target: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| target.starts_with(scheme))
}

/// Every relative link of the documentation: (linking file, target as written, the file it
/// names, its anchor if any).
fn relative_links() -> Vec<(PathBuf, String, PathBuf, Option<String>)> {
    let mut links = Vec::new();
    for file in documentation_files() {
        let dir = file.parent().unwrap_or(Path::new("."));
        for target in link_targets(&read(&file)) {
            if target.is_empty() || is_external(&target) {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor.to_string())),
                None => (target.as_str(), None),
            };
            let named = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            links.push((file.clone(), target.clone(), named, anchor));
        }
    }
    links
}

fn shown(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn readme_has_at_most_300_lines() {
    let lines = read(&repo_root().join("README.md")).lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move reference material to docs/"
    );
}

#[test]
fn every_relative_link_names_an_existing_file() {
    let links = relative_links();
    assert!(
        links.len() > 10,
        "only {} relative links found: is the link extraction broken?",
        links.len()
    );
    let missing: Vec<String> = links
        .iter()
        .filter(|(_, _, named, _)| !named.exists())
        .map(|(file, target, _, _)| format!("{}: ({target})", shown(file)))
        .collect();
    assert!(
        missing.is_empty(),
        "links to files that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_anchor_matches_a_heading_of_its_target() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for (file, target, named, anchor) in relative_links() {
        let Some(anchor) = anchor else { continue };
        checked += 1;
        let is_markdown = named.extension().is_some_and(|ext| ext == "md");
        if !is_markdown || !named.is_file() {
            broken.push(format!(
                "{}: ({target}) is not a markdown file",
                shown(&file)
            ));
        } else if !heading_anchors(&read(&named)).contains(&anchor) {
            broken.push(format!(
                "{}: ({target}) has no heading #{anchor} in {}",
                shown(&file),
                shown(&named)
            ));
        }
    }
    assert!(checked > 0, "no anchored links found");
    assert!(
        broken.is_empty(),
        "anchors without a heading:\n{}",
        broken.join("\n")
    );
}

#[test]
fn slugs_follow_githubs_rules() {
    assert_eq!(slug("Set-up: two commands"), "set-up-two-commands");
    assert_eq!(
        slug("`GET /api/sessions/{session_id}/`"),
        "get-apisessionssession_id"
    );
    assert_eq!(
        slug("The API description: `GET /api/schema/` and `GET /redoc/`"),
        "the-api-description-get-apischema-and-get-redoc"
    );
    let anchors = heading_anchors("# A\n```\n# not a heading\n```\n## A\n#### B.c\n");
    let expected: HashSet<String> = ["a", "a-1", "bc"].map(String::from).into();
    assert_eq!(anchors, expected);
}

#[test]
fn links_in_code_are_not_links() {
    let text = "[a](x.md) `[b](y.md)`\n```\n[c](z.md)\n```\n[d](w.md#e \"title\")\n\
                `a span\nover two lines [e](v.md)` [`f`](u.md)\n\none ` [g](t.md)";
    assert_eq!(link_targets(text), ["x.md", "w.md#e", "u.md", "t.md"]);
}
