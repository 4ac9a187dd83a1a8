//! Finding servers on the LAN: the announcement datagrams and DNS-SD TXT
//! records, parsed and encoded without I/O, and the table a scan builds.
//!
//! Two datagrams go to UDP port [`DEFAULT_DISCOVERY_PORT`]:
//!
//! * LanTalk 2.0's beacon, byte for byte: `LANTALK_SERVER:<ipv4>:<port>`. The
//!   real LanTalk 2.0 client lists servers from it.
//! * Our richer one: `LANTALK_INFO ` followed by one compact JSON object,
//!   `{"name":…,"addr":…,"port":…,"ver":…,"enc":…,"pw":…,"users":…,"fp":…}`
//!   (`addr` and `fp` optional, unknown fields ignored). LanTalk 2.0 ignores
//!   it: it does not start with `LANTALK_SERVER:`. It is kept within
//!   [`LEGACY_RECV_BUFFER`] bytes, the buffer LanTalk 2.0 receives into, so
//!   that no client ever reads it truncated (on Windows a datagram larger
//!   than the buffer is an error its discovery loop does not catch).
//!
//! The same facts go into DNS-SD TXT records ([`txt_records`]).
//!
//! Everything from the network is hostile until proven otherwise:
//! [`parse_datagram`] and [`parse_txt`] accept only well-formed, bounded
//! input and return `None` for anything else. A discovery hint never grants
//! trust: it only says where to connect; keys are checked by the encryption
//! layer when connecting.
//!
//! Announcing is a machine too: [`Announcer`] decides when beacons go out,
//! which destinations to report as failing, and when the mDNS record is
//! refreshed; the runtime only owns the sockets and the mDNS daemon.

mod announcer;
mod datagram;

pub use announcer::*;
pub use datagram::*;
