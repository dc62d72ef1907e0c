//! The `gadget.yaml` schema (Inspektor Gadget's layout): name, description, URLs, data sources
//! with per-field annotations, and eBPF parameters.

use serde::{Deserialize, Serialize};
use serde_norway::Value;

use super::GadgetError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(
        default,
        rename = "homepageURL",
        skip_serializing_if = "String::is_empty"
    )]
    pub homepage_url: String,
    #[serde(
        default,
        rename = "documentationURL",
        skip_serializing_if = "String::is_empty"
    )]
    pub documentation_url: String,
    #[serde(
        default,
        rename = "sourceURL",
        skip_serializing_if = "String::is_empty"
    )]
    pub source_url: String,
    #[serde(default, skip_serializing_if = "serde_norway::Mapping::is_empty")]
    pub datasources: serde_norway::Mapping,
    #[serde(default)]
    pub params: Params,
    /// Sections other tools do not know (e.g. `programs:`), kept as they are.
    #[serde(flatten)]
    pub extra: serde_norway::Mapping,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    #[serde(default)]
    pub ebpf: serde_norway::Mapping,
}

/// One eBPF parameter as `gadget.yaml` describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamMeta {
    pub var: String,
    pub key: String,
    pub default_value: Option<String>,
    pub description: String,
}

