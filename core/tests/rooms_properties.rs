//! Rooms as properties, over random sequences of joins, parts and lines:
//! a member receives each message of each of its rooms exactly once, in the
//! order said; a non-member never does (and a line said in a room one is
//! not in goes nowhere). The peers are encrypted peers written by hand
//! ([`SecurePeer`]), so the server is tested, not our client.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::pair::Pair;
use common::secure_peer::SecurePeer;
use lantalk_core::protocol::{self, ServerLine};
use lantalk_core::secure::StaticKey;
use lantalk_core::server::SecureConfig;
use lantalk_core::ServerConfig;
use proptest::prelude::*;

const ROOMS: [&str; 3] = ["#lobby", "#a", "#b"];
const PEERS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Join(usize, usize),
    Part(usize, usize),
    Say(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    (0..3u8, 0..PEERS, 0..ROOMS.len()).prop_map(|(kind, peer, room)| match kind {
        0 => Op::Join(peer, room),
        1 => Op::Part(peer, room),
        _ => Op::Say(peer, room),
    })
}

fn config() -> ServerConfig {
    ServerConfig {
        secure: Some(SecureConfig {
            identity: StaticKey::from_private([0x11; 32]),
            rng_seed: [5; 32],
            suites: Vec::new(),
        }),
        rate_limit: None,
        ..ServerConfig::default()
    }
}

/// The messages (room, text) each peer received, in order.
fn received(pair: &Pair, peers: &mut [SecurePeer], got: &mut [Vec<(String, String)>]) {
    for (i, p) in peers.iter_mut().enumerate() {
        for line in p.lines(pair) {
            if let Ok(ServerLine::Message {
                room: Some(room),
                text,
                ..
            }) = protocol::parse_server_line(line.as_bytes())
            {
                got[i].push((room, text));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn members_get_each_message_once_in_order_and_others_never(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let mut pair = Pair::new(config());
        let mut peers: Vec<SecurePeer> = (0..PEERS)
            .map(|i| {
                let name = format!("p{i}");
                SecurePeer::join(&mut pair, &name, &format!("10.0.0.{}:1", i + 1), [0x40 + i as u8; 32])
            })
            .collect();
        let mut got = vec![Vec::new(); PEERS];
        received(&pair, &mut peers, &mut got);
        // The model: who is in which room.
        let mut members: HashMap<usize, BTreeSet<usize>> =
            HashMap::from([(0, (0..PEERS).collect()), (1, BTreeSet::new()), (2, BTreeSet::new())]);
        let mut want = vec![Vec::new(); PEERS];
        for (n, op) in ops.iter().enumerate() {
            match *op {
                Op::Join(p, r) => {
                    peers[p].send(&mut pair, &protocol::chat_in("#lobby", &format!("/join {}", ROOMS[r]), false));
                    members.get_mut(&r).unwrap().insert(p);
                }
                Op::Part(p, r) => {
                    peers[p].send(&mut pair, &protocol::chat_in("#lobby", &format!("/part {}", ROOMS[r]), false));
                    members.get_mut(&r).unwrap().remove(&p);
                }
                Op::Say(p, r) => {
                    let text = format!("line {n}");
                    peers[p].send(&mut pair, &protocol::chat_in(ROOMS[r], &text, false));
                    if members[&r].contains(&p) {
                        for &q in &members[&r] {
                            if q != p {
                                want[q].push((ROOMS[r].to_string(), text.clone()));
                            }
                        }
                    }
                }
            }
            received(&pair, &mut peers, &mut got);
        }
        // Join history replays earlier lines as history, not as messages:
        // only live messages are compared.
        prop_assert_eq!(got, want);
    }
}
