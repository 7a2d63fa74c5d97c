//! Checks `field_data` against a collection's schema before anything is written, so a bad
//! draft is refused with the offending field named and the upstream never sees it.

use serde_json::{Map, Value};

use common::domain::WebflowId;
use common::mcp::ToolError;
use common::upstream::cache::observed;
use common::upstream::webflow::{Field, Webflow};

/// Largest `field_data` accepted (serialized); rich text bodies fit comfortably.
const MAX_FIELD_DATA_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

/// Checks `data` against `collection`'s schema. A schema from the read cache that refuses the
/// draft is read again from Webflow, once: the refusal may be the cache's (a field added in
/// the Designer a minute ago), not the draft's.
pub async fn check_against_schema(
    webflow: &Webflow<'_>,
    collection: &WebflowId,
    data: &Map<String, Value>,
    mode: Mode,
) -> Result<(), ToolError> {
    check_with_schema(webflow, collection, |fields| check(fields, data, mode)).await
}

/// Runs `check` on `collection`'s fields, again on a fresh schema if a cached one refused.
pub async fn check_with_schema(
    webflow: &Webflow<'_>,
    collection: &WebflowId,
    check: impl Fn(&[Field]) -> Result<(), ToolError>,
) -> Result<(), ToolError> {
    let (schema, cached_for) = observed(webflow.get_collection(collection)).await;
    let refused = match check(&schema?.fields.unwrap_or_default()) {
        Err(refused) if cached_for.is_some() => refused,
        checked => return checked,
    };
    drop(refused);
    let fresh = webflow.refreshing().get_collection(collection).await?;
    check(&fresh.fields.unwrap_or_default())
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
        check_characters(slug, value)?;
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

/// The control-character check every free-text argument gets, for each string in a field's
/// value: no C0 or C1 control character (an escape sequence, a NUL), but tabs and line breaks
/// outside `name`, which is one line. Bidi and invisible characters are not refused here: right-
/// to-left and Indic text needs some of them (marks, joiners), and every page of ours shows
/// them as markers.
fn check_characters(slug: &str, value: &Value) -> Result<(), ToolError> {
    let one_line = slug == "name";
    match value {
        Value::String(s) => {
            let bad = s.chars().find(|&c| {
                common::text::unseen(c) == Some(common::text::Unseen::Control)
                    && (one_line || !matches!(c, '\t' | '\n' | '\r'))
            });
            match bad {
                Some(c) => Err(ToolError::InvalidArguments(format!(
                    "field_data.{slug} contains {}, which no CMS field holds; remove it",
                    common::text::describe(c)
                ))),
                None => Ok(()),
            }
        }
        Value::Array(items) => items.iter().try_for_each(|v| check_characters(slug, v)),
        Value::Object(map) => map.values().try_for_each(|v| check_characters(slug, v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(slug: &str, kind: &str) -> Field {
        Field {
            id: slug.to_owned(),
            slug: slug.to_owned(),
            kind: kind.to_owned(),
            display_name: None,
            is_required: false,
            is_editable: true,
            help_text: None,
        }
    }

    fn checked(data: Value) -> Result<(), ToolError> {
        let fields = [
            field("name", "PlainText"),
            field("slug", "PlainText"),
            field("post-body", "RichText"),
            field("tags", "MultiReference"),
        ];
        let Value::Object(data) = data else {
            panic!("not an object");
        };
        check(&fields, &data, Mode::Update)
    }

    #[test]
    fn control_characters_are_refused_in_every_text() {
        let refused = checked(json!({"name": "Hello\u{1b}[2Jworld"})).unwrap_err();
        assert_eq!(
            refused.to_string(),
            ToolError::InvalidArguments(
                "field_data.name contains U+001B (a control character), which no CMS field \
                 holds; remove it"
                    .into()
            )
            .to_string()
        );
        assert!(checked(json!({"name": "two\nlines"})).is_err());
        assert!(checked(json!({"post-body": "<p>a\u{0}b</p>"})).is_err());
        assert!(checked(json!({"post-body": "<p>a\u{85}b</p>"})).is_err());
        assert!(checked(json!({"tags": ["ok", "b\u{7}ad"]})).is_err());
    }

    #[test]
    fn line_breaks_and_right_to_left_text_pass() {
        assert!(checked(json!({"post-body": "<p>one</p>\n\t<p>two</p>\r\n"})).is_ok());
        // A right-to-left mark and a zero-width non-joiner belong to Hebrew and Persian text.
        assert!(checked(json!({"name": "\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{200f} 2024"})).is_ok());
        assert!(
            checked(json!({"name": "\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}"}))
                .is_ok()
        );
    }
}
