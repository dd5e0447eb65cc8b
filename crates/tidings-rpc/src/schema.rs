//! The machine-readable description of an RPC service (JSON Schema 2020-12 of every method's params, result or items, and error) and the Markdown reference made from it.
//!
//! A `#[rpc]` trait's `{Trait}Api::schema()` builds it with [`SchemaBuilder`]:
//!
//! ```json
//! {
//!   "$schema": "https://json-schema.org/draft/2020-12/schema",
//!   "title": "Chat", "description": "…",
//!   "x-tidings": { "namespace": "chat", "protocol": "tidings.v1", "spec": "docs/protocol.md §9" },
//!   "methods": [
//!     { "name": "chat.send", "kind": "unary", "description": "…", "param_names": ["m"],
//!       "params": { "$ref": "#/$defs/Msg" }, "result": { … }, "error": { … } },
//!     { "name": "chat.history", "kind": "server_stream", "params": { … }, "item": { … } },
//!     { "name": "chat.relay", "kind": "bidi_stream", "params": { … }, "input": { … }, "item": { … } }
//!   ],
//!   "$defs": { "Msg": { … } }
//! }
//! ```
//!
//! `params` is the schema of the call's `data`: the one parameter itself, `null` for none, an
//! array (tuple) for several, named in order by `param_names`. [`markdown`] renders it as a
//! reference page; docs/rpc-schema/ holds the chat example's, checked current by a test.

use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::MethodKind;

/// Collects the methods of one service and their types.
pub struct SchemaBuilder {
    generator: SchemaGenerator,
    title: String,
    namespace: String,
    description: String,
    methods: Vec<Map<String, Value>>,
}

impl std::fmt::Debug for SchemaBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaBuilder")
            .field("title", &self.title)
            .field("methods", &self.methods.len())
            .finish_non_exhaustive()
    }
}

impl SchemaBuilder {
    /// A service named `title` whose methods are `namespace.*`.
    pub fn new(title: &str, namespace: &str, description: &str) -> Self {
        Self {
            generator: schemars::generate::SchemaSettings::draft2020_12().into_generator(),
            title: title.to_owned(),
            namespace: namespace.to_owned(),
            description: description.to_owned(),
            methods: Vec::new(),
        }
    }

    /// Adds method `name` taking params `P` and answering `R` (its result, or its items).
    pub fn method<P: JsonSchema, R: JsonSchema>(
        &mut self,
        name: &str,
        kind: MethodKind,
        description: &str,
        param_names: &[&str],
    ) -> &mut Self {
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        m.insert("kind".into(), kind.as_str().into());
        if !description.is_empty() {
            m.insert("description".into(), description.into());
        }
        m.insert("param_names".into(), json!(param_names));
        m.insert(
            "params".into(),
            self.generator.subschema_for::<P>().to_value(),
        );
        let out = match kind {
            MethodKind::Unary => "result",
            _ => "item",
        };
        m.insert(out.into(), self.generator.subschema_for::<R>().to_value());
        self.methods.push(m);
        self
    }

    /// The last method's own error type (sent with code `application`, its JSON in `data`).
    pub fn error<E: JsonSchema>(&mut self) -> &mut Self {
        let s = self.generator.subschema_for::<E>().to_value();
        if let Some(m) = self.methods.last_mut() {
            m.insert("error".into(), s);
        }
        self
    }

    /// The last method's client items (a bidirectional stream).
    pub fn input<I: JsonSchema>(&mut self) -> &mut Self {
        let s = self.generator.subschema_for::<I>().to_value();
        if let Some(m) = self.methods.last_mut() {
            m.insert("input".into(), s);
        }
        self
    }

    /// The schema document.
    pub fn finish(mut self) -> Value {
        let defs = self.generator.take_definitions(true);
        let mut doc = Map::new();
        doc.insert(
            "$schema".into(),
            "https://json-schema.org/draft/2020-12/schema".into(),
        );
        doc.insert("title".into(), self.title.into());
        if !self.description.is_empty() {
            doc.insert("description".into(), self.description.into());
        }
        doc.insert(
            "x-tidings".into(),
            json!({
                "namespace": self.namespace,
                "protocol": "tidings.v1",
                "spec": "docs/protocol.md §9",
            }),
        );
        doc.insert(
            "methods".into(),
            Value::Array(self.methods.into_iter().map(Value::Object).collect()),
        );
        doc.insert("$defs".into(), Value::Object(defs));
        Value::Object(doc)
    }
}

