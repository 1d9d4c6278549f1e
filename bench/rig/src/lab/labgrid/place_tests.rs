use super::*;

fn res(cls: &str, name: &str, params: &[(&str, Param)]) -> ResourceView {
    ResourceView {
        exporter: "exp1".into(),
        group: "board".into(),
        cls: cls.into(),
        name: name.into(),
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        avail: true,
    }
}

fn serial() -> ResourceView {
    res(
        "NetworkSerialPort",
        "NetworkSerialPort",
        &[
            ("host", Param::Str("127.0.0.1".into())),
            ("port", Param::Int(40123)),
            ("speed", Param::Int(115_200)),
        ],
    )
}

fn coil_res(name: &str, coil: i64, invert: bool) -> ResourceView {
    res(
        "ModbusTCPCoil",
        name,
        &[
            ("host", Param::Str("127.0.0.1:1502".into())),
            ("coil", Param::Int(coil)),
            ("invert", Param::Bool(invert)),
        ],
    )
}

fn place_holding(rs: &[&ResourceView]) -> PlaceView {
    PlaceView {
        name: "board-1".into(),
        acquired: Some("bench/ci".into()),
        acquired_resources: rs.iter().map(|r| r.path()).collect(),
        ..PlaceView::default()
    }
}

#[test]
fn a_place_is_chosen_by_name_alias_or_all_its_tags() {
    let places = vec![
        PlaceView {
            name: "a".into(),
            aliases: vec!["alpha".into()],
            tags: BTreeMap::from([("board".into(), "nrf".into())]),
            ..PlaceView::default()
        },
        PlaceView {
            name: "b".into(),
            tags: BTreeMap::from([("board".into(), "nrf".into()), ("lab".into(), "2".into())]),
            ..PlaceView::default()
        },
    ];
    let names = |sel: PlaceSelector| -> Vec<String> {
        candidates(&places, &sel, "c:1")
            .unwrap()
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    assert_eq!(names(PlaceSelector::Name("alpha".into())), ["a"]);
    assert_eq!(
        names(PlaceSelector::Tags(BTreeMap::from([(
            "board".into(),
            "nrf".into()
        )]))),
        ["a", "b"]
    );
    let two = BTreeMap::from([("board".into(), "nrf".into()), ("lab".into(), "2".into())]);
    assert_eq!(names(PlaceSelector::Tags(two.clone())), ["b"]);
    assert_eq!(
        PlaceSelector::Tags(two).reservation_filter().get("lab"),
        Some(&"2".to_owned())
    );
    assert_eq!(
        PlaceSelector::Tags(BTreeMap::from([("lab".into(), "2".into())])).to_string(),
        "tagged lab=2"
    );
    assert_eq!(
        PlaceSelector::Name("a".into()).reservation_filter(),
        BTreeMap::from([("name".to_owned(), "a".to_owned())])
    );
    let e = candidates(&places, &PlaceSelector::Name("zz".into()), "c:1").unwrap_err();
    assert_eq!(e.fault, Fault::Place);
    assert_eq!(
        e.to_string(),
        "labgrid place zz: the coordinator at c:1 has no such place (it has: a, b); `labgrid-client -x c:1 places` lists them"
    );
}

#[test]
fn serial_port_and_coils_become_console_power_and_link() {
    let (s, p, l) = (
        serial(),
        coil_res("power", 0, false),
        coil_res("link", 1, true),
    );
    let place = place_holding(&[&s, &p, &l]);
    let r = resolve(&place, &[s.clone(), p.clone(), l.clone()]).unwrap();
    let console = r.console.unwrap();
    assert_eq!(console.port, "rfc2217://127.0.0.1:40123");
    assert_eq!(console.baud.get(), 115_200);
    let power = r.power.unwrap();
    assert_eq!(
        power.relay,
        ModbusEndpoint::Tcp {
            host: "127.0.0.1".into(),
            port: 1502
        }
    );
    assert_eq!((power.unit, power.coil, power.on_value), (1, 0, true));
    // `invert` flips the value that connects.
    assert_eq!(
        r.link,
        Some(LinkConfig {
            coil: 1,
            up_value: false
        })
    );
    assert_eq!(r.exporters, ["exp1"]);
    assert_eq!(r.dut_address, None);
    // The DUT's network: a NetworkService's address.
    let svc = res(
        "NetworkService",
        "NetworkService",
        &[("address", Param::Str("192.0.2.20".into()))],
    );
    let r = resolve(&place_holding(&[&svc]), std::slice::from_ref(&svc)).unwrap();
    assert_eq!(r.dut_address.as_deref(), Some("192.0.2.20"));
    // A single coil is power whatever its name; no link then.
    let only = coil_res("relay", 4, false);
    let r = resolve(&place_holding(&[&only]), std::slice::from_ref(&only)).unwrap();
    assert_eq!(r.power.map(|p| p.coil), Some(4));
    assert_eq!(r.link, None);
    assert_eq!(r.console, None);
}

#[test]
fn unusable_resources_are_one_error_naming_whose_fault() {
    let s = serial();
    // The place lists a resource the exporter no longer offers: the exporter's fault.
    let e = resolve(&place_holding(&[&s]), &[]).unwrap_err();
    assert_eq!((e.fault, e.who.as_str()), (Fault::Exporter, "exp1"));
    assert!(e.message.contains("no longer offers"), "{e}");
    let mut gone = s.clone();
    gone.avail = false;
    let e = resolve(&place_holding(&[&gone]), &[gone.clone()]).unwrap_err();
    assert_eq!(e.fault, Fault::Exporter);
    assert!(e.message.contains("not available"), "{e}");
    // Two coils, neither named power: the place's configuration is ambiguous.
    let (a, b) = (coil_res("a", 0, false), coil_res("b", 1, false));
    let e = resolve(&place_holding(&[&a, &b]), &[a.clone(), b.clone()]).unwrap_err();
    assert_eq!((e.fault, e.who.as_str()), (Fault::Place, "board-1"));
    // A power port of another model: one error naming its model.
    let pdu = res(
        "NetworkPowerPort",
        "NetworkPowerPort",
        &[("model", Param::Str("gude".into()))],
    );
    let e = resolve(&place_holding(&[&pdu]), std::slice::from_ref(&pdu)).unwrap_err();
    assert!(e.message.contains("model \"gude\""), "{e}");
    // A raw TCP serial port is not RFC 2217.
    let mut raw = serial();
    raw.params
        .insert("protocol".into(), Param::Str("raw".into()));
    let e = resolve(&place_holding(&[&raw]), std::slice::from_ref(&raw)).unwrap_err();
    assert!(e.message.contains("RFC 2217"), "{e}");
    // A serial port whose ser2net is not running has no port yet.
    let mut unstarted = serial();
    unstarted.params.remove("port");
    let e = resolve(
        &place_holding(&[&unstarted]),
        std::slice::from_ref(&unstarted),
    )
    .unwrap_err();
    assert!(e.message.contains("no port parameter"), "{e}");
    // A link coil on another relay.
    let p = coil_res("power", 0, false);
    let mut l = coil_res("link", 1, false);
    l.params
        .insert("host".into(), Param::Str("192.0.2.9".into()));
    let e = resolve(&place_holding(&[&p, &l]), &[p.clone(), l.clone()]).unwrap_err();
    assert!(e.message.contains("another coil of the power relay"), "{e}");
}

#[test]
fn a_simplerest_power_port_is_power_when_no_coil_is() {
    let pdu = res(
        "NetworkPowerPort",
        "NetworkPowerPort",
        &[
            ("model", Param::Str("simplerest".into())),
            (
                "host",
                Param::Str("http://192.0.2.7/relay/{index}/{value}".into()),
            ),
            ("index", Param::Str("2".into())),
        ],
    );
    let r = resolve(&place_holding(&[&pdu]), std::slice::from_ref(&pdu)).unwrap();
    let port = r.power_port.unwrap();
    assert_eq!(
        (port.url.as_str(), port.index),
        ("http://192.0.2.7/relay/{index}/{value}", 2)
    );
    assert_eq!(r.power, None);
    // A coil, when there is one, is the power; the port is not used.
    let c = coil_res("power", 0, false);
    let r = resolve(&place_holding(&[&c, &pdu]), &[c.clone(), pdu.clone()]).unwrap();
    assert!(r.power.is_some() && r.power_port.is_none());
}

#[test]
fn modbus_host_without_port_is_502() {
    let mut c = coil_res("power", 2, false);
    c.params
        .insert("host".into(), Param::Str("relay.lab".into()));
    let r = resolve(&place_holding(&[&c]), std::slice::from_ref(&c)).unwrap();
    assert_eq!(
        r.power.unwrap().relay,
        ModbusEndpoint::Tcp {
            host: "relay.lab".into(),
            port: 502
        }
    );
}

fn record(pid: u32) -> Record {
    Record {
        coordinator: "c:1".into(),
        place: "board-1".into(),
        user: "bench/ci".into(),
        pid,
        started: 1,
        token: "T".into(),
    }
}

#[test]
fn only_our_own_dead_benchs_acquisition_is_stale() {
    let mut place = place_holding(&[]);
    let dead = |_| false;
    let alive = |_| true;
    // Ours, recorded, its process gone: stale.
    assert_eq!(
        holder(&place, "bench/ci", Some(&record(7)), dead),
        Holder::Stale(record(7))
    );
    // Ours, recorded, still running (a second bench of ours): wait.
    let Holder::Held(by) = holder(&place, "bench/ci", Some(&record(7)), alive) else {
        panic!("a live bench's place is held");
    };
    assert!(by.contains("pid 7, still running"), "{by}");
    // Ours by name, but no record here (labgrid-client by hand): wait, and say how to free it.
    let Holder::Held(by) = holder(&place, "bench/ci", None, dead) else {
        panic!("held");
    };
    assert!(by.contains("labgrid-client -p board-1 release"), "{by}");
    // Someone else's: wait, whatever the record says.
    assert_eq!(
        holder(&place, "other/ci", Some(&record(7)), dead),
        Holder::Held("bench/ci".into())
    );
    // A record of another place is no licence either.
    let mut other = record(7);
    other.place = "board-2".into();
    assert!(matches!(
        holder(&place, "bench/ci", Some(&other), dead),
        Holder::Held(_)
    ));
    place.acquired = None;
    assert_eq!(
        holder(&place, "bench/ci", Some(&record(7)), dead),
        Holder::Free
    );
}

#[test]
fn grpc_failures_are_classified_by_whose_fault() {
    use tonic::Code;
    assert_eq!(
        classify(Code::Unavailable, "connection refused"),
        Fault::Coordinator
    );
    assert_eq!(classify(Code::Internal, "boom"), Fault::Coordinator);
    assert_eq!(
        classify(
            Code::FailedPrecondition,
            "Failed to acquire resources for place p"
        ),
        Fault::Exporter
    );
    assert_eq!(
        classify(Code::InvalidArgument, "Place p does not exist"),
        Fault::Place
    );
    assert_eq!(
        classify(Code::FailedPrecondition, "Place p is already acquired"),
        Fault::Place
    );
    assert_eq!(
        classify(Code::PermissionDenied, "Place p was not reserved for u"),
        Fault::Place
    );
}
