//! `webflow_set_custom_code`: applies scripts already registered on the tenant's site to the
//! whole site or to one of its pages — code that runs on the client's live site once published —
//! after a person approves who has read the exact diff: what is applied now against what will
//! be, each script with its id, version, location, attributes, hosted URL and integrity hash.
//!
//! Webflow takes only a Webflow App's OAuth token on these endpoints, so this tool uses the
//! tenant's `webflow-app` credential (the site token only checks that a page is the tenant's).

use std::collections::BTreeMap;

use common::domain::WebflowId;
use common::mcp::{Effect, Tool, ToolContext, ToolError};
use common::secrets::SecretKind;
use common::tenant::{Tier, Toolset};
use common::text;
use common::upstream::UpstreamError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tools::{Step, with_approval};
use crate::upstream::webflow_custom_code::{
    AppliedScript, CustomCode, CustomCodeClient, RegisteredScript, Target,
};

pub struct SetCustomCode;

/// Scripts one call may apply (Webflow keeps a site's registered scripts few).
const MAX_SCRIPTS: usize = 50;
/// Attributes one script may carry.
const MAX_ATTRIBUTES: usize = 20;
const SHOWN: &str = "the approval preview read differently from what runs";

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The Webflow site id; may be left out when the tenant has exactly one site.
    #[serde(default)]
    pub site_id: Option<String>,
    /// Apply to this page of the site instead of to the whole site.
    #[serde(default)]
    pub page_id: Option<String>,
    /// Every script the site (or page) should have from this app afterwards: Webflow replaces
    /// the list, so a script left out is removed and `[]` removes them all. Each must already be
    /// registered on the site.
    pub scripts: Vec<ScriptArg>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptArg {
    /// The registered script's id (e.g. `cms_slider`).
    pub id: String,
    /// The registered version to apply (e.g. `1.0.0`).
    pub version: String,
    /// `header` or `footer` of the published page.
    pub location: Location,
    /// Attributes for the script tag (`key: value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Header,
    Footer,
}

impl Location {
    fn as_str(self) -> &'static str {
        match self {
            Location::Header => "header",
            Location::Footer => "footer",
        }
    }
}

