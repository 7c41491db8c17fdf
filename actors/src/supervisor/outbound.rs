//! The Supervisor's side of each session's queue of text messages: what
//! a ready connection is handed, what comes back when it could not write,
//! what expires, and what is dropped (always counted and reported).

use actix::prelude::*;
use tokio::time::Instant;

use super::run::Run;
use super::{journal, Held, Supervisor};
use crate::connection::{Connection, WriteTextRefused};
use crate::events::DropReason;
use crate::messages::*;

impl Supervisor {
    /// Hand one held message to a ready connection; what it cannot take
    /// comes back to the queue (and is flushed again only at the next
    /// hello when `flush_again` is false).
    pub(super) fn hand_to_connection(
        &mut self,
        name: &str,
        held: Held,
        conn: Addr<Connection>,
        ctx: &mut Context<Self>,
    ) {
        let name = name.to_owned();
        let write = conn.send(WriteText(held.text.clone()));
        ctx.spawn(write.into_actor(self).map(move |result, act, ctx| match result {
            Ok(Ok(())) => {}
            // Stalled: keep it for the next connection rather than spin.
            Ok(Err(WriteTextRefused::Stalled(_))) => act.hold_again(&name, held, false, ctx),
            // Handed back, or the connection died with it in its mailbox.
            Ok(Err(WriteTextRefused::NotReady(_))) | Err(_) => act.hold_again(&name, held, true, ctx),
        }));
    }

    pub(super) fn hold_again(&mut self, name: &str, held: Held, flush_again: bool, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        if slot.run.refuses_text() {
            self.report_dropped(name, 1, DropReason::SessionStopped);
            return;
        }
        let bounds = slot.bounds();
        let overflow = slot.queue.restore(vec![held], bounds);
        if overflow > 0 {
            self.report_dropped(name, overflow, DropReason::QueueFull);
        }
        self.queue_changed(name, ctx);
        if flush_again && self.slots[name].run.is_ready() {
            self.flush(name, ctx);
        }
    }

    /// Write everything held, oldest first, right after the server hello.
    pub(super) fn flush(&mut self, name: &str, ctx: &mut Context<Self>) {
        self.expire(name, ctx);
        let Ok(conn) = self.ready_connection(name) else { return };
        let Some(slot) = self.slots.get_mut(name) else { return };
        let held = slot.queue.drain();
        if held.is_empty() {
            return;
        }
        self.queue_changed(name, ctx);
        for message in held {
            self.hand_to_connection(name, message, conn.clone(), ctx);
        }
    }

    pub(super) fn expire(&mut self, name: &str, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        let expired = slot.queue.expire(Instant::now(), slot.settings.queue.ttl);
        if expired > 0 {
            self.report_dropped(name, expired, DropReason::QueueTtl);
            self.queue_changed(name, ctx);
        }
    }

    /// Publish the queue length and arm the timer for the oldest message's expiry.
    pub(super) fn queue_changed(&mut self, name: &str, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        if let Some(timer) = slot.expiry_timer.take() {
            ctx.cancel_future(timer);
        }
        if let Some(at) = slot.queue.next_expiry(slot.settings.queue.ttl) {
            let owned = name.to_owned();
            let wait = at.saturating_duration_since(Instant::now());
            slot.expiry_timer = Some(ctx.run_later(wait, move |act, ctx| act.expire(&owned, ctx)));
        }
        self.monitor.do_send(RecordQueued {
            session: name.to_owned(),
            queued: slot.queue.len(),
        });
    }

    pub(super) fn drop_queue(&mut self, name: &str, why: DropReason) {
        let Some(slot) = self.slots.get_mut(name) else { return };
        let count = slot.queue.drain().len() as u64;
        if count > 0 {
            self.report_dropped(name, count, why);
            self.monitor.do_send(RecordQueued {
                session: name.to_owned(),
                queued: 0,
            });
        }
    }

    pub(super) fn report_dropped(&self, name: &str, count: u64, why: DropReason) {
        journal::dropped(name, count, why);
        self.monitor.do_send(PublishDropped {
            session: name.to_owned(),
            count,
            why,
        });
    }

    /// Hold a message for the session's next ready connection.
    pub(super) fn hold(
        &mut self,
        name: &str,
        held: Held,
        ctx: &mut Context<Self>,
    ) -> Result<SendOutcome, CommandError> {
        let slot = self
            .slots
            .get_mut(name)
            .ok_or_else(|| CommandError::NotFound(name.to_owned()))?;
        if slot.run.refuses_text() {
            return Err(CommandError::Stopped(name.to_owned()));
        }
        let bounds = slot.bounds();
        if bounds.messages == 0 {
            return Err(CommandError::NotReady {
                session: name.to_owned(),
                state: slot.run.kind().public(),
            });
        }
        let position = slot.queue.push(held, bounds).map_err(|bound| CommandError::QueueFull {
            session: name.to_owned(),
            bound,
        })?;
        let wake = matches!(slot.run, Run::Stopped { .. });
        self.queue_changed(name, ctx);
        if wake {
            self.restart(name, None, ctx);
        }
        Ok(SendOutcome::Queued { position })
    }
}
