//! Files, the client's half: offers, side connections, chunks.

use super::*;
use crate::transfer::FileReply;

impl Client {
    pub fn handle_side_opened(&mut self, _now: Now, _side: SideId) {}
    pub fn handle_side_input(&mut self, _now: Now, _side: SideId, _bytes: &[u8]) {}
    pub fn handle_side_drained(&mut self, _now: Now, _side: SideId) {}
    pub fn handle_side_closed(&mut self, _now: Now, _side: SideId) {}
    pub fn handle_file_reply(&mut self, _now: Now, _reply: FileReply) {}
}
