//! The commands the daemon sends the Supervisor: add, replace, remove,
//! connect, disconnect, reconnect, send text or audio, shut down. Each goes
//! through the same states and transition as a connection's own life.

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::run::{AfterEnd, Run};
use super::{Held, Purpose, Supervisor};
use crate::connection::{WriteBinaryRefused, WriteTextRefused};
use crate::messages::*;
use crate::wire::OutboundText;

impl Handler<AddSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: AddSession, ctx: &mut Context<Self>) -> Self::Result {
        let name = msg.0.name.clone();
        if let Some(slot) = self.slots.get_mut(&name) {
            // Removed, and added back while the old connection is closing:
            // the new settings take over when it has ended.
            if let Run::Live {
                then: then @ AfterEnd::Remove,
                ..
            } = &mut slot.run
            {
                *then = AfterEnd::Replace(msg.0);
                return Ok(());
            }
            return Err(CommandError::AlreadyExists(name));
        }
        let autostart = msg.0.autostart;
        self.apply_settings(msg.0);
        self.transition(&name, Run::Stopped { wakes_on_send: false }, None, ctx);
        if autostart {
            self.start(&name, 0, Purpose::Attempt, None, ctx);
        }
        Ok(())
    }
}

impl Handler<ReplaceSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: ReplaceSession, ctx: &mut Context<Self>) -> Self::Result {
        let name = msg.0.name.clone();
        let slot = self
            .slots
            .get_mut(&name)
            .ok_or_else(|| CommandError::NotFound(name.clone()))?;
        if let Run::Live { then, .. } = &mut slot.run {
            if matches!(then, AfterEnd::Remove) {
                return Err(CommandError::NotFound(name));
            }
            self.close_live(&name, AfterEnd::Replace(msg.0), "configuration changed");
            return Ok(());
        }
        let was_running = !matches!(slot.run, Run::Stopped { .. });
        self.apply_settings(msg.0);
        if was_running {
            self.restart(&name, None, ctx);
        }
        Ok(())
    }
}

impl Handler<RemoveSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: RemoveSession, ctx: &mut Context<Self>) -> Self::Result {
        if !self.slots.contains_key(&msg.0) {
            return Err(CommandError::NotFound(msg.0));
        }
        if !self.close_live(&msg.0, AfterEnd::Remove, "session removed") {
            self.remove(&msg.0, ctx);
        }
        Ok(())
    }
}

impl Handler<ConnectSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: ConnectSession, ctx: &mut Context<Self>) -> Self::Result {
        let slot = self
            .slots
            .get(&msg.0)
            .ok_or_else(|| CommandError::NotFound(msg.0.clone()))?;
        if slot.run.connection().is_none() {
            self.restart(&msg.0, None, ctx);
        }
        Ok(())
    }
}

impl Handler<DisconnectSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: DisconnectSession, ctx: &mut Context<Self>) -> Self::Result {
        let slot = self
            .slots
            .get(&msg.0)
            .ok_or_else(|| CommandError::NotFound(msg.0.clone()))?;
        match slot.run {
            Run::Live { .. } => {
                self.close_live(&msg.0, AfterEnd::Stop, "disconnect");
            }
            Run::Stopped { .. } => {}
            Run::Deciding | Run::Backoff { .. } | Run::Activating { .. } | Run::Failed { .. } => {
                self.stay_stopped(&msg.0, false, None, ctx)
            }
        }
        Ok(())
    }
}

impl Handler<ReconnectSession> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: ReconnectSession, ctx: &mut Context<Self>) -> Self::Result {
        if !self.slots.contains_key(&msg.0) {
            return Err(CommandError::NotFound(msg.0));
        }
        if !self.close_live(&msg.0, AfterEnd::Restart, "reconnect") {
            self.restart(&msg.0, None, ctx);
        }
        Ok(())
    }
}

impl Handler<SendText> for Supervisor {
    type Result = ResponseActFuture<Self, Result<SendOutcome, CommandError>>;

    /// Written by the ready connection (`sent` only once it took it), held
    /// while the session is on its way back, refused when it is stopped.
    fn handle(&mut self, msg: SendText, ctx: &mut Context<Self>) -> Self::Result {
        let name = msg.session;
        let Some(slot) = self.slots.get_mut(&name) else {
            return Box::pin(fut::ready(Err(CommandError::NotFound(name))));
        };
        let held = Held {
            seq: slot.queue.next_seq(),
            accepted_at: Instant::now(),
            text: OutboundText::from_object(&msg.message),
        };
        let conn = match self.ready_connection(&name) {
            Ok(conn) => conn,
            Err(_) => return Box::pin(fut::ready(self.hold(&name, held, ctx))),
        };
        let write = conn.send(WriteText(held.text.clone()));
        Box::pin(write.into_actor(self).map(move |result, act, ctx| match result {
            Ok(Ok(())) => Ok(SendOutcome::Sent),
            Ok(Err(WriteTextRefused::Stalled(why))) => Err(CommandError::Stalled { session: name, why }),
            // Not ready any more (the connection just ended): hold it.
            Ok(Err(WriteTextRefused::NotReady(_))) | Err(_) => act.hold(&name, held, ctx),
        }))
    }
}

impl Handler<SendAudio> for Supervisor {
    type Result = ResponseFuture<Result<(), CommandError>>;

    fn handle(&mut self, msg: SendAudio, _: &mut Context<Self>) -> Self::Result {
        let conn = self.ready_connection(&msg.session);
        Box::pin(async move {
            let session = msg.session;
            match conn?.send(WriteBinary(msg.data)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(WriteBinaryRefused::Stalled(why))) => Err(CommandError::Stalled { session, why }),
                Ok(Err(WriteBinaryRefused::NotReady)) | Err(_) => Err(CommandError::NotReady { session, state: None }),
            }
        })
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.shutdown.get_or_insert_with(Vec::new).push(tx);
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for name in names {
            if !self.close_live(&name, AfterEnd::Stop, "shutdown") {
                if let Some(slot) = self.slots.get_mut(&name) {
                    if let Some(timer) = slot.run.take_timer() {
                        ctx.cancel_future(timer);
                    }
                }
            }
        }
        self.finish_shutdown_if_done();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
