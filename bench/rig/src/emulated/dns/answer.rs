//! The rig's DNS answers (sans-IO, std only besides `simple-dns`): an
//! authoritative server for a fixed table of names, the only names a board
//! on the rig may look up (the hubs, the gateway nodes: what the sandbox's
//! hosts file holds). It answers `A` (and `ANY`) for a name of the table
//! with its address, an empty `NOERROR` for another type of such a name,
//! `NXDOMAIN` for any other name, and never recurses or forwards (no
//! `RA`). Every datagram gets a line saying what was done with it, the
//! ignored ones too.
//!
//! This file is compiled by the bench (`emulated/dns.rs`, the rig's server)
//! and by device-mcu's host rig (`firmware/device-mcu/rig/src/dns.rs`, its
//! tests' responder): one implementation of the protocol.

use std::net::Ipv4Addr;

use simple_dns::rdata::{RData, A};
use simple_dns::{
    Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, OPCODE, QCLASS, QTYPE, RCODE, TYPE,
};

/// The answers' time to live: short, a board's next look-up asks again.
pub const TTL_S: u32 = 60;

/// The DNS header's length.
const HEADER_LEN: usize = 12;

/// What to do with one datagram, and a line saying what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send `bytes` back to the asker.
    Reply {
        /// The response, wire format.
        bytes: Vec<u8>,
        /// `dns: …`: the question and the answer given.
        note: String,
    },
    /// Send nothing (not a query, or too short to answer at all).
    Ignored {
        /// `dns: ignored …` and why.
        note: String,
    },
}

impl Outcome {
    /// The line saying what was done.
    pub fn note(&self) -> &str {
        match self {
            Outcome::Reply { note, .. } | Outcome::Ignored { note } => note,
        }
    }
}