/// One field's annotations, in the order the yaml lists the fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldMeta {
    pub name: String,
    pub annotations: Vec<(String, String)>,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Top-level `gadget.yaml` keys ig reads or keeps on purpose; others (Inspektor Gadget has
/// more, and adds some) are kept as they are and said at debug level.
const KNOWN_SECTIONS: [&str; 1] = ["programs"];

/// Whether debug messages are on: `RUST_LOG` names `debug` or `trace` (e.g. `RUST_LOG=debug`,
/// `RUST_LOG=ig=debug`).
pub fn debug_enabled() -> bool {
    std::env::var("RUST_LOG").is_ok_and(|v| v.contains("debug") || v.contains("trace"))
}

/// Writes `ig: debug: <msg>` to stderr when [`debug_enabled`].
pub fn debug(msg: &str) {
    if debug_enabled() {
        eprintln!("ig: debug: {msg}");
    }
}

impl Metadata {
    /// Parses `gadget.yaml`. Keys ig does not use are kept, never an error: Inspektor Gadget's
    /// files carry more than ig reads. They are said by [`Metadata::debug_unknown_keys`], which
    /// a run calls once (a run parses the file more than once: for its flags, then to run).
    pub fn parse(text: &[u8]) -> Result<Self, GadgetError> {
        serde_norway::from_slice(text).map_err(|e| GadgetError::Metadata(e.to_string()))
    }

    /// Top-level keys ig does not use, in the file's order.
    pub fn unknown_keys(&self) -> Vec<String> {
        self.extra
            .keys()
            .filter_map(scalar)
            .filter(|k| !KNOWN_SECTIONS.contains(&k.as_str()))
            .collect()
    }

    /// Says each of [`Metadata::unknown_keys`] at debug level (`ig: debug: gadget.yaml: key …`).
    pub fn debug_unknown_keys(&self) {
        if debug_enabled() {
            for key in self.unknown_keys() {
                debug(&format!(
                    "gadget.yaml: key {key:?} is not one ig uses; ignored"
                ));
            }
        }
    }

    pub fn to_yaml(&self) -> Result<String, GadgetError> {
        serde_norway::to_string(self).map_err(|e| GadgetError::Metadata(e.to_string()))
    }

    pub fn params(&self) -> Result<Vec<ParamMeta>, GadgetError> {
        let mut out = Vec::new();
        for (k, v) in &self.params.ebpf {
            let var = scalar(k)
                .ok_or_else(|| GadgetError::Metadata("a param name is not a string".into()))?;
            let get = |field: &str| v.get(field).and_then(scalar);
            out.push(ParamMeta {
                key: get("key").unwrap_or_else(|| var.replace('_', "-")),
                default_value: get("defaultValue"),
                description: get("description").unwrap_or_default(),
                var,
            });
        }
        Ok(out)
    }

    /// The annotations of a data source's fields, in yaml order.
    pub fn fields(&self, datasource: &str) -> Vec<FieldMeta> {
        let Some(fields) = self
            .datasources
            .get(datasource)
            .and_then(|ds| ds.get("fields"))
            .and_then(Value::as_mapping)
        else {
            return Vec::new();
        };
        fields
            .iter()
            .filter_map(|(name, meta)| {
                let name = scalar(name)?;
                let annotations = meta
                    .get("annotations")
                    .and_then(Value::as_mapping)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((scalar(k)?, scalar(v)?)))
                            .collect()
                    })
                    .unwrap_or_default();
                Some(FieldMeta { name, annotations })
            })
            .collect()
    }

    /// An annotation of a whole data source (`datasources: NAME: annotations: KEY: VALUE`),
    /// e.g. Inspektor Gadget's `cli.clear-screen-before: "true"`.
    pub fn datasource_annotation(&self, datasource: &str, key: &str) -> Option<String> {
        self.datasources
            .get(datasource)
            .and_then(|ds| ds.get("annotations"))
            .and_then(|a| a.get(key))
            .and_then(scalar)
    }

    /// A top-level section this schema does not name (`programs:`).
    pub fn section(&self, name: &str) -> Option<&Value> {
        self.extra.get(name)
    }

    /// Programs to leave out when a boolean parameter is true
    /// (`programs: {prog: {skipWhen: param_var}}`): work the parameter makes useless.
    pub fn skip_when(&self) -> Vec<(String, String)> {
        let Some(progs) = self.section("programs").and_then(Value::as_mapping) else {
            return Vec::new();
        };
        progs
            .iter()
            .filter_map(|(name, meta)| {
                Some((scalar(name)?, meta.get("skipWhen").and_then(scalar)?))
            })
            .collect()
    }

    /// Programs to load only when one of the listed parameters is on (a boolean true, a number
    /// not 0): `programs: {prog: {loadWhen: [var, …]}}`, for a hook only those parameters use.
    pub fn load_when(&self) -> Vec<(String, Vec<String>)> {
        let Some(progs) = self.section("programs").and_then(Value::as_mapping) else {
            return Vec::new();
        };
        progs
            .iter()
            .filter_map(|(name, meta)| {
                let vars = meta.get("loadWhen")?.as_sequence()?;
                Some((scalar(name)?, vars.iter().filter_map(scalar).collect()))
            })
            .collect()
    }

    /// The boolean parameter (its variable) that enables a data source
    /// (`datasources: {NAME: {enabledBy: VAR}}`); None: always on.
    pub fn datasource_enabled_by(&self, datasource: &str) -> Option<String> {
        self.datasources
            .iter()
            .find(|(k, _)| scalar(k).as_deref() == Some(datasource))
            .and_then(|(_, v)| v.get("enabledBy"))
            .and_then(scalar)
    }

    /// Whether a data source is internal (`datasources: {NAME: {internal: true}}`): its
    /// records feed the runtime's operators (the process cache) and are never output.
    pub fn datasource_internal(&self, datasource: &str) -> bool {
        self.datasources
            .iter()
            .find(|(k, _)| scalar(k).as_deref() == Some(datasource))
            .and_then(|(_, v)| v.get("internal"))
            .and_then(scalar)
            .is_some_and(|v| v == "true")
    }

    pub fn datasource_names(&self) -> Vec<String> {
        self.datasources.keys().filter_map(scalar).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
name: trace_exec
description: Trace process executions
homepageURL: https://example.com
datasources:
  exec:
    fields:
      comm:
        annotations:
          columns.width: 16
          description: Command
      args:
        annotations:
          columns.hidden: true
params:
  ebpf:
    ignore_failed:
      key: ignore-failed
      defaultValue: "true"
      description: Ignore failed events
    targ_uid:
      key: uid
      description: Only this uid
"#;

    #[test]
    fn unknown_top_level_keys_are_kept_and_listed() {
        let yaml =
            format!("{YAML}someFutureKey: {{a: 1}}\nprograms: {{}}\nannotations: {{x: y}}\n");
        let m = Metadata::parse(yaml.as_bytes()).expect("parse");
        assert_eq!(m.unknown_keys(), ["someFutureKey", "annotations"]);
        assert!(Metadata::parse(YAML.as_bytes())
            .expect("parse")
            .unknown_keys()
            .is_empty());
    }

    #[test]
    fn reads_params_and_fields_in_order() {
        let m = Metadata::parse(YAML.as_bytes()).expect("parse");
        assert_eq!(m.name, "trace_exec");
        let p = m.params().expect("params");
        assert_eq!(p[0].key, "ignore-failed");
        assert_eq!(p[0].default_value.as_deref(), Some("true"));
        assert_eq!(p[1].var, "targ_uid");
        assert_eq!(p[1].default_value, None);
        let f = m.fields("exec");
        assert_eq!(f[0].name, "comm");
        assert_eq!(f[0].annotations[0], ("columns.width".into(), "16".into()));
        assert_eq!(
            f[1].annotations[0],
            ("columns.hidden".into(), "true".into())
        );
        assert!(m.fields("nope").is_empty());
    }

    #[test]
    fn bad_yaml_is_an_error() {
        assert!(Metadata::parse(b"name: [unclosed").is_err());
    }
}
