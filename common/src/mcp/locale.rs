//! Locale arguments (`locale_id` for pages, `cms_locale_id` for CMS items): checked against
//! the locales of the site the resource belongs to before any request carries one, so a
//! mistyped or foreign locale is a sentence naming the site's locales, not Webflow's 400.

use crate::domain::WebflowId;
use crate::scope::Kind;
use crate::upstream::webflow::{LocaleKind, LocaleRef, Locales};

use super::{ToolContext, ToolError};

impl ToolContext<'_> {
    /// `raw` checked against the locales of `site` (the tenant's every site when `None`: a
    /// resource the index has since forgotten). `None` stays `None`: the primary locale. The
    /// site read may come from the read cache, so a check costs at most one `get-site`.
    pub async fn locale(
        &self,
        kind: LocaleKind,
        raw: Option<&str>,
        site: Option<&WebflowId>,
    ) -> Result<Option<LocaleRef>, ToolError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let id = WebflowId::parse(kind.argument(), raw)?;
        let sites = match site {
            Some(site) => std::slice::from_ref(site),
            None => self.tenant.webflow_sites.as_slice(),
        };
        let webflow = self.webflow()?;
        let mut seen = Vec::new();
        for site in sites {
            let locales = webflow.get_site(site).await?.locales.unwrap_or_default();
            if locales.find(kind, id.as_str()).is_some() {
                return Ok(Some(LocaleRef { kind, id }));
            }
            seen.push((site, locales));
        }
        Err(ToolError::InvalidArguments(refusal(kind, &id, &seen)))
    }

    /// The locale of a page's reads and writes: checked against the page's own site.
    pub async fn page_locale(
        &self,
        page: &WebflowId,
        raw: Option<&str>,
    ) -> Result<Option<LocaleRef>, ToolError> {
        let site = raw.and_then(|_| self.site_of(page, Kind::Page));
        self.locale(LocaleKind::Site, raw, site.as_ref()).await
    }

    /// The CMS locale of a collection's item reads: checked against the collection's site.
    pub async fn item_locale(
        &self,
        collection: &WebflowId,
        raw: Option<&str>,
    ) -> Result<Option<LocaleRef>, ToolError> {
        let site = raw.and_then(|_| self.site_of(collection, Kind::Collection));
        self.locale(LocaleKind::Cms, raw, site.as_ref()).await
    }

    /// The site a scoped id was listed under (call after scoping it).
    fn site_of(&self, id: &WebflowId, kind: Kind) -> Option<WebflowId> {
        self.services.index.site_of(&self.tenant.id, id, kind)
    }
}

/// What the caller reads: the id refused, the site's locales with the id this argument takes,
/// and, when the id is the locale's other id, which one to give instead.
fn refusal(kind: LocaleKind, id: &WebflowId, seen: &[(&WebflowId, Locales)]) -> String {
    let arg = kind.argument();
    let other = match kind {
        LocaleKind::Site => LocaleKind::Cms,
        LocaleKind::Cms => LocaleKind::Site,
    };
    let mut text = format!("{arg} `{id}` is not a locale of ");
    text += &match seen {
        [(site, _)] => format!("site {site}."),
        _ => "any of this tenant's sites.".to_owned(),
    };
    for (site, locales) in seen {
        if let Some(mixed) = locales.find(other, id.as_str()) {
            let right = kind.id_of(mixed).unwrap_or("(none)");
            text += &format!(
                " `{id}` is the {} of {}; {arg} takes its {arg}: `{right}`.",
                other.argument(),
                name(mixed)
            );
        }
        let listed: Vec<String> = locales
            .all()
            .enumerate()
            .map(|(n, l)| {
                let primary = if n == 0 && locales.primary.is_some() {
                    ", primary"
                } else {
                    ""
                };
                format!(
                    "`{}` {}{primary}",
                    kind.id_of(l).unwrap_or("(none)"),
                    name(l)
                )
            })
            .collect();
        if listed.is_empty() {
            text += &format!(" Site {site} has no locales: leave {arg} out.");
        } else {
            text += &format!(
                " Site {site}'s locales ({arg}): {}. Leave {arg} out for the primary locale.",
                listed.join("; ")
            );
        }
    }
    text
}

/// `French (France) fr-FR`, or whatever of it Webflow gave.
fn name(locale: &crate::upstream::webflow::Locale) -> String {
    let parts: Vec<&str> = [locale.display_name.as_deref(), locale.tag.as_deref()]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        "an unnamed locale".to_owned()
    } else {
        parts.join(" ")
    }
}
