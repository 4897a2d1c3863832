//! MySQL partial JSON updates (`binlog_row_value_options=PARTIAL_JSON`): the after image of a
//! JSON column carries only diffs (`JSON_SET` / `JSON_REPLACE` / `JSON_REMOVE` results). With
//! `binlog_row_image=FULL` (which cdcd requires) the before image has the whole document, so
//! the after document is rebuilt here by applying the diffs to it.

use mysql_async::binlog::jsondiff::{JsonDiff, JsonDiffOperation};
use serde_json::Value;

use super::values::jsonb_to_json;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Leg {
    Key(String),
    Index(usize),
}

/// Parses the simple JSON paths MySQL writes in diffs: `$`, `.key`, `."quoted key"`, `[n]`.
fn parse_path(path: &str) -> Result<Vec<Leg>, String> {
    let bad = || format!("unsupported JSON path `{path}` in a partial update");
    let mut rest = path.strip_prefix('$').ok_or_else(bad)?;
    let mut legs = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            if let Some(q) = r.strip_prefix('"') {
                let mut key = String::new();
                let mut chars = q.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((i, '"')) => break i,
                        Some((_, '\\')) => key.push(chars.next().ok_or_else(bad)?.1),
                        Some((_, c)) => key.push(c),
                        None => return Err(bad()),
                    }
                };
                legs.push(Leg::Key(key));
                rest = &q[end + 1..];
            } else {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(bad());
                }
                legs.push(Leg::Key(r[..end].to_string()));
                rest = &r[end..];
            }
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            legs.push(Leg::Index(r[..end].trim().parse().map_err(|_| bad())?));
            rest = &r[end + 1..];
        } else {
            return Err(bad());
        }
    }
    Ok(legs)
}

/// Replaces every JSON-diff value in `after` by the whole document: the before image's
/// document with the diffs applied.
pub fn resolve(
    before: &mysql_async::binlog::row::BinlogRow,
    after: &mut mysql_async::binlog::row::BinlogRow,
) -> Result<(), String> {
    use mysql_async::binlog::value::BinlogValue;
    for i in 0..after.len() {
        let text = {
            let Some(BinlogValue::JsonDiff(diffs)) = after.as_ref(i) else { continue };
            let mut doc = match before.as_ref(i) {
                Some(BinlogValue::Jsonb(j)) => jsonb_to_json(j).map_err(|e| format!("before image JSON: {e}"))?,
                _ => {
                    return Err("a partial JSON update arrived without the whole document in the before image; set binlog_row_image = FULL".into())
                }
            };
            apply(&mut doc, diffs)?;
            serde_json::to_vec(&doc).map_err(|e| e.to_string())?
        };
        after.place(i, BinlogValue::Value(mysql_async::Value::Bytes(text)));
    }
    Ok(())
}

