//! Which fields the output shows, and in which order: `--fields a,b` picks exactly those,
//! `--fields +a,-b` adds to or removes from the defaults.

use crate::event::Schema;

#[derive(Debug, Clone, PartialEq, Default)]
pub enum FieldSelection {
    #[default]
    Default,
    Exact(Vec<String>),
    Modify {
        add: Vec<String>,
        remove: Vec<String>,
    },
}

impl FieldSelection {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let items: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(FieldSelection::Default);
        }
        let modifiers = items
            .iter()
            .filter(|i| i.starts_with('+') || i.starts_with('-'))
            .count();
        if modifiers == 0 {
            return Ok(FieldSelection::Exact(
                items.iter().map(|s| s.to_string()).collect(),
            ));
        }
        if modifiers != items.len() {
            return Err(format!(
                "--fields {spec:?}: either name the fields to show, or give +field/-field changes to the defaults, not both"
            ));
        }
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        for i in items {
            let (sign, name) = i.split_at(1);
            if sign == "+" {
                add.push(name.to_string())
            } else {
                remove.push(name.to_string())
            }
        }
        Ok(FieldSelection::Modify { add, remove })
    }

    /// Column indices to show, in order. `order` is the full display order of the schema.
    pub fn apply(&self, schema: &Schema, order: &[usize]) -> Result<Vec<usize>, String> {
        let find = |name: &str| {
            schema.index(name).ok_or_else(|| {
                let known: Vec<&str> = order
                    .iter()
                    .map(|&i| schema.fields[i].name.as_str())
                    .collect();
                format!(
                    "unknown field {name:?}; this gadget has: {}",
                    known.join(", ")
                )
            })
        };
        match self {
            FieldSelection::Default => Ok(order
                .iter()
                .copied()
                .filter(|&i| !schema.fields[i].hidden)
                .collect()),
            FieldSelection::Exact(names) => names.iter().map(|n| find(n)).collect(),
            FieldSelection::Modify { add, remove } => {
                let add: Vec<usize> = add.iter().map(|n| find(n)).collect::<Result<_, _>>()?;
                let remove: Vec<usize> =
                    remove.iter().map(|n| find(n)).collect::<Result<_, _>>()?;
                Ok(order
                    .iter()
                    .copied()
                    .filter(|i| {
                        (!schema.fields[*i].hidden || add.contains(i)) && !remove.contains(i)
                    })
                    .collect())
            }
        }
    }
}

/// Display order: container fields first, then the order `gadget.yaml` lists, then the rest
/// in schema order.
pub fn display_order(schema: &Schema, preferred: &[String]) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::with_capacity(schema.fields.len());
    let take = |i: usize, order: &mut Vec<usize>| {
        if !order.contains(&i) {
            order.push(i);
        }
    };
    for (i, f) in schema.fields.iter().enumerate() {
        if f.name.starts_with("runtime.") || f.name.starts_with("k8s.") {
            take(i, &mut order);
        }
    }
    for name in preferred {
        if let Some(i) = schema.index(name) {
            take(i, &mut order);
        }
    }
    for i in 0..schema.fields.len() {
        take(i, &mut order);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FieldDef;

    fn schema() -> Schema {
        let mut s = Schema::default();
        for (n, hidden) in [
            ("pid", false),
            ("comm", false),
            ("uid", true),
            ("runtime.containerName", false),
        ] {
            let mut f = FieldDef::new(n);
            f.hidden = hidden;
            s.push(f);
        }
        s
    }

    #[test]
    fn order_and_selection() {
        let s = schema();
        let order = display_order(&s, &["comm".into()]);
        assert_eq!(order, vec![3, 1, 0, 2]);
        assert_eq!(
            FieldSelection::Default.apply(&s, &order).unwrap(),
            vec![3, 1, 0]
        );
        let sel = FieldSelection::parse("+uid,-comm").unwrap();
        assert_eq!(sel.apply(&s, &order).unwrap(), vec![3, 0, 2]);
        let sel = FieldSelection::parse("PID,comm").unwrap();
        assert_eq!(sel.apply(&s, &order).unwrap(), vec![0, 1]);
        assert!(FieldSelection::parse("pid,+uid").is_err());
        let err = FieldSelection::parse("nope")
            .unwrap()
            .apply(&s, &order)
            .unwrap_err();
        assert!(err.contains("unknown field \"nope\""), "{err}");
    }
}
