//! PostgreSQL values to JSON and back, as Neon's SQL-over-HTTP gives them
//! (<https://neon.com/docs/serverless/serverless-driver>): results come in text format and
//! are typed by their column's type OID: booleans and 2-/4-byte integers and floats as JSON
//! numbers, `json`/`jsonb` as JSON, `int8` and `numeric` as strings (a JSON number would lose
//! precision in JavaScript), NULL as null, everything else as its PostgreSQL text.
//! Parameters go as text with unspecified types, so the server infers them.

use serde_json::Value;

/// A type's name for the `fields` list (the common built-in types; others by OID).
pub fn type_name(oid: u32) -> String {
    let name = match oid {
        16 => "bool",
        17 => "bytea",
        18 => "char",
        19 => "name",
        20 => "int8",
        21 => "int2",
        23 => "int4",
        25 => "text",
        26 => "oid",
        114 => "json",
        700 => "float4",
        701 => "float8",
        1042 => "bpchar",
        1043 => "varchar",
        1082 => "date",
        1083 => "time",
        1114 => "timestamp",
        1184 => "timestamptz",
        1186 => "interval",
        1700 => "numeric",
        2950 => "uuid",
        3802 => "jsonb",
        _ => return format!("oid:{oid}"),
    };
    name.to_string()
}

/// One text-format value of a column of type `oid`.
pub fn value(oid: u32, text: Option<&[u8]>) -> Value {
    let Some(bytes) = text else {
        return Value::Null;
    };
    let s = String::from_utf8_lossy(bytes);
    match oid {
        16 => Value::Bool(s == "t"),
        21 | 23 | 26 => s
            .parse::<i64>()
            .map_or(Value::String(s.into_owned()), Value::from),
        700 | 701 => match s.parse::<f64>() {
            // NaN and Infinity have no JSON number.
            Ok(f) if f.is_finite() => Value::from(f),
            _ => Value::String(s.into_owned()),
        },
        114 | 3802 => serde_json::from_str(&s).unwrap_or(Value::String(s.into_owned())),
        _ => Value::String(s.into_owned()),
    }
}

/// A parameter's text, or `None` for NULL. Arrays and objects go as JSON text (for `json`
/// and `jsonb` parameters).
pub fn param(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_by_type() {
        assert_eq!(value(23, Some(b"42")), json!(42));
        assert_eq!(
            value(20, Some(b"9007199254740993")),
            json!("9007199254740993")
        );
        assert_eq!(value(1700, Some(b"1.10")), json!("1.10"));
        assert_eq!(value(16, Some(b"t")), json!(true));
        assert_eq!(value(701, Some(b"NaN")), json!("NaN"));
        assert_eq!(value(3802, Some(br#"{"a": [1]}"#)), json!({"a": [1]}));
        assert_eq!(value(25, None), Value::Null);
        assert_eq!(param(&json!(null)), None);
        assert_eq!(param(&json!([1, 2])).as_deref(), Some("[1,2]"));
    }
}
