//! `webflow_update_asset`: an asset's alt text (`PATCH /v2/assets/{asset_id}`), only on the
//! tenant's own site, with what it was before and is now.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use common::domain::WebflowId;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::tenant::{Tier, Toolset};
use common::upstream::webflow::Asset;

pub struct UpdateAsset;

/// Most characters of alt text. Screen readers cope with any length, but guidance is a sentence
/// (about 125 characters); this only keeps mistakes (a pasted article) out.
pub const MAX_ALT_TEXT_CHARS: usize = 1000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow asset id (from `webflow_list_assets`).
    pub asset_id: String,
    /// What a screen reader says for the image, in the page's language. An empty string
    /// clears it (for a purely decorative image).
    pub alt_text: String,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub asset_id: String,
    pub site_id: String,
    pub display_name: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    /// Whether anything was sent: `false` when the asset already had this alt text.
    pub changed: bool,
    pub note: String,
}

impl Tool for UpdateAsset {
    const NAME: &'static str = "webflow_update_asset";
    const TITLE: &'static str = "Set an asset's alt text";
    const DESCRIPTION: &'static str = "Set the alt text of one of this tenant's images (from \
         `webflow_list_assets`); an empty string clears it. Nothing else about the asset \
         changes. The result shows the alt text before and after.";
    const TIER: Tier = Tier::ScopedWrite;
    const EFFECT: Effect = Effect::Overwrites;
    const TOOLSET: Option<Toolset> = Some(Toolset::AssetWrite);
    type Args = Args;
    type Output = Output;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Output, ToolError> {
        // Everything about the arguments is checked before any upstream request.
        let asset = WebflowId::parse("asset_id", &args.asset_id)?;
        let alt_text = checked(args.alt_text)?;
        let asset = ctx.asset(asset.as_str()).await?;
        let webflow = ctx.webflow()?;
        // What Webflow holds now, not a cached copy: the "before" a person reads.
        let before = webflow.refreshing().get_asset(&asset).await?;
        let site = owned_site(ctx, &before)?;
        let current = before.alt_text.clone().unwrap_or_default();
        let (after, changed) = if current == alt_text {
            (before.clone(), false)
        } else {
            let after = webflow
                .update_asset_alt_text(&site, &asset, &alt_text)
                .await?;
            (after, true)
        };
        let note = if changed {
            "Alt text changed. Images that take their alt text from the asset show it; the live \
             site shows it after the next publish."
        } else {
            "Nothing changed: the asset already had this alt text."
        };
        Ok(Output {
            asset_id: asset.to_string(),
            site_id: site.to_string(),
            display_name: after.display_name.clone(),
            before: before.alt_text,
            after: after.alt_text,
            changed,
            note: note.to_owned(),
        })
    }
}

/// The asset's site, if it is one of the tenant's: the index said so, and the asset itself
/// must agree.
fn owned_site(ctx: &ToolContext<'_>, asset: &Asset) -> Result<WebflowId, ToolError> {
    asset
        .site_id
        .as_deref()
        .and_then(|s| WebflowId::parse("siteId", s).ok())
        .filter(|s| ctx.tenant.owns_site(s))
        .ok_or_else(|| ToolError::NotYours {
            what: "asset",
            id: asset.id.clone(),
        })
}

/// One line a screen reader will say: no control, invisible or direction-changing character,
/// bounded.
fn checked(alt_text: String) -> Result<String, ToolError> {
    let chars = alt_text.chars().count();
    if chars > MAX_ALT_TEXT_CHARS {
        return Err(ToolError::InvalidArguments(format!(
            "alt_text: {chars} characters is more than the {MAX_ALT_TEXT_CHARS} allowed; a \
             sentence is enough"
        )));
    }
    common::text::refuse_unseen(
        "alt_text",
        &alt_text,
        "what a screen reader says differ from what a person reads",
    )
    .map_err(ToolError::InvalidArguments)?;
    Ok(alt_text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn alt_text_is_bounded_and_visible() {
        assert!(checked("A red bicycle against a white wall".into()).is_ok());
        assert!(checked(String::new()).is_ok());
        let long = "x".repeat(MAX_ALT_TEXT_CHARS + 1);
        assert!(checked(long).unwrap_err().to_string().contains("alt_text"));
        for bad in ["line\nbreak", "right\u{202e}left", "zero\u{200b}width"] {
            assert!(checked(bad.into()).is_err(), "{bad:?}");
        }
    }
}
