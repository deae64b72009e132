//! A small JSON Schema checker for docs/events.schema.json: the keywords
//! that file uses, and nothing else. A keyword it does not know is an
//! error, so the schema cannot silently say more than is checked.

use regex_lite::Regex;
use serde_json::Value;

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
];

pub struct Schema {
    root: Value,
}

impl Schema {
    pub fn load(path: &std::path::Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Schema {
            root: serde_json::from_str(&text).expect("the schema is JSON"),
        }
    }

    /// Errors, each with the JSON path of the value at fault.
    pub fn validate(&self, value: &Value) -> Vec<String> {
        let mut errors = vec![];
        self.check(&self.root, value, "$", &mut errors);
        errors
    }

    fn resolve(&self, reference: &str) -> &Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $ref supported: {reference}"));
        self.root
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {reference}"))
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(keywords) = schema.as_object() else {
            match schema {
                Value::Bool(true) => return,
                Value::Bool(false) => return errors.push(format!("{at}: not allowed")),
                other => panic!("schema at {at} is not an object: {other}"),
            }
        };
        for (key, arg) in keywords {
            match key.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "$ref" => self.check(
                    self.resolve(arg.as_str().expect("$ref string")),
                    v,
                    at,
                    errors,
                ),
                "type" => {
                    let types: Vec<&str> = match arg {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                        _ => panic!("bad type keyword"),
                    };
                    if !types.iter().any(|t| has_type(v, t)) {
                        errors.push(format!("{at}: {v} is not of type {types:?}"));
                    }
                }
                "enum" => {
                    if !arg.as_array().expect("enum array").contains(v) {
                        errors.push(format!("{at}: {v} not in {arg}"));
                    }
                }
                "const" => {
                    if arg != v {
                        errors.push(format!("{at}: {v} is not {arg}"));
                    }
                }
                "pattern" => {
                    if let Some(s) = v.as_str() {
                        let re =
                            Regex::new(arg.as_str().expect("pattern string")).expect("pattern");
                        if !re.is_match(s) {
                            errors.push(format!("{at}: {s:?} does not match {arg}"));
                        }
                    }
                }
                "minimum" | "maximum" => {
                    if let (Some(n), Some(limit)) = (v.as_f64(), arg.as_f64()) {
                        let ok = if key == "minimum" {
                            n >= limit
                        } else {
                            n <= limit
                        };
                        if !ok {
                            errors.push(format!("{at}: {n} beyond {key} {limit}"));
                        }
                    }
                }
                "required" => {
                    if let Some(obj) = v.as_object() {
                        for name in arg.as_array().expect("required array") {
                            let name = name.as_str().expect("required names");
                            if !obj.contains_key(name) {
                                errors.push(format!("{at}: missing {name}"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(obj) = v.as_object() {
                        for (name, sub) in arg.as_object().expect("properties object") {
                            if let Some(child) = obj.get(name) {
                                self.check(sub, child, &format!("{at}.{name}"), errors);
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(obj) = v.as_object() {
                        let known = keywords.get("properties").and_then(Value::as_object);
                        for (name, child) in obj {
                            if known.is_some_and(|k| k.contains_key(name)) {
                                continue;
                            }
                            match arg {
                                Value::Bool(false) => {
                                    errors.push(format!("{at}: unexpected key {name}"))
                                }
                                sub => self.check(sub, child, &format!("{at}.{name}"), errors),
                            }
                        }
                    }
                }
                "minProperties" | "maxProperties" => {
                    if let Some(obj) = v.as_object() {
                        let limit = arg.as_u64().expect("count") as usize;
                        let ok = if key == "minProperties" {
                            obj.len() >= limit
                        } else {
                            obj.len() <= limit
                        };
                        if !ok {
                            errors.push(format!("{at}: {} keys, {key} {limit}", obj.len()));
                        }
                    }
                }
                "minItems" => {
                    let limit = arg.as_u64().expect("count") as usize;
                    if let Some(items) = v.as_array().filter(|items| items.len() < limit) {
                        errors.push(format!("{at}: {} items, minItems {limit}", items.len()));
                    }
                }
                "items" => {
                    if let Some(items) = v.as_array() {
                        for (i, item) in items.iter().enumerate() {
                            self.check(arg, item, &format!("{at}[{i}]"), errors);
                        }
                    }
                }
                "allOf" => {
                    for sub in arg.as_array().expect("allOf array") {
                        self.check(sub, v, at, errors);
                    }
                }
                "anyOf" | "oneOf" => {
                    let results: Vec<Vec<String>> = arg
                        .as_array()
                        .expect("array")
                        .iter()
                        .map(|sub| {
                            let mut e = vec![];
                            self.check(sub, v, at, &mut e);
                            e
                        })
                        .collect();
                    let passing = results.iter().filter(|e| e.is_empty()).count();
                    let ok = if key == "oneOf" {
                        passing == 1
                    } else {
                        passing >= 1
                    };
                    if !ok {
                        // The closest alternative's errors say most.
                        let best = results.iter().min_by_key(|e| e.len()).cloned();
                        errors.push(format!(
                            "{at}: {passing} of the {key} alternatives match; nearest: {:?}",
                            best.unwrap_or_default()
                        ));
                    }
                }
                other => panic!("the schema checker does not support keyword {other:?} (at {at})"),
            }
        }
    }
}

fn has_type(v: &Value, ty: &str) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        other => panic!("unknown type {other}"),
    }
}