/// One script as the approver reads it.
#[derive(Debug, Serialize)]
pub struct ScriptShown {
    pub id: String,
    pub version: String,
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<serde_json::Map<String, Value>>,
    pub display_name: Option<String>,
    /// Where the browser loads it from.
    pub hosted_url: Option<String>,
    /// The Subresource Integrity hash the browser checks it against.
    pub integrity_hash: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Preview {
    pub action: &'static str,
    /// "the whole site" or "the page …".
    pub applies_to: String,
    pub site_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    /// In one sentence: what is added, removed and changed.
    pub summary: String,
    /// The diff line by line: `+ add …`, `- remove …`, `~ change …`.
    pub changes: Vec<String>,
    /// What is applied now.
    pub current: Vec<ScriptShown>,
    /// What will be applied: exactly this list.
    pub after: Vec<ScriptShown>,
}

#[derive(Debug, Serialize)]
pub struct Applied {
    pub applies_to: String,
    pub scripts: Vec<AppliedScript>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
}

impl Tool for SetCustomCode {
    const NAME: &'static str = "webflow_set_custom_code";
    const TITLE: &'static str = "Apply registered scripts to the site or a page";
    const DESCRIPTION: &'static str = "Set which scripts, already registered on this client's Webflow site, run on the whole \
         site or on one of its pages (header or footer, with attributes). The list given replaces \
         the current one. Code that runs on the live site once published. Needs a person: the \
         call returns the exact diff (each script's id, version, location, hosted URL and \
         integrity hash) and an approval link for an approver of this client; it is applied once \
         they approve. Needs the instance's Webflow App token (`webflow-app`).";
    const TIER: Tier = Tier::HighRisk;
    const EFFECT: Effect = Effect::Acts;
    const TOOLSET: Option<Toolset> = Some(Toolset::Webflow);
    type Args = Args;
    type Output = Step<Preview, Applied>;

    async fn run(ctx: &ToolContext<'_>, args: Args) -> Result<Self::Output, ToolError> {
        let scripts = check_scripts(&args.scripts)?;
        let site = ctx.site(args.site_id.as_deref())?;
        let target = match args.page_id.as_deref() {
            Some(raw) => Target::Page(ctx.page(raw).await?),
            None => Target::Site(site.clone()),
        };
        // The approval binds the site as resolved now.
        let args = Args {
            site_id: Some(site.to_string()),
            ..args
        };
        let client = CustomCodeClient {
            upstream: &ctx.services.webflow,
            token: app_token(ctx)?,
        };
        let preview = async || {
            let registered = client
                .registered(&site)
                .await
                .map_err(|e| app_error(ctx, e))?
                .registered_scripts;
            for s in &scripts {
                if find(&registered, &s.id, &s.version).is_none() {
                    return Err(not_registered(s, &registered));
                }
            }
            let current = client
                .applied(&target)
                .await
                .map_err(|e| app_error(ctx, e))?;
            let applies_to = match &target {
                Target::Site(_) => "the whole site".to_owned(),
                Target::Page(page) => {
                    let info = ctx.webflow()?.refreshing().get_page(page, None).await?;
                    format!(
                        "the page {} ({})",
                        info.title.unwrap_or_else(|| page.to_string()),
                        info.slug.map(|s| format!("/{s}")).unwrap_or_default()
                    )
                }
            };
            Ok(preview(
                applies_to,
                &site,
                &target,
                &current,
                &scripts,
                &registered,
            ))
        };
        let act = async |approved: &_| {
            let answer = client
                .apply(approved, &target, &scripts)
                .await
                .map_err(|e| app_error(ctx, e))?;
            Ok(Applied {
                applies_to: match &target {
                    Target::Site(site) => format!("site {site}"),
                    Target::Page(page) => format!("page {page}"),
                },
                scripts: answer.scripts,
                last_updated: answer.last_updated,
            })
        };
        with_approval(ctx, Self::NAME, &args, preview, act).await
    }
}

/// The tenant's Webflow App token, or a plain answer saying that there is none and who adds it.
fn app_token(ctx: &ToolContext<'_>) -> Result<secrecy::SecretString, ToolError> {
    match ctx.credential(SecretKind::WebflowApp) {
        Err(ToolError::Upstream(UpstreamError::MissingCredential(_))) => {
            Err(ToolError::NotPermitted(format!(
                "this instance has no Webflow App token, which Webflow requires for custom code \
                 (a site token is refused there). The studio's operator must add one: \
                 `isolated-server secret set {} webflow-app` (README: \"A Webflow App token\"). \
                 Nothing was asked or done",
                ctx.tenant.id
            )))
        }
        other => other,
    }
}

/// Webflow's refusal of the App token, with what the operator can do about it.
fn app_error(ctx: &ToolContext<'_>, e: UpstreamError) -> ToolError {
    match e {
        UpstreamError::Unauthorized { .. } | UpstreamError::Forbidden { .. } => {
            ToolError::NotPermitted(format!(
                "Webflow refused this instance's Webflow App token ({e}). It must come from an \
                 OAuth code grant of a Webflow App authorized on this site with the \
                 `custom_code:read` and `custom_code:write` scopes; the studio's operator can \
                 replace it with `isolated-server secret set {} webflow-app`",
                ctx.tenant.id
            ))
        }
        other => ToolError::Upstream(other),
    }
}

/// The scripts as Webflow is sent them, once their ids, versions and attributes are sane.
fn check_scripts(scripts: &[ScriptArg]) -> Result<Vec<AppliedScript>, ToolError> {
    let bad = |m: String| Err(ToolError::InvalidArguments(m));
    if scripts.len() > MAX_SCRIPTS {
        return bad(format!("scripts: at most {MAX_SCRIPTS} scripts"));
    }
    let mut out: Vec<AppliedScript> = Vec::with_capacity(scripts.len());
    for (i, s) in scripts.iter().enumerate() {
        let token_ok = |v: &str, extra: &[char]| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
        };
        if !token_ok(&s.id, &['_', '-']) {
            return bad(format!(
                "scripts[{i}].id `{}` is not a registered script id (letters, digits, _ and -)",
                s.id.chars().take(64).collect::<String>()
            ));
        }
        if !token_ok(&s.version, &['.', '-', '+']) {
            return bad(format!(
                "scripts[{i}].version `{}` is not a version such as 1.0.0",
                s.version.chars().take(64).collect::<String>()
            ));
        }
        if out.iter().any(|o| o.id == s.id) {
            return bad(format!("scripts[{i}]: script `{}` is listed twice", s.id));
        }
        let attributes = match &s.attributes {
            None => None,
            Some(map) if map.len() > MAX_ATTRIBUTES => {
                return bad(format!(
                    "scripts[{i}].attributes: at most {MAX_ATTRIBUTES} attributes"
                ));
            }
            Some(map) => {
                for (key, value) in map {
                    if !token_ok(key, &['-', '_', ':', '.']) {
                        return bad(format!(
                            "scripts[{i}].attributes: `{}` is not an attribute name",
                            key.chars().take(64).collect::<String>()
                        ));
                    }
                    if value.len() > 1024 || value.chars().any(char::is_control) {
                        return bad(format!(
                            "scripts[{i}].attributes.{key}: at most 1024 printable characters"
                        ));
                    }
                    text::refuse_unseen(&format!("scripts[{i}].attributes.{key}"), value, SHOWN)
                        .map_err(ToolError::InvalidArguments)?;
                }
                Some(
                    map.iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                )
            }
        };
        out.push(AppliedScript {
            id: s.id.clone(),
            version: s.version.clone(),
            location: s.location.as_str().to_owned(),
            attributes,
        });
    }
    Ok(out)
}

fn find<'a>(
    registered: &'a [RegisteredScript],
    id: &str,
    version: &str,
) -> Option<&'a RegisteredScript> {
    registered
        .iter()
        .find(|r| r.id == id && r.version.as_deref() == Some(version))
}

