//! No import cycles between the top-level modules of the library.
//!
//! Each module of `src/` (a file, or a folder with everything inside it) may
//! import modules below it only, so the layers read bottom-up: kernel facts
//! and the policy model at the ground, then compiling, the kernel programs,
//! the store, events, the service. The graph is read from the source text:
//! every `crate::` path (and `super::` path that climbs to the crate root)
//! outside test code names the module it reaches by its first segment.
//!
//! Test code (`#[cfg(test)]` items and files declared under it) is left
//! out: a test may check a module's output through a higher layer, as the
//! compile tests render a hook's event kind, without the module depending
//! on it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// from -> to -> files of `from` that import `to`.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn top_level_modules_import_each_other_in_one_direction() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    assert!(graph.len() > 10, "too few modules read: {graph:?}");
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules of tetragond/src:\n{}",
        cycles.join("\n")
    );
}

/// Files under `src/` (paths relative to it, `/`-separated), without the
/// binaries, which sit above every module.
fn source_files(src: &Path) -> Vec<String> {
    fn walk(dir: &Path, src: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, src, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).expect("under src");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(src, src, &mut out);
    out.retain(|f| !f.starts_with("bin/") && f != "lib.rs");
    out.sort();
    out
}

/// The top-level module a file belongs to.
fn module_of(file: &str) -> &str {
    let first = file.split('/').next().unwrap_or(file);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// How many `super::` reach the crate root from a file's own module.
fn depth_of(file: &str) -> usize {
    let parts: Vec<&str> = file.trim_end_matches(".rs").split('/').collect();
    if parts.last() == Some(&"mod") {
        parts.len() - 1
    } else {
        parts.len()
    }
}

fn import_graph(src: &Path) -> Graph {
    let files = source_files(src);
    let modules: BTreeSet<&str> = files.iter().map(|f| module_of(f)).collect();
    let mut test_files = BTreeSet::new();
    let mut texts = BTreeMap::new();
    for file in &files {
        let raw = fs::read_to_string(src.join(file)).expect("read source");
        let (code, test_mods) = without_tests(&blank_comments_and_literals(&raw));
        for name in test_mods {
            test_files.extend(child_files(file, &name));
        }
        texts.insert(file.clone(), code);
    }
    let mut graph = Graph::new();
    for (file, code) in &texts {
        let from = module_of(file);
        graph.entry(from.to_string()).or_default();
        if test_files.contains(file) {
            continue;
        }
        for to in reached_modules(code, depth_of(file)) {
            assert!(
                modules.contains(to.as_str()),
                "{file}: `{to}` is not a module of src/"
            );
            if to != from {
                graph
                    .entry(from.to_string())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(file.clone());
            }
        }
    }
    graph
}

/// The files a `mod name;` in `file` may stand in.
fn child_files(file: &str, name: &str) -> [String; 2] {
    let dir = match file.rsplit_once('/') {
        Some((dir, "mod.rs")) => format!("{dir}/"),
        _ if file == "mod.rs" => String::new(),
        _ => format!("{}/", file.trim_end_matches(".rs")),
    };
    [format!("{dir}{name}.rs"), format!("{dir}{name}/mod.rs")]
}

/// The source with comments, string and char literals blanked out, so that
/// only code is left to read (and braces balance).
fn blank_comments_and_literals(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, from: &[char]| {
        out.extend(from.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    };
    while i < chars.len() {
        let rest = &chars[i..];
        let end = if rest.starts_with(&['/', '/']) {
            rest.iter().position(|&c| c == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            block_comment_len(rest)
        } else if rest[0] == '"' {
            quoted_len(rest, '"')
        } else if rest[0] == 'r' && raw_string_len(rest).is_some() {
            raw_string_len(rest).unwrap_or(1)
        } else if rest[0] == '\'' && (rest.get(1) == Some(&'\\') || rest.get(2) == Some(&'\'')) {
            quoted_len(rest, '\'')
        } else {
            out.push(rest[0]);
            i += 1;
            continue;
        };
        blank(&mut out, &rest[..end]);
        i += end;
    }
    out
}

fn block_comment_len(s: &[char]) -> usize {
    let (mut depth, mut i) = (0, 0);
    while i < s.len() {
        if s[i..].starts_with(&['/', '*']) {
            depth += 1;
            i += 2;
        } else if s[i..].starts_with(&['*', '/']) {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    s.len()
}

/// Length of a literal opened by `quote` at `s[0]`, escapes included.
fn quoted_len(s: &[char], quote: char) -> usize {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            '\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    s.len()
}

/// Length of a raw string `r#"..."#` at `s[0]`, if one starts there.
fn raw_string_len(s: &[char]) -> Option<usize> {
    let hashes = s[1..].iter().take_while(|&&c| c == '#').count();
    if s.get(1 + hashes) != Some(&'"') {
        return None;
    }
    let close: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    let body = 2 + hashes;
    let end = (body..s.len()).find(|&i| s[i..].starts_with(&close))?;
    Some(end + close.len())
}

/// The code without `#[cfg(test)]` items, and the names of the test modules
/// declared as files (`#[cfg(test)] mod tests;`).
fn without_tests(code: &str) -> (String, Vec<String>) {
    const MARK: &str = "#[cfg(test)]";
    let mut out = code.to_string();
    let mut test_mods = Vec::new();
    while let Some(at) = out.find(MARK) {
        let item = at + MARK.len();
        let end = item_end(&out, item);
        let words: Vec<&str> = out[item..end]
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        if out[..end].ends_with(';') {
            if let Some(i) = words.iter().position(|&w| w == "mod") {
                test_mods.push(words[i + 1].to_string());
            }
        }
        out.replace_range(at..end, &" ".repeat(end - at));
    }
    (out, test_mods)
}

/// Where the item starting at `from` ends: after its `;` or its body's `}`.
fn item_end(code: &str, from: usize) -> usize {
    let bytes = code.as_bytes();
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        match b {
            // An attribute of the same item: `#[...]` brackets, skipped whole.
            b'[' | b'(' => depth += 1,
            b']' | b')' => depth = depth.saturating_sub(1),
            b';' if depth == 0 => return i + 1,
            b'{' if depth == 0 => return from + matching_brace(&code[from..], i - from),
            _ => {}
        }
    }
    code.len()
}

/// Index just past the `}` closing the `{` at `open`.
fn matching_brace(code: &str, open: usize) -> usize {
    let mut depth = 0usize;
    for (i, b) in code.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// Top-level modules named by the code's `crate::` paths, and by `super::`
/// paths that climb to the crate root (`depth` is the file's module depth).
fn reached_modules(code: &str, depth: usize) -> BTreeSet<String> {
    let inline_mods = inline_mod_spans(code);
    let mut out = BTreeSet::new();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut at = 0;
    while let Some(found) = code[at..].find("crate::").map(|i| at + i) {
        at = found + "crate::".len();
        if code[..found].ends_with(is_ident) {
            continue;
        }
        out.extend(first_segments(&code[at..]));
    }
    at = 0;
    while let Some(found) = code[at..].find("super::").map(|i| at + i) {
        if code[..found].ends_with(is_ident) || code[..found].ends_with("::") {
            at = found + 1;
            continue;
        }
        let mut climbs = 0;
        at = found;
        while code[at..].starts_with("super::") {
            climbs += 1;
            at += "super::".len();
        }
        let nesting = inline_mods.iter().filter(|s| s.contains(&found)).count();
        if climbs == depth + nesting {
            out.extend(first_segments(&code[at..]));
        }
    }
    out
}

/// The byte spans of inline `mod name { ... }` bodies.
fn inline_mod_spans(code: &str) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(found) = code[at..].find("mod ").map(|i| at + i) {
        at = found + 4;
        if code[..found].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at..];
        let name_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let after = rest[name_len..].trim_start();
        if name_len > 0 && after.starts_with('{') {
            let open = code.len() - after.len();
            spans.push(open..matching_brace(code, open));
        }
    }
    spans
}

/// The first segment of a path, or of each path in a `{a::b, c}` group.
fn first_segments(path: &str) -> Vec<String> {
    let ident = |s: &str| {
        let s = s.trim_start();
        let n = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        s[..n].to_string()
    };
    let Some(group) = path.strip_prefix('{') else {
        return vec![ident(path)];
    };
    let body = &group[..matching_brace(path, 0) - 2];
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&body[start..]);
    items
        .into_iter()
        .map(ident)
        .filter(|s| !s.is_empty() && s != "self")
        .collect()
}

/// One line per strongly connected set of modules: a cycle through it, each
/// edge with the files that make it.
fn cycles(graph: &Graph) -> Vec<String> {
    let mut lines = Vec::new();
    let mut seen = BTreeSet::new();
    for start in graph.keys() {
        if seen.contains(start) {
            continue;
        }
        let Some(path) = shortest_path(graph, start, start) else {
            continue;
        };
        seen.extend(path.iter().cloned());
        let mut line = start.clone();
        for pair in path.windows(2) {
            let files = &graph[&pair[0]][&pair[1]];
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            line += &format!(" -> {} ({})", pair[1], files.join(", "));
        }
        lines.push(line);
    }
    lines
}

/// Breadth first: the shortest import path from `from` to `to`, both ends
/// included, of at least one edge.
fn shortest_path(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(node).into_iter().flat_map(|m| m.keys()) {
            if next == to {
                let mut path = vec![to.to_string(), node.to_string()];
                let mut at = node;
                while at != from {
                    at = parent[at];
                    path.push(at.to_string());
                }
                path.reverse();
                return Some(path);
            }
            if !parent.contains_key(next.as_str()) {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

mod reader {
    use super::*;

    fn reached(src: &str, depth: usize) -> Vec<String> {
        let (code, _) = without_tests(&blank_comments_and_literals(src));
        reached_modules(&code, depth).into_iter().collect()
    }

    #[test]
    fn paths_groups_and_climbs() {
        let src = "use crate::{a::B, b::{c, d}, self};\nfn f() { crate::c::g(); super::d::h(); }";
        assert_eq!(reached(src, 1), ["a", "b", "c", "d"]);
        // One level deeper, a single `super::` stays inside the module.
        assert_eq!(reached(src, 2), ["a", "b", "c"]);
    }

    #[test]
    fn comments_literals_and_tests_are_not_imports() {
        let src = r##"
            //! See [`crate::a`].
            /* crate::b */
            const S: &str = "crate::c {";
            const R: &str = r#"crate::d"#;
            const C: char = '{';
            fn f<'a>(x: &'a str) -> &'a str { x }
            #[cfg(test)]
            mod tests { use crate::e; fn g() { super::super::f::x(); } }
            #[cfg(test)]
            mod more;
            use crate::g;
        "##;
        assert_eq!(reached(src, 1), ["g"]);
        let (_, test_mods) = without_tests(&blank_comments_and_literals(src));
        assert_eq!(test_mods, ["more"]);
        assert_eq!(child_files("x/mod.rs", "more")[0], "x/more.rs");
        assert_eq!(child_files("x.rs", "more")[1], "x/more/mod.rs");
    }

    #[test]
    fn a_cycle_is_named_with_its_files() {
        let mut graph = Graph::new();
        let mut edge = |a: &str, b: &str, f: &str| {
            graph
                .entry(a.into())
                .or_default()
                .entry(b.into())
                .or_default()
                .insert(f.into());
        };
        edge("a", "b", "a.rs");
        edge("b", "c", "b/mod.rs");
        edge("c", "a", "c.rs");
        edge("c", "d", "c.rs");
        assert_eq!(
            cycles(&graph),
            ["a -> b (a.rs) -> c (b/mod.rs) -> a (c.rs)"]
        );
    }
}
