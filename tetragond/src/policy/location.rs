//! Where each node of a YAML document is. The typed model stays plain data;
//! checks made after parsing name a [`NodePath`], and this index turns it
//! back into a line and column.

use std::collections::HashMap;
use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document root, e.g. `spec.kprobes[0].selectors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NodePath(Vec<Segment>);

impl NodePath {
    pub fn root() -> Self {
        NodePath(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        self.with(Segment::Key(key.to_string()))
    }

    pub fn index(&self, index: usize) -> Self {
        self.with(Segment::Index(index))
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// This path followed by `rest`.
    pub fn join(&self, rest: &NodePath) -> Self {
        let mut path = self.clone();
        path.0.extend(rest.0.iter().cloned());
        path
    }

    /// The rest of this path after `prefix`, if it starts with it.
    pub fn strip_prefix(&self, prefix: &NodePath) -> Option<NodePath> {
        self.0
            .strip_prefix(prefix.0.as_slice())
            .map(|rest| NodePath(rest.to_vec()))
    }

    /// Drops the last segment; false at the root.
    pub fn pop(&mut self) -> bool {
        self.0.pop().is_some()
    }

    fn with(&self, segment: Segment) -> Self {
        let mut path = self.clone();
        path.0.push(segment);
        path
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub const START: Position = Position { line: 1, column: 1 };
}

/// Which part of a mapping entry to point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The key, e.g. `selectors:` for "too many selectors".
    Key,
    /// The value, e.g. `bogus` in `value: bogus`.
    Value,
}

/// Positions of the keys and values of the first document of a YAML text.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    keys: HashMap<NodePath, Position>,
    values: HashMap<NodePath, Position>,
}

impl Positions {
    /// Best effort: indexing stops at a syntax error, and lookups of what was
    /// not reached fall back to the nearest indexed ancestor.
    pub fn index(text: &str) -> Self {
        let mut walker = Walker::default();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let position = Position {
                line: span.start.line().max(1),
                column: span.start.col() + 1,
            };
            if !walker.event(event, position) {
                break;
            }
        }
        walker.positions
    }

    /// The position of `path` (or of its nearest known ancestor).
    pub fn find(&self, path: &NodePath, part: Part) -> Position {
        let mut path = path.clone();
        loop {
            if let Some(position) = self.lookup(&path, part) {
                return position;
            }
            if !path.pop() {
                return Position::START;
            }
        }
    }

    fn lookup(&self, path: &NodePath, part: Part) -> Option<Position> {
        let (first, second) = match part {
            Part::Key => (&self.keys, &self.values),
            Part::Value => (&self.values, &self.keys),
        };
        first.get(path).or_else(|| second.get(path)).copied()
    }
}

enum Frame {
    /// `key` is the path of the entry whose value comes next, if a key was read.
    Map {
        path: NodePath,
        key: Option<NodePath>,
    },
    Seq {
        path: NodePath,
        next: usize,
    },
}

#[derive(Default)]
struct Walker {
    frames: Vec<Frame>,
    positions: Positions,
}

impl Walker {
    /// Returns false once the first document is over.
    fn event(&mut self, event: Event<'_>, position: Position) -> bool {
        match event {
            Event::Scalar(text, ..) => self.scalar(&text, position),
            Event::Alias(_) => self.scalar("*", position),
            Event::MappingStart(..) => self.open(position, true),
            Event::SequenceStart(..) => self.open(position, false),
            Event::MappingEnd | Event::SequenceEnd => {
                self.frames.pop();
            }
            Event::DocumentEnd => return false,
            _ => {}
        }
        true
    }

    fn scalar(&mut self, text: &str, position: Position) {
        if let Some(Frame::Map {
            path,
            key: key @ None,
        }) = self.frames.last_mut()
        {
            let entry = path.key(text);
            self.positions.keys.entry(entry.clone()).or_insert(position);
            *key = Some(entry);
            return;
        }
        let path = self.value_path();
        self.positions.values.entry(path).or_insert(position);
    }

    fn open(&mut self, position: Position, mapping: bool) {
        let path = match self.frames.last_mut() {
            // A collection used as a mapping key: give it a path nothing asks for.
            Some(Frame::Map {
                path,
                key: key @ None,
            }) => {
                let complex = path.key("?");
                *key = Some(complex.clone());
                complex.key("?")
            }
            _ => {
                let path = self.value_path();
                self.positions
                    .values
                    .entry(path.clone())
                    .or_insert(position);
                path
            }
        };
        self.frames.push(if mapping {
            Frame::Map { path, key: None }
        } else {
            Frame::Seq { path, next: 0 }
        });
    }

    fn value_path(&mut self) -> NodePath {
        match self.frames.last_mut() {
            None => NodePath::root(),
            Some(Frame::Map { path, key }) => key.take().unwrap_or_else(|| path.clone()),
            Some(Frame::Seq { path, next }) => {
                *next += 1;
                path.index(*next - 1)
            }
        }
    }
}

/// 1-based line and column of a byte offset of `text`.
pub fn position_of_offset(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
apiVersion: v1
spec:
  kprobes:
  - call: a
    selectors:
    - matchArgs: [{index: 1, operator: Equal}]
  options:
  - name: policy-mode
    value: bogus
";

    fn spec() -> NodePath {
        NodePath::root().key("spec")
    }

    #[test]
    fn finds_keys_and_values() {
        let p = Positions::index(DOC);
        let sel = spec().key("kprobes").index(0).key("selectors");
        assert_eq!(p.find(&sel, Part::Key), Position { line: 5, column: 5 });
        assert_eq!(p.find(&sel, Part::Value), Position { line: 6, column: 7 });
        let value = spec().key("options").index(0).key("value");
        assert_eq!(
            p.find(&value, Part::Value),
            Position {
                line: 9,
                column: 12
            }
        );
        assert_eq!(p.find(&value, Part::Key), Position { line: 9, column: 5 });
    }

    #[test]
    fn flow_collections_are_indexed() {
        let p = Positions::index(DOC);
        let op = spec()
            .key("kprobes")
            .index(0)
            .key("selectors")
            .index(0)
            .key("matchArgs")
            .index(0)
            .key("operator");
        assert_eq!(
            p.find(&op, Part::Value),
            Position {
                line: 6,
                column: 40
            }
        );
    }

    #[test]
    fn unknown_paths_fall_back_to_ancestors() {
        let p = Positions::index(DOC);
        let missing = spec().key("kprobes").index(0).key("args").index(3);
        assert_eq!(p.find(&missing, Part::Key), Position { line: 4, column: 5 });
        assert_eq!(
            p.find(&NodePath::root().key("nope"), Part::Key),
            Position::START
        );
    }

    #[test]
    fn stops_at_syntax_errors() {
        let p = Positions::index("a: 1\nb: [\n");
        assert_eq!(
            p.find(&NodePath::root().key("a"), Part::Value),
            Position { line: 1, column: 4 }
        );
    }

    #[test]
    fn complex_keys_do_not_derail_the_walk() {
        let p = Positions::index("? [k]\n: v\nafter: 2\n");
        assert_eq!(
            p.find(&NodePath::root().key("after"), Part::Value),
            Position { line: 3, column: 8 }
        );
    }

    #[test]
    fn path_display() {
        let path = spec().key("kprobes").index(2).key("selectors");
        assert_eq!(path.to_string(), "spec.kprobes[2].selectors");
        assert_eq!(NodePath::root().to_string(), "(document)");
    }

    #[test]
    fn offsets_to_positions() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(position_of_offset(text, 0), Position { line: 1, column: 1 });
        assert_eq!(position_of_offset(text, 6), Position { line: 2, column: 1 });
        // "bé" is 3 bytes, 2 characters.
        assert_eq!(
            position_of_offset(text, 10),
            Position { line: 2, column: 4 }
        );
        assert_eq!(
            position_of_offset(text, 999),
            Position { line: 3, column: 1 }
        );
    }
}
