//! The Supervisor's `activating` state: waiting on a person to enter the
//! code that the OTA endpoint handed out.
//!
//! A v1 device (no serial number and key), or an answer without a
//! challenge, waits on the policy's backoff and asks the OTA endpoint
//! again until its answer has no `activation` section. A v2 device runs
//! rounds of confirmations to `/activate` (`crate::activation::round`)
//! from this state; how a round ends decides what follows:
//! - bound: a fresh burst (OTA again, then connect);
//! - over, or a code that expired after living a while: OTA again at once,
//!   for the same code or a fresh one (a fresh one is logged as new);
//! - refused, or a code that expired at once: like a connection's end, the
//!   policy decides (`Deciding`), and the session waits on its growing
//!   backoff before asking OTA again, so a server that never accepts the
//!   key sees a few requests a minute at most.
//!
//! Activation never counts against `max_attempts` (the policy's rule).
//! Never a token or key in a line: the code and the server's words are
//! escaped and capped by `journal`.

use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;

use super::run::{Purpose, Run};
use super::{journal, Slot, Supervisor};
use crate::activation::{self, Round, RoundEnd};
use crate::client::ClientKey;
use crate::loss::{Cause, LossReport};
use crate::messages::{ConnectionEnded, RecordOta};
use crate::monitor::Monitor;
use crate::ota::Offered;

/// What a session remembers of its activation between OTA rounds.
#[derive(Clone, Debug, Default)]
pub(super) struct Seen {
    /// The code shown, and when it was first handed out.
    code: Option<(String, Instant)>,
    /// The OTA endpoint's latest answer offered only MQTT (said once).
    only_mqtt: bool,
    /// The server refused this code's confirmation already (said loudly once).
    refused: bool,
}

impl Supervisor {
    /// What an OTA answer offered goes to the Monitor; an answer with only
    /// MQTT is said once, with what to ask the server's operator for.
    pub(super) fn record_offered(monitor: &Addr<Monitor>, name: &str, slot: &mut Slot, offered: Offered) {
        let only_mqtt = offered.only_mqtt();
        if only_mqtt && !slot.activation.only_mqtt {
            journal::only_mqtt(name, offered.mqtt_endpoint.as_deref(), slot.settings.url.is_some());
        }
        slot.activation.only_mqtt = only_mqtt;
        monitor.do_send(RecordOta {
            session: name.to_owned(),
            offered,
        });
    }

    /// Enter `activating` as the policy decided: confirm at once (v2, with
    /// a challenge), else ask the OTA endpoint again after `after`.
    pub(super) fn await_activation(
        &mut self,
        name: &str,
        report: LossReport,
        after: Duration,
        ctx: &mut Context<Self>,
    ) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        let ask = report.activation.clone();
        let previous = slot.activation.code.as_ref().map(|(code, _)| code.clone());
        if let Some(ask) = &ask {
            if previous.as_deref() != Some(ask.code.as_str()) {
                slot.activation.code = Some((ask.code.clone(), Instant::now()));
                slot.activation.refused = false;
            }
        }
        let code = slot
            .activation
            .code
            .as_ref()
            .map(|(code, _)| code.clone())
            .unwrap_or_default();
        let confirm = match (&ask, &slot.settings.activation.key, &slot.settings.ota) {
            (Some(ask), Some(_), Some(ota)) => ask.challenge.clone().map(|challenge| Round {
                url: activation::activate_url(&ota.url),
                challenge,
                valid_for: ask.valid_for,
            }),
            _ => None,
        };
        let pace = slot.settings.activation.pace;
        match &ask {
            Some(_) => journal::activation(
                name,
                &report,
                previous.as_deref(),
                confirm.as_ref().map(|_| pace.after_pending),
                after,
            ),
            None => {
                journal::activation_refused(name, &report, after, slot.activation.refused);
                slot.activation.refused = true;
            }
        }
        let next = match confirm {
            Some(round) => {
                let settings = slot.settings.clone();
                let client = self.clients.get(&ClientKey::of(&settings));
                let generation = slot.generation;
                let owned = name.to_owned();
                let confirming = async move {
                    match client {
                        Ok(client) => activation::round(&client, &settings, round).await,
                        // No client, no OTA answer either: unreachable in
                        // practice; never a fast loop all the same.
                        Err(_) => {
                            actix_rt::time::sleep(settings.activation.pace.after_error).await;
                            RoundEnd::Over
                        }
                    }
                };
                let timer = ctx.spawn(
                    confirming
                        .into_actor(self)
                        .map(move |end, act, ctx| act.round_ended(&owned, generation, end, ctx)),
                );
                Run::Activating {
                    timer,
                    code,
                    after: None,
                }
            }
            None => {
                let owned = name.to_owned();
                let timer = ctx.run_later(after, move |act, ctx| act.start(&owned, 0, Purpose::Attempt, None, ctx));
                Run::Activating {
                    timer,
                    code,
                    after: Some(after),
                }
            }
        };
        self.transition(name, next, Some(report), ctx);
    }

    /// A round of confirmations ended (the state still owns it, or this
    /// would not run: leaving the state cancels the round).
    fn round_ended(&mut self, name: &str, generation: u64, end: RoundEnd, ctx: &mut Context<Self>) {
        let Some(slot) = self
            .slots
            .get_mut(name)
            .filter(|s| s.generation == generation && matches!(s.run, Run::Activating { .. }))
        else {
            return;
        };
        let after_error = slot.settings.activation.pace.after_error;
        match end {
            RoundEnd::Bound => {
                journal::activated(name);
                slot.activation.code = None;
                self.restart(name, None, ctx);
            }
            RoundEnd::Over => {
                log::debug!("session={name} activation round over; asking the OTA endpoint again");
                self.start(name, 0, Purpose::Attempt, None, ctx);
            }
            RoundEnd::Expired => {
                let lived = slot.activation.code.as_ref().map(|(_, since)| since.elapsed());
                if lived.is_some_and(|lived| lived >= after_error) {
                    journal::code_expired(name);
                    self.start(name, 0, Purpose::Attempt, None, ctx);
                } else {
                    let report = LossReport::new(Cause::ActivationRequired, "the activation code expired at once")
                        .with_status(410);
                    self.decide_activation(name, generation, report, ctx);
                }
            }
            RoundEnd::Refused { status, why } => {
                let report = LossReport::new(Cause::ActivationRequired, format!("activation refused: {why}"))
                    .with_status(status);
                self.decide_activation(name, generation, report, ctx);
            }
        }
    }

    /// A round the server refused ends like a connection: the policy
    /// decides how long to wait.
    fn decide_activation(&mut self, name: &str, generation: u64, report: LossReport, ctx: &mut Context<Self>) {
        self.transition(name, Run::Deciding, None, ctx);
        let ended = ConnectionEnded {
            session: name.to_owned(),
            generation,
            report,
            ready_for: None,
            url: None,
        };
        self.ask_policy(name.to_owned(), ended, Purpose::Attempt, ctx);
    }
}
