//! Checks `field_data` against a collection's schema before anything is written, so a bad
//! draft is refused with the offending field named and the upstream never sees it.

use serde_json::{Map, Value};

use common::mcp::ToolError;
use common::upstream::webflow::Field;

/// Largest `field_data` accepted (serialized); rich text bodies fit comfortably.
const MAX_FIELD_DATA_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

pub fn check(fields: &[Field], data: &Map<String, Value>, mode: Mode) -> Result<(), ToolError> {
    let bad = |msg: String| Err(ToolError::InvalidArguments(msg));
    if data.is_empty() {
        return bad("field_data is empty: give at least one field".into());
    }
    if serde_json::to_vec(data)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        > MAX_FIELD_DATA_BYTES
    {
        return bad(format!(
            "field_data is larger than {} KiB",
            MAX_FIELD_DATA_BYTES / 1024
        ));
    }
    for (slug, value) in data {
        let Some(field) = fields.iter().find(|f| &f.slug == slug) else {
            let known: Vec<&str> = fields.iter().map(|f| f.slug.as_str()).collect();
            return bad(format!(
                "field_data.{slug}: the collection has no such field (fields: {})",
                known.join(", ")
            ));
        };
        if !field.is_editable {
            return bad(format!("field_data.{slug}: the field is not editable"));
        }
        if value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty()) {
            if field.is_required || matches!(slug.as_str(), "name" | "slug") {
                return bad(format!(
                    "field_data.{slug}: the field is required and cannot be empty"
                ));
            }
            continue;
        }
        if let Some(expected) = type_mismatch(&field.kind, value) {
            return bad(format!(
                "field_data.{slug}: a {} field takes {expected}",
                field.kind
            ));
        }
        if slug == "slug" {
            let ok = value.as_str().is_some_and(|s| {
                s.len() <= 256
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
            if !ok {
                return bad("field_data.slug: use lowercase letters, digits and '-'".into());
            }
        }
    }
    if mode == Mode::Create {
        for field in fields {
            let required = field.is_required || matches!(field.slug.as_str(), "name" | "slug");
            if required && !data.contains_key(&field.slug) {
                return bad(format!("field_data.{}: the field is required", field.slug));
            }
        }
    }
    Ok(())
}

/// What a value of this field type must look like, if `value` is not that.
fn type_mismatch(kind: &str, value: &Value) -> Option<&'static str> {
    let ok = match kind {
        "PlainText" | "RichText" | "Link" | "Email" | "Phone" | "Color" | "Option"
        | "Reference" | "DateTime" | "VideoLink" | "Video" => value.is_string(),
        "Number" => value.is_number(),
        "Switch" => value.is_boolean(),
        "MultiReference" => value
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string)),
        "Image" | "File" => value.is_object() || value.is_string(),
        "MultiImage" => value.is_array(),
        _ => true,
    };
    if ok {
        return None;
    }
    Some(match kind {
        "Number" => "a number",
        "Switch" => "true or false",
        "MultiReference" => "an array of item ids",
        "Image" | "File" => "an object with a url (or a url string)",
        "MultiImage" => "an array of images",
        _ => "a string",
    })
}
