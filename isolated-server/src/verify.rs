//! Onboarding checks for the isolated instance's credentials: Webflow as on the shared server,
//! the Webflow App token by asking who granted it and reading each site's registered scripts,
//! Cloudflare by reading the tenant's zone, Stripe by reading its customer's invoices.

use std::future::Future;
use std::pin::Pin;

use common::mcp::Services;
use common::secrets::SecretKind;
use common::tenant::Tenant;
use common::upstream::webflow::scope;
use common::verify::{Need, Warnings};
use secrecy::SecretString;

use crate::upstream::cloudflare::Cloudflare;
use crate::upstream::stripe::Stripe;
use crate::upstream::webflow_custom_code::{self, CustomCodeClient};

/// The Webflow scopes the instance's tools need: publishing, and the reads its approval pages
/// make to show what goes live.
const WEBFLOW_NEEDS: [Need; 5] = [
    Need {
        scope: scope::SITES_READ,
        by: "every Webflow tool",
        basic: true,
    },
    Need {
        scope: scope::PAGES_READ,
        by: "the publish approval (pages changed since the last publish)",
        basic: true,
    },
    Need {
        scope: scope::CMS_READ,
        by: "the publish approvals (CMS items changed)",
        basic: true,
    },
    Need {
        scope: scope::SITES_WRITE,
        by: "webflow_publish_site",
        basic: false,
    },
    Need {
        scope: scope::CMS_WRITE,
        by: "webflow_publish_items",
        basic: false,
    },
];

pub fn verify_isolated<'a>(
    services: &'a Services,
    tenant: &'a Tenant,
    kind: SecretKind,
    secret: &'a SecretString,
) -> Pin<Box<dyn Future<Output = Result<Warnings, String>> + Send + 'a>> {
    Box::pin(async move {
        match kind {
            SecretKind::Webflow => {
                common::verify::webflow(&services.webflow, secret, tenant, &WEBFLOW_NEEDS).await
            }
            SecretKind::WebflowApp => webflow_app(services, tenant, secret)
                .await
                .map(|()| Vec::new()),
            SecretKind::Cloudflare => {
                let zone = tenant
                    .dns_zone
                    .as_ref()
                    .ok_or("a Cloudflare token was given but the tenant has no --dns-zone")?;
                let client = Cloudflare {
                    upstream: &services.cloudflare,
                    token: secret.clone(),
                };
                client
                    .list(zone, None, None, 1, 5)
                    .await
                    .map(|_| Warnings::new())
                    .map_err(|e| format!("zone {zone}: {e}"))
            }
            SecretKind::Stripe => {
                let customer = tenant
                    .stripe_customer
                    .as_ref()
                    .ok_or("a Stripe key was given but the tenant has no --stripe-customer")?;
                let client = Stripe {
                    upstream: &services.stripe,
                    token: secret.clone(),
                };
                client
                    .invoices(customer, 1, None)
                    .await
                    .map(|_| Warnings::new())
                    .map_err(|e| format!("customer {}: {e}", customer.as_str()))
            }
            other => Err(format!(
                "the isolated server does not use {other} credentials"
            )),
        }
    })
}

/// A Webflow App token: one from an OAuth code grant (`GET /v2/token/authorized_by` answers for
/// it, and refuses a site token), able to read custom code on every site of the tenant.
async fn webflow_app(
    services: &Services,
    tenant: &Tenant,
    secret: &SecretString,
) -> Result<(), String> {
    let how = "it must be the access token of a Webflow App's OAuth code grant with the \
               authorized_user:read, custom_code:read and custom_code:write scopes (README: \
               \"A Webflow App token\")";
    webflow_custom_code::authorized_by(&services.webflow, secret)
        .await
        .map_err(|e| format!("not a Webflow App token ({e}): {how}"))?;
    let client = CustomCodeClient {
        upstream: &services.webflow,
        token: secret.clone(),
    };
    for site in &tenant.webflow_sites {
        client.registered(site).await.map_err(|e| {
            format!("the Webflow App token cannot read site {site}'s scripts ({e}): {how}")
        })?;
    }
    Ok(())
}
