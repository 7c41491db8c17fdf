//! Where and how one attempt connects: the configured URL and token, or
//! what the OTA endpoint told us (asked again when the plan says so), the
//! explicit configuration winning over discovery, except for a configured
//! token the server has refused once an OTA token is at hand. No token at
//! all is fine: the firmware then sends no `Authorization` header, and a
//! server with authentication off (xiaozhi-esp32-server's default) takes it.

use std::sync::Arc;

use crate::logsafe;
use crate::loss::{Cause, LossReport};
use crate::ota::{self, Discovered, Offered, OtaError};
use crate::settings::{Credential, SessionSettings};

/// The URL and bearer token of one attempt.
pub struct Endpoint {
    /// `ws://` or `wss://`.
    pub url: String,
    /// Sent as `Authorization: Bearer`; `None`: no such header.
    pub token: Option<String>,
}

/// What the Supervisor hands an attempt about discovery.
#[derive(Clone, Debug, Default)]
pub struct ConnectPlan {
    /// What the OTA endpoint said last time, if it was asked.
    pub known: Option<Discovered>,
    /// Ask the OTA endpoint again even if something is known.
    pub refresh: bool,
    /// The server refused the configured token: use the OTA one if there is one.
    pub prefer_discovered_token: bool,
}

/// The endpoint of this attempt, and a fresh discovery if one was made.
/// `offered` hears which sections an OTA answer carried, whatever follows.
pub async fn resolve(
    client: &awc::Client,
    settings: &Arc<SessionSettings>,
    plan: ConnectPlan,
    offered: &dyn Fn(Offered),
) -> Result<(Endpoint, Option<Discovered>), LossReport> {
    let mut fresh = None;
    let known = match &settings.ota {
        Some(ota) if plan.known.is_none() || plan.refresh => {
            let (answer, outcome) = ota::discover(client, settings, ota, settings.connect_timeout).await;
            if let Some(answer) = answer {
                offered(answer);
            }
            match outcome {
                Ok(found) => {
                    fresh = Some(found.clone());
                    Some(found)
                }
                Err(OtaError::Activation(ask)) => {
                    let mut report = LossReport::new(
                        Cause::ActivationRequired,
                        format!("activation required: {}", ask.message),
                    );
                    report.activation = Some(Box::new(ask));
                    return Err(report);
                }
                // A known answer is still good while the endpoint is down, and
                // explicit settings need none.
                Err(why) if plan.known.is_some() || explicit(settings) => {
                    log::warn!(
                        "session={} {}; connecting with what is known",
                        settings.name,
                        logsafe::quoted(&why.to_string())
                    );
                    plan.known
                }
                Err(why) => return Err(LossReport::new(Cause::ConnectFailed, why.to_string())),
            }
        }
        _ => plan.known,
    };
    let url = settings
        .url
        .clone()
        .or_else(|| known.as_ref().and_then(|k| k.url.clone()));
    let Some(url) = url else {
        return Err(LossReport::new(
            Cause::ProtocolError,
            "the OTA endpoint named no websocket.url",
        ));
    };
    let discovered_token = known.and_then(|k| k.token);
    let token = match (&settings.credential, discovered_token) {
        (Some(_), Some(token)) if plan.prefer_discovered_token => Some(token),
        (Some(credential), _) => Some(read_token(credential)?),
        (None, token) => token,
    };
    Ok((Endpoint { url, token }, fresh))
}

/// Both URL and token are configured: discovery is not needed to connect.
fn explicit(settings: &SessionSettings) -> bool {
    settings.url.is_some() && settings.credential.is_some()
}

fn read_token(credential: &Credential) -> Result<String, LossReport> {
    credential
        .read()
        .map_err(|why| LossReport::new(Cause::CredentialsUnavailable, why.to_string()))
}