/// A short name for a schema, for tables: a `$ref`'s type name, a JSON type, or `any`.
fn type_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[`{name}`](#{})", name.to_lowercase());
    }
    if let Some(items) = schema.get("prefixItems").and_then(Value::as_array) {
        let parts: Vec<String> = items.iter().map(type_name).collect();
        return format!("[{}]", parts.join(", "));
    }
    match schema.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let item = schema.get("items").map_or("any".to_owned(), type_name);
            format!("array of {item}")
        }
        Some(Value::String(t)) => format!("`{t}`"),
        Some(Value::Array(ts)) => {
            let parts: Vec<String> = ts
                .iter()
                .filter_map(Value::as_str)
                .map(|t| format!("`{t}`"))
                .collect();
            parts.join(" or ")
        }
        _ => match schema {
            Value::Bool(true) => "any".to_owned(),
            other => format!("`{other}`"),
        },
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Renders a schema made by [`SchemaBuilder`] as a Markdown reference page.
pub fn markdown(schema: &Value) -> String {
    use std::fmt::Write as _;
    let title = schema.get("title").and_then(Value::as_str).unwrap_or("RPC");
    let ns = schema
        .pointer("/x-tidings/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let empty = Vec::new();
    let methods = schema
        .get("methods")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut out = String::new();
    let _ = writeln!(out, "# RPC `{title}` (`{ns}.*`)\n");
    let _ = writeln!(
        out,
        "<!-- generated from the `#[rpc]` trait `{title}` by its schema; do not edit -->\n"
    );
    if let Some(d) = schema.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{d}\n");
    }
    let _ = writeln!(
        out,
        "Frames: docs/protocol.md §9. A call's `data` is its params: the one parameter itself, \
         `null` for none, an array for several. Errors other than the listed ones use the codes \
         of §9; a method's own error has code `application` and its JSON in `data`. The JSON \
         Schema of everything below is the `.json` file beside this page.\n"
    );
    let _ = writeln!(out, "| method | kind | params | returns | error |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for m in methods {
        let name = m.get("name").and_then(Value::as_str).unwrap_or("?");
        let kind = m.get("kind").and_then(Value::as_str).unwrap_or("?");
        let params = param_cell(m);
        let returns = match (m.get("result"), m.get("item"), m.get("input")) {
            (Some(r), _, _) => type_name(r),
            (None, Some(i), Some(inp)) => {
                format!(
                    "items of {}; takes items of {}",
                    type_name(i),
                    type_name(inp)
                )
            }
            (None, Some(i), None) => format!("items of {}", type_name(i)),
            _ => "—".to_owned(),
        };
        let error = m.get("error").map_or("—".to_owned(), type_name);
        let _ = writeln!(
            out,
            "| `{name}` | {kind} | {} | {} | {} |",
            cell(&params),
            cell(&returns),
            cell(&error)
        );
    }
    let _ = writeln!(out);
    for m in methods {
        let name = m.get("name").and_then(Value::as_str).unwrap_or("?");
        let _ = writeln!(out, "## `{name}`\n");
        if let Some(d) = m.get("description").and_then(Value::as_str) {
            let _ = writeln!(out, "{d}\n");
        }
        let frame = match m.get("kind").and_then(Value::as_str) {
            Some("unary") => "one `reply`",
            Some("server_stream") => {
                "`item` frames paced by the call's `credit`, then `end` (or a failed `reply`)"
            }
            _ => {
                "`item` frames both ways, each way paced by `credit` frames, until each side's `end`"
            }
        };
        let _ = writeln!(out, "Params: {}. Answers with {frame}.\n", param_cell(m));
    }
    if let Some(defs) = schema.get("$defs").and_then(Value::as_object)
        && !defs.is_empty()
    {
        let _ = writeln!(out, "## Types\n");
        for (name, def) in defs {
            let _ = writeln!(out, "### `{name}`\n");
            if let Some(d) = def.get("description").and_then(Value::as_str) {
                let _ = writeln!(out, "{d}\n");
            }
            let body = serde_json::to_string_pretty(def).unwrap_or_default();
            let _ = writeln!(out, "```json\n{body}\n```\n");
        }
    }
    out.trim_end().to_owned() + "\n"
}

fn param_cell(m: &Value) -> String {
    let names: Vec<&str> = m
        .get("param_names")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(params) = m.get("params") else {
        return "—".to_owned();
    };
    match names.len() {
        0 => "none (`null`)".to_owned(),
        1 => format!("`{}`: {}", names[0], type_name(params)),
        _ => {
            let types: Vec<String> = params
                .get("prefixItems")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(type_name).collect())
                .unwrap_or_default();
            let parts: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    format!(
                        "`{n}`: {}",
                        types.get(i).map_or("any", std::string::String::as_str)
                    )
                })
                .collect();
            format!("[{}]", parts.join(", "))
        }
    }
}