fn not_registered(s: &AppliedScript, registered: &[RegisteredScript]) -> ToolError {
    let mut known: Vec<String> = registered
        .iter()
        .map(|r| format!("{} {}", r.id, r.version.as_deref().unwrap_or("?")))
        .collect();
    known.truncate(20);
    ToolError::InvalidArguments(format!(
        "script `{}` version `{}` is not registered on this site (registered: {}). This tool \
         applies registered scripts only; nothing was asked or done",
        s.id,
        s.version,
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    ))
}

fn show(s: &AppliedScript, registered: &[RegisteredScript]) -> ScriptShown {
    let known = find(registered, &s.id, &s.version);
    ScriptShown {
        id: s.id.clone(),
        version: s.version.clone(),
        location: s.location.clone(),
        attributes: s.attributes.clone(),
        display_name: known.and_then(|r| r.display_name.clone()),
        hosted_url: known.and_then(|r| r.hosted_location.clone()),
        integrity_hash: known.and_then(|r| r.integrity_hash.clone()),
    }
}

fn describe(s: &AppliedScript) -> String {
    let attributes = match &s.attributes {
        Some(map) if !map.is_empty() => format!(
            ", attributes {}",
            map.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        _ => String::new(),
    };
    format!("{} {} in the {}{attributes}", s.id, s.version, s.location)
}

/// The diff of `current` against `after`, line by line and in one sentence.
fn preview(
    applies_to: String,
    site: &WebflowId,
    target: &Target,
    current: &CustomCode,
    after: &[AppliedScript],
    registered: &[RegisteredScript],
) -> Preview {
    let mut changes = Vec::new();
    let (mut added, mut removed, mut changed) = (0, 0, 0);
    for s in after {
        match current.scripts.iter().find(|c| c.id == s.id) {
            None => {
                added += 1;
                changes.push(format!("+ add {}", describe(s)));
            }
            Some(c) if c != s => {
                changed += 1;
                changes.push(format!("~ change {} to {}", describe(c), describe(s)));
            }
            Some(_) => {}
        }
    }
    for c in &current.scripts {
        if !after.iter().any(|s| s.id == c.id) {
            removed += 1;
            changes.push(format!("- remove {}", describe(c)));
        }
    }
    let summary = if changes.is_empty() {
        format!("No change: {applies_to} already has exactly these scripts.")
    } else {
        format!(
            "On {applies_to}: {added} script(s) added, {changed} changed, {removed} removed. \
             The live site runs them once it is next published."
        )
    };
    Preview {
        action: "replace the scripts applied by the studio's Webflow App",
        applies_to,
        site_id: site.to_string(),
        page_id: match target {
            Target::Page(page) => Some(page.to_string()),
            Target::Site(_) => None,
        },
        summary,
        changes,
        current: current
            .scripts
            .iter()
            .map(|s| show(s, registered))
            .collect(),
        after: after.iter().map(|s| show(s, registered)).collect(),
    }
}