/// A name as compared: lower case (DNS names are case-insensitive, RFC
/// 4343), no trailing dot.
fn canonical(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The answer to `datagram` from a server that knows `hosts` (name,
/// address) and nothing else.
pub fn answer(datagram: &[u8], hosts: &[(String, Ipv4Addr)]) -> Outcome {
    if datagram.len() < HEADER_LEN {
        return Outcome::Ignored {
            note: format!(
                "dns: ignored a datagram of {} B: shorter than a DNS header",
                datagram.len()
            ),
        };
    }
    // The QR bit: a response is never answered (no loops with another server).
    if datagram[2] & 0x80 != 0 {
        return Outcome::Ignored {
            note: "dns: ignored a response (QR set): this server only answers queries".into(),
        };
    }
    let id = u16::from_be_bytes([datagram[0], datagram[1]]);
    let query = match Packet::parse(datagram) {
        Ok(q) => q,
        Err(e) => return error_reply(id, None, RCODE::FormatError, &format!("unparsable ({e})")),
    };
    if query.opcode() != OPCODE::StandardQuery {
        let why = format!("opcode {:?} (only standard queries)", query.opcode());
        return error_reply(id, Some(&query), RCODE::NotImplemented, &why);
    }
    let [question] = &query.questions[..] else {
        let why = format!("{} questions (one is answered)", query.questions.len());
        return error_reply(id, Some(&query), RCODE::FormatError, &why);
    };
    let name = canonical(&question.qname.to_string());
    let asked = format!("{:?} {name}", question.qtype);
    if !matches!(question.qclass, QCLASS::CLASS(CLASS::IN) | QCLASS::ANY) {
        let why = format!("{asked}: class {:?} (only IN)", question.qclass);
        return error_reply(id, Some(&query), RCODE::Refused, &why);
    }
    let mut reply = reply_to(id, &query, question);
    let Some(address) = hosts
        .iter()
        .find(|(host, _)| canonical(host) == name)
        .map(|(_, a)| *a)
    else {
        *reply.rcode_mut() = RCODE::NameError;
        return built(
            reply,
            format!("dns: {asked}: NXDOMAIN (not a name of this rig)"),
        );
    };
    if !matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY) {
        return built(
            reply,
            format!(
                "dns: {asked}: no such record (NOERROR, no answer; {name} has an A record only)"
            ),
        );
    }
    reply.answers.push(ResourceRecord::new(
        question.qname.clone(),
        CLASS::IN,
        TTL_S,
        RData::A(A::from(address)),
    ));
    built(reply, format!("dns: {asked}: {address}"))
}

/// An authoritative reply to `query`, its question echoed, its RD flag
/// copied (RFC 1035 4.1.1), no recursion available.
fn reply_to<'a>(id: u16, query: &Packet<'_>, question: &Question<'a>) -> Packet<'a> {
    let mut reply = Packet::new_reply(id);
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    if query.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    reply.questions.push(question.clone());
    reply
}

/// A reply with `rcode` and no question echoed (the query may have none,
/// or several, or be unreadable).
fn error_reply(id: u16, query: Option<&Packet<'_>>, rcode: RCODE, why: &str) -> Outcome {
    let mut reply = Packet::new_reply(id);
    if let Some(q) = query {
        *reply.opcode_mut() = q.opcode();
        if q.has_flags(PacketFlag::RECURSION_DESIRED) {
            reply.set_flags(PacketFlag::RECURSION_DESIRED);
        }
    }
    *reply.rcode_mut() = rcode;
    built(reply, format!("dns: {rcode:?} to a query: {why}"))
}

fn built(reply: Packet<'_>, note: String) -> Outcome {
    match reply.build_bytes_vec() {
        Ok(bytes) => Outcome::Reply { bytes, note },
        Err(e) => Outcome::Ignored {
            note: format!("dns: ignored a query whose answer could not be written ({e}): {note}"),
        },
    }
}

/// `name` as a DNS name, for a query (the tests' and the responders' own).
pub fn query(id: u16, name: &str, qtype: TYPE) -> Result<Vec<u8>, String> {
    let mut q = Packet::new_query(id);
    q.set_flags(PacketFlag::RECURSION_DESIRED);
    q.questions.push(Question::new(
        Name::new(name).map_err(|e| format!("{name:?}: {e}"))?,
        QTYPE::TYPE(qtype),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    q.build_bytes_vec().map_err(|e| format!("{name:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<(String, Ipv4Addr)> {
        vec![
            ("hub3.sacbench.test".into(), Ipv4Addr::new(10, 200, 3, 6)),
            ("gw3.sacbench.test".into(), Ipv4Addr::new(10, 200, 3, 1)),
        ]
    }

    fn reply(outcome: Outcome) -> (Vec<u8>, String) {
        match outcome {
            Outcome::Reply { bytes, note } => (bytes, note),
            Outcome::Ignored { note } => panic!("ignored: {note}"),
        }
    }

    #[test]
    fn a_rig_name_gets_its_address_authoritatively() {
        let q = query(0x1234, "hub3.sacbench.test", TYPE::A).unwrap();
        let (bytes, note) = reply(answer(&q, &hosts()));
        let r = Packet::parse(&bytes).unwrap();
        assert_eq!(r.id(), 0x1234);
        assert!(r.has_flags(PacketFlag::RESPONSE | PacketFlag::AUTHORITATIVE_ANSWER));
        assert!(r.has_flags(PacketFlag::RECURSION_DESIRED), "RD copied");
        assert!(
            !r.has_flags(PacketFlag::RECURSION_AVAILABLE),
            "no recursion"
        );
        assert_eq!(r.rcode(), RCODE::NoError);
        assert_eq!(r.questions.len(), 1, "the question echoed");
        assert_eq!(r.questions[0].qname.to_string(), "hub3.sacbench.test");
        assert_eq!(r.answers.len(), 1);
        let a = &r.answers[0];
        assert_eq!(a.name.to_string(), "hub3.sacbench.test");
        assert_eq!(a.ttl, TTL_S);
        assert_eq!(a.rdata, RData::A(A::from(Ipv4Addr::new(10, 200, 3, 6))));
        assert_eq!(note, "dns: TYPE(A) hub3.sacbench.test: 10.200.3.6");
        // Names are case-insensitive; the question is echoed as asked.
        let q = query(7, "GW3.Sacbench.TEST.", TYPE::A).unwrap();
        let bytes = reply(answer(&q, &hosts())).0;
        let r = Packet::parse(&bytes).unwrap();
        assert_eq!(
            r.answers[0].rdata,
            RData::A(A::from(Ipv4Addr::new(10, 200, 3, 1)))
        );
    }

    #[test]
    fn another_name_is_nxdomain_and_another_type_has_no_answer() {
        for name in ["example.com", "hub4.sacbench.test", "sacbench.test"] {
            let q = query(9, name, TYPE::A).unwrap();
            let (bytes, note) = reply(answer(&q, &hosts()));
            let r = Packet::parse(&bytes).unwrap();
            assert_eq!(r.rcode(), RCODE::NameError, "{name}");
            assert!(r.has_flags(PacketFlag::AUTHORITATIVE_ANSWER));
            assert!(r.answers.is_empty());
            assert!(note.contains("NXDOMAIN") && note.contains(name), "{note}");
        }
        let q = query(10, "hub3.sacbench.test", TYPE::AAAA).unwrap();
        let (bytes, note) = reply(answer(&q, &hosts()));
        let r = Packet::parse(&bytes).unwrap();
        assert_eq!(r.rcode(), RCODE::NoError);
        assert!(r.answers.is_empty(), "no AAAA record");
        assert!(note.contains("no such record"), "{note}");
    }

    #[test]
    fn what_is_not_a_plain_query_is_refused_or_ignored_with_a_reason() {
        // Too short, and a response: nothing sent, a reason given.
        let short = answer(&[0; 11], &hosts());
        assert!(matches!(short, Outcome::Ignored { .. }), "{short:?}");
        assert!(short.note().contains("11 B"), "{}", short.note());
        let mut response = query(1, "hub3.sacbench.test", TYPE::A).unwrap();
        response[2] |= 0x80;
        let ignored = answer(&response, &hosts());
        assert!(matches!(ignored, Outcome::Ignored { .. }));
        assert!(ignored.note().contains("QR"), "{}", ignored.note());
        // Unparsable after the header: FORMERR with its id.
        let mut garbage = query(0x4242, "hub3.sacbench.test", TYPE::A).unwrap();
        garbage.truncate(15);
        let (bytes, note) = reply(answer(&garbage, &hosts()));
        let r = Packet::parse(&bytes).unwrap();
        assert_eq!((r.id(), r.rcode()), (0x4242, RCODE::FormatError));
        assert!(note.contains("unparsable"), "{note}");
        // Two questions: FORMERR.
        let mut two = Packet::new_query(5);
        for name in ["hub3.sacbench.test", "gw3.sacbench.test"] {
            two.questions.push(Question::new(
                Name::new(name).unwrap(),
                QTYPE::TYPE(TYPE::A),
                QCLASS::CLASS(CLASS::IN),
                false,
            ));
        }
        let (bytes, _) = reply(answer(&two.build_bytes_vec().unwrap(), &hosts()));
        assert_eq!(Packet::parse(&bytes).unwrap().rcode(), RCODE::FormatError);
        // Another opcode: NOTIMP; another class: REFUSED.
        let mut update = query(6, "hub3.sacbench.test", TYPE::A).unwrap();
        update[2] = (update[2] & 0x87) | (5 << 3);
        let (bytes, note) = reply(answer(&update, &hosts()));
        assert_eq!(
            Packet::parse(&bytes).unwrap().rcode(),
            RCODE::NotImplemented
        );
        assert!(note.contains("opcode"), "{note}");
        let mut chaos = query(8, "hub3.sacbench.test", TYPE::A).unwrap();
        let n = chaos.len();
        chaos[n - 2..].copy_from_slice(&3u16.to_be_bytes());
        let (bytes, note) = reply(answer(&chaos, &hosts()));
        assert_eq!(Packet::parse(&bytes).unwrap().rcode(), RCODE::Refused);
        assert!(note.contains("class"), "{note}");
    }
}
