//! What NI-02 sends to each well-known UDP port: a request the service on
//! that port answers (a DNS query, a DHCP DISCOVER, a TFTP read request,
//! an NTP client packet, an SNMP get-request, an SSDP M-SEARCH, an mDNS
//! query, a CoAP GET of /.well-known/core, a BACnet Who-Is). A real service
//! ignores a generic probe; it answers its own protocol. Pure: bytes only.

/// The probe for `port`; a generic probe for other ports.
pub fn payload(port: u16) -> Vec<u8> {
    match port {
        53 => dns_query(0x5ac1, false),
        5353 => dns_query(0, true),
        67 => dhcp_discover(),
        69 => tftp_read_request(),
        123 => ntp_client(),
        161 => snmp_get_sysdescr(),
        1900 => ssdp_msearch(),
        5683 => coap_get_core(),
        47808 => bacnet_who_is(),
        _ => b"\x00sacbench-probe\r\n".to_vec(),
    }
}

/// What the probe of `port` asks, for the report.
pub fn describe(port: u16) -> &'static str {
    match port {
        53 => "DNS query",
        5353 => "mDNS query",
        67 => "DHCP DISCOVER",
        69 => "TFTP read request",
        123 => "NTP client request",
        161 => "SNMP get-request (public)",
        1900 => "SSDP M-SEARCH",
        5683 => "CoAP GET /.well-known/core",
        47808 => "BACnet Who-Is",
        _ => "generic probe",
    }
}

/// A query for `sacbench.test` A (mDNS: `_services._dns-sd._udp.local` PTR,
/// unicast response requested).
fn dns_query(id: u16, mdns: bool) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(if mdns { &[0, 0] } else { &[0x01, 0x00] }); // RD for DNS
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // 1 question
    let name: &[&str] = if mdns {
        &["_services", "_dns-sd", "_udp", "local"]
    } else {
        &["sacbench", "test"]
    };
    for label in name {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    if mdns {
        p.extend_from_slice(&[0, 12, 0x80, 1]); // PTR, QU bit + IN
    } else {
        p.extend_from_slice(&[0, 1, 0, 1]); // A, IN
    }
    p
}

fn dhcp_discover() -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[4..8].copy_from_slice(&0x5ac1_5ac1u32.to_be_bytes()); // xid
    p[10] = 0x80; // broadcast flag: the reply is broadcast, not to an address we lack
    p[28..34].copy_from_slice(&[0x02, 0x5a, 0xc1, 0x00, 0x00, 0x01]); // chaddr
    p[236..240].copy_from_slice(&[99, 130, 83, 99]); // magic cookie
    p.extend_from_slice(&[53, 1, 1]); // DHCPDISCOVER
    p.extend_from_slice(&[55, 2, 1, 3]); // ask: subnet mask, router
    p.push(255);
    p.resize(300, 0);
    p
}

fn tftp_read_request() -> Vec<u8> {
    let mut p = vec![0, 1];
    p.extend_from_slice(b"sacbench-probe\0octet\0");
    p
}

fn ntp_client() -> Vec<u8> {
    let mut p = vec![0u8; 48];
    p[0] = 0x23; // LI 0, version 4, mode 3 (client)
    p
}

/// SNMPv1 GetRequest, community `public`, sysDescr.0 (1.3.6.1.2.1.1.1.0).
fn snmp_get_sysdescr() -> Vec<u8> {
    let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x01, 0x00];
    let varbind: Vec<u8> = [&[0x30, (oid.len() + 2) as u8][..], &oid, &[0x05, 0x00]].concat();
    let varbinds: Vec<u8> = [&[0x30, varbind.len() as u8][..], &varbind].concat();
    let pdu_body: Vec<u8> = [
        &[0x02, 0x01, 0x01][..], // request-id 1
        &[0x02, 0x01, 0x00],     // error-status
        &[0x02, 0x01, 0x00],     // error-index
        &varbinds,
    ]
    .concat();
    let pdu: Vec<u8> = [&[0xa0, pdu_body.len() as u8][..], &pdu_body].concat();
    let msg: Vec<u8> = [
        &[0x02, 0x01, 0x00][..], // version 1
        &[0x04, 0x06],
        b"public",
        &pdu,
    ]
    .concat();
    [&[0x30, msg.len() as u8][..], &msg].concat()
}

fn ssdp_msearch() -> Vec<u8> {
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n".to_vec()
}

/// CoAP confirmable GET, message id 0x5ac1, Uri-Path ".well-known" "core".
fn coap_get_core() -> Vec<u8> {
    let mut p = vec![0x40, 0x01, 0x5a, 0xc1];
    p.push(0xb0 | 11); // option 11 (Uri-Path), length 11
    p.extend_from_slice(b".well-known");
    p.push(0x04); // delta 0, length 4
    p.extend_from_slice(b"core");
    p
}

/// BACnet/IP Original-Unicast-NPDU (8 bytes) carrying a local unconfirmed Who-Is.
fn bacnet_who_is() -> Vec<u8> {
    vec![0x81, 0x0a, 0x00, 0x08, 0x01, 0x00, 0x10, 0x08]
}

/// A reply for the report: text if it reads as text, else hex (never a
/// list of decimal bytes).
pub fn show_reply(bytes: &[u8]) -> String {
    let printable = bytes
        .iter()
        .all(|b| b.is_ascii_graphic() || matches!(b, b' ' | b'\r' | b'\n' | b'\t'));
    if printable && !bytes.is_empty() {
        format!("{:?}", String::from_utf8_lossy(bytes))
    } else {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("hex {}", hex.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_query_is_a_well_formed_question() {
        let q = payload(53);
        assert_eq!(&q[..2], &[0x5a, 0xc1]);
        assert_eq!(&q[4..6], &[0, 1], "one question");
        assert!(q.windows(9).any(|w| w == b"\x08sacbench"));
        assert_eq!(&q[q.len() - 4..], &[0, 1, 0, 1]);
    }

    #[test]
    fn each_probe_speaks_its_protocol() {
        assert_eq!(payload(67).len(), 300);
        assert_eq!(&payload(67)[236..240], &[99, 130, 83, 99]);
        assert_eq!(&payload(69)[..2], &[0, 1], "TFTP RRQ");
        assert_eq!(payload(123)[0] & 0x07, 3, "NTP mode client");
        let snmp = payload(161);
        assert_eq!(snmp[0], 0x30);
        assert_eq!(snmp[1] as usize, snmp.len() - 2, "BER length");
        assert!(snmp.windows(6).any(|w| w == b"public"));
        assert!(payload(1900).starts_with(b"M-SEARCH * HTTP/1.1\r\n"));
        let coap = payload(5683);
        assert_eq!(coap[0] >> 6, 1, "CoAP version 1");
        assert_eq!(coap[1], 0x01, "GET");
        let bacnet = payload(47808);
        assert_eq!(
            u16::from_be_bytes([bacnet[2], bacnet[3]]) as usize,
            bacnet.len()
        );
        assert_eq!(&bacnet[bacnet.len() - 2..], &[0x10, 0x08], "Who-Is");
    }

    #[test]
    fn replies_show_as_text_or_hex() {
        assert_eq!(
            show_reply(b"HTTP/1.1 200 OK\r\n"),
            "\"HTTP/1.1 200 OK\\r\\n\""
        );
        assert_eq!(show_reply(&[0x5a, 0xc1, 0x81]), "hex 5a c1 81");
    }
}
