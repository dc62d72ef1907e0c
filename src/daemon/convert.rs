//! Schemas and events to and from their wire form (`proto/daemon.proto`).

use super::proto;
use crate::event::{Align, Ellipsis, FieldDef, Schema};
#[cfg(test)]
use crate::event::{Event, Value};

pub fn datasource_to_proto(id: usize, schema: &Schema, order: &[usize]) -> proto::DataSource {
    proto::DataSource {
        id: id as u32,
        name: schema.name.clone(),
        fields: schema
            .fields
            .iter()
            .map(|f| proto::Field {
                name: f.name.clone(),
                description: f.description.clone(),
                width: f.width as u32,
                align_right: f.align == Align::Right,
                hidden: f.hidden,
                ellipsis: f.ellipsis.as_str().into(),
                hex: f.hex,
            })
            .collect(),
        order: order.iter().map(|&i| i as u32).collect(),
        ..Default::default()
    }
}

/// The schema and display order a data source announced. Order entries that point past the
/// fields (a daemon bug or a hostile peer) are dropped rather than trusted.
pub fn datasource_from_proto(ds: &proto::DataSource) -> (Schema, Vec<usize>) {
    let fields: Vec<FieldDef> = ds
        .fields
        .iter()
        .map(|f| FieldDef {
            name: f.name.clone(),
            description: f.description.clone(),
            width: f.width as usize,
            align: if f.align_right {
                Align::Right
            } else {
                Align::Left
            },
            hidden: f.hidden,
            ellipsis: Ellipsis::parse(&f.ellipsis).unwrap_or_default(),
            hex: f.hex,
        })
        .collect();
    let order = ds
        .order
        .iter()
        .map(|&i| i as usize)
        .filter(|&i| i < fields.len())
        .collect();
    (
        Schema {
            name: ds.name.clone(),
            fields,
        },
        order,
    )
}

/// The reference encoding of an event (what `wire::BatchEncoder` writes without building it).
#[cfg(test)]
pub fn event_to_proto(event: &Event) -> proto::EventRecord {
    use proto::field_value::Value as V;
    proto::EventRecord {
        values: event
            .values
            .iter()
            .map(|v| proto::FieldValue {
                value: match v {
                    Value::Null => None,
                    Value::U64(x) => Some(V::U64(*x)),
                    Value::I64(x) => Some(V::I64(*x)),
                    Value::Bool(x) => Some(V::Bool(*x)),
                    Value::Str(s) => Some(V::Str(s.clone())),
                    Value::List(items) => Some(V::List(proto::StringList {
                        items: items.clone(),
                    })),
                },
            })
            .collect(),
    }
}

#[cfg(test)]
pub fn event_from_proto(record: proto::EventRecord) -> Event {
    use proto::field_value::Value as V;
    Event {
        values: record
            .values
            .into_iter()
            .map(|v| match v.value {
                None => Value::Null,
                Some(V::U64(x)) => Value::U64(x),
                Some(V::I64(x)) => Value::I64(x),
                Some(V::Bool(x)) => Value::Bool(x),
                Some(V::Str(s)) => Value::Str(s),
                Some(V::List(l)) => Value::List(l.items),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_the_wire() {
        let event = Event {
            values: vec![
                Value::Null,
                Value::U64(u64::MAX),
                Value::I64(-2),
                Value::Bool(true),
                Value::Str("/bin/true".into()),
                Value::List(vec!["x".into(), "".into()]),
            ],
        };
        assert_eq!(event_from_proto(event_to_proto(&event)), event);
    }

    #[test]
    fn hostile_order_is_dropped() {
        let ds = proto::DataSource {
            id: 0,
            name: "exec".into(),
            fields: vec![proto::Field {
                name: "pid".into(),
                ..Default::default()
            }],
            order: vec![0, 7],
            ..Default::default()
        };
        let (schema, order) = datasource_from_proto(&ds);
        assert_eq!(schema.fields.len(), 1);
        assert_eq!(order, vec![0]);
    }
}