/// Applies `diffs` in order to `doc`.
pub fn apply(doc: &mut Value, diffs: &[JsonDiff<'_>]) -> Result<(), String> {
    for d in diffs {
        let path = d.path_str();
        let value = match d.value() {
            Some(v) => Some(jsonb_to_json(v).map_err(|e| format!("partial JSON update value: {e}"))?),
            None => None,
        };
        apply_one(doc, &parse_path(&path)?, d.operation(), value).map_err(|e| format!("{e} (path {path})"))?;
    }
    Ok(())
}

fn apply_one(doc: &mut Value, legs: &[Leg], op: JsonDiffOperation, value: Option<Value>) -> Result<(), String> {
    let Some((last, parents)) = legs.split_last() else {
        // The whole document.
        return match (op, value) {
            (JsonDiffOperation::REMOVE, _) => Err("cannot remove the document root".into()),
            (_, Some(v)) => {
                *doc = v;
                Ok(())
            }
            (_, None) => Err("diff without a value".into()),
        };
    };
    let mut target = doc;
    for leg in parents {
        target = match (leg, target) {
            (Leg::Key(k), Value::Object(o)) => o.get_mut(k).ok_or("path does not exist in the before image")?,
            (Leg::Index(i), Value::Array(a)) => a.get_mut(*i).ok_or("array index out of range in the before image")?,
            _ => return Err("path does not match the before image's shape".into()),
        };
    }
    match (op, last, target, value) {
        (JsonDiffOperation::REMOVE, Leg::Key(k), Value::Object(o), _) => {
            o.remove(k);
        }
        (JsonDiffOperation::REMOVE, Leg::Index(i), Value::Array(a), _) if *i < a.len() => {
            a.remove(*i);
        }
        (JsonDiffOperation::REPLACE | JsonDiffOperation::INSERT, Leg::Key(k), Value::Object(o), Some(v)) => {
            o.insert(k.clone(), v);
        }
        (JsonDiffOperation::REPLACE, Leg::Index(i), Value::Array(a), Some(v)) if *i < a.len() => a[*i] = v,
        (JsonDiffOperation::INSERT, Leg::Index(i), Value::Array(a), Some(v)) => a.insert((*i).min(a.len()), v),
        _ => return Err("diff does not apply to the before image".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::binlog::value::BinlogValue;
    use mysql_common::binlog::consts::BinlogVersion;
    use mysql_common::binlog::events::{BinlogEventHeader, FormatDescriptionEvent, RowsEventData, TableMapEvent};
    use mysql_common::binlog::BinlogCtx;
    use mysql_common::io::ParseBuf;
    use serde_json::json;

    use crate::source::mysql::mysql8_events::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("$").unwrap(), vec![]);
        assert_eq!(
            parse_path(r#"$.a[2]."b c".d"#).unwrap(),
            vec![Leg::Key("a".into()), Leg::Index(2), Leg::Key("b c".into()), Leg::Key("d".into())]
        );
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$[x]").is_err());
        assert!(parse_path("$.").is_err());
    }

    /// A real PARTIAL_UPDATE_ROWS_EVENT from MySQL 8, decoded by mysql_common, applied by cdcd.
    #[test]
    fn real_mysql8_partial_update_applies_to_the_before_document() {
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let ctx = |len: usize, kind: u8| BinlogCtx::new(BinlogEventHeader::LEN + len, &fde, kind);
        let tme: TableMapEvent<'_> =
            ParseBuf(TABLE_MAP_ENTITY_JSON).parse(ctx(TABLE_MAP_ENTITY_JSON.len(), 19)).unwrap();
        assert_eq!((tme.database_name().as_ref(), tme.table_name().as_ref()), ("test_db4", "entity_json"));
        let ev =
            ParseBuf(PARTIAL_UPDATE_ROWS_ENTITY_JSON).parse(ctx(PARTIAL_UPDATE_ROWS_ENTITY_JSON.len(), 39)).unwrap();
        let rows = RowsEventData::PartialUpdateRowsEvent(ev);
        let mut n = 0;
        for row in rows.rows(&tme) {
            let (_, after) = row.unwrap();
            let after = after.unwrap();
            let Some(BinlogValue::JsonDiff(diffs)) = after.as_ref(0) else { panic!("expected a JSON diff: {after:?}") };
            // The event was written with a MINIMAL row image, so take a known before document.
            let mut doc = json!({"name": "x", "season": ["summer"]});
            apply(&mut doc, diffs).unwrap();
            assert_eq!(doc, json!({"name": "x", "season": ["winter", "spring"]}));
            n += 1;
        }
        assert_eq!(n, 2);
    }

    #[test]
    fn real_mysql8_rows_v2_delete_decodes() {
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let ctx = |len: usize, kind: u8| BinlogCtx::new(BinlogEventHeader::LEN + len, &fde, kind);
        let tme: TableMapEvent<'_> = ParseBuf(TABLE_MAP_ENTITY_INT).parse(ctx(TABLE_MAP_ENTITY_INT.len(), 19)).unwrap();
        let ev = ParseBuf(DELETE_ROWS_V2_ENTITY_INT).parse(ctx(DELETE_ROWS_V2_ENTITY_INT.len(), 32)).unwrap();
        let rows: Vec<_> = RowsEventData::DeleteRowsEvent(ev).rows(&tme).collect::<Result<_, _>>().unwrap();
        assert_eq!(rows.len(), 1);
        let (before, after) = &rows[0];
        assert!(after.is_none());
        let before = before.as_ref().unwrap();
        let ints: Vec<String> = (0..before.len()).map(|i| format!("{:?}", before.as_ref(i).unwrap())).collect();
        assert_eq!(ints, ["Value(Int(2))", "Value(Int(1))", "Value(Int(1))", "Value(Int(1))", "Value(Int(0))"]);
    }

    #[test]
    fn replace_insert_remove_on_arrays_and_objects() {
        let mut doc = json!({"a": [1, 2, 3], "b": {"c": true}});
        apply_one(&mut doc, &parse_path("$.a[1]").unwrap(), JsonDiffOperation::REPLACE, Some(json!(20))).unwrap();
        apply_one(&mut doc, &parse_path("$.a[0]").unwrap(), JsonDiffOperation::INSERT, Some(json!(0))).unwrap();
        apply_one(&mut doc, &parse_path("$.b.c").unwrap(), JsonDiffOperation::REMOVE, None).unwrap();
        apply_one(&mut doc, &parse_path("$.a[9]").unwrap(), JsonDiffOperation::INSERT, Some(json!(9))).unwrap();
        assert_eq!(doc, json!({"a": [0, 1, 20, 3, 9], "b": {}}));
        assert!(
            apply_one(&mut doc, &parse_path("$.zz.y").unwrap(), JsonDiffOperation::REPLACE, Some(json!(1))).is_err()
        );
    }
}
