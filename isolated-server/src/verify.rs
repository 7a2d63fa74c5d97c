//! Onboarding checks for the isolated instance's credentials: Webflow as on the shared server,
//! Cloudflare by reading the tenant's zone, Stripe by reading its customer's invoices.

use std::future::Future;
use std::pin::Pin;

use common::mcp::Services;
use common::secrets::SecretKind;
use common::tenant::Tenant;
use secrecy::SecretString;

use crate::upstream::cloudflare::Cloudflare;
use crate::upstream::stripe::Stripe;

pub fn verify_isolated<'a>(
    services: &'a Services,
    tenant: &'a Tenant,
    kind: SecretKind,
    secret: &'a SecretString,
) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
    Box::pin(async move {
        match kind {
            SecretKind::Webflow => common::verify::webflow(&services.webflow, secret, tenant).await,
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
                    .map(|_| ())
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
                    .map(|_| ())
                    .map_err(|e| format!("customer {}: {e}", customer.as_str()))
            }
            other => Err(format!(
                "the isolated server does not use {other} credentials"
            )),
        }
    })
}
