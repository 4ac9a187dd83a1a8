//! Running a client session, free of I/O.

use crate::client::{Client, ClientAction, ClientEvent};

use super::{ClientHost, ClientOutcome};

/// Carries out every pending client action: bytes to send are appended to
/// `out` (the runtime writes them, in one go), events go to the host, and the
/// session's outcome is recorded. Returns true when the client asked to close.
pub fn dispatch_client(
    client: &mut Client,
    host: &mut dyn ClientHost,
    out: &mut Vec<u8>,
    outcome: &mut Option<ClientOutcome>,
) -> bool {
    let mut close = false;
    while let Some(action) = client.poll_action() {
        match action {
            ClientAction::Send(bytes) => out.extend_from_slice(&bytes),
            ClientAction::Event(event) => {
                match &event {
                    ClientEvent::Refused { reason } => {
                        *outcome = Some(ClientOutcome {
                            expected: false,
                            refused: true,
                            reason: reason.clone(),
                        })
                    }
                    // A refusal already said why; keep that reason.
                    ClientEvent::Disconnected { reason, expected } if outcome.is_none() => {
                        *outcome = Some(ClientOutcome {
                            expected: *expected,
                            refused: false,
                            reason: reason.clone(),
                        });
                    }
                    _ => {}
                }
                host.event(&event);
            }
            ClientAction::Close => close = true,
        }
    }
    close
}
