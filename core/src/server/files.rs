//! Files, the server's half: offers, tickets, side connections, chunks.

use super::*;
use crate::transfer::FileReply;

impl Server {
    pub fn handle_drained(&mut self, _now: Now, _conn: ConnId) {}
    pub fn handle_file_reply(&mut self, _now: Now, _reply: FileReply) {}
}
