//! The thin gRPC shell: one session with a labgrid coordinator that
//! reserves, acquires and resolves a place ([`acquire`]), and the release
//! ([`Acquisition::release`], also on drop).
//!
//! The coordinator knows a client by its HTTP/2 connection: AcquirePlace
//! and CreateReservation only work on the connection that carries an open
//! ClientStream on which the client said who it is (StartupDone, `host/user`).
//! So everything up to the acquisition goes over one channel. Releasing
//! needs no session (ReleasePlace with `fromuser`), so it opens its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{unbounded, UnboundedSender};
use tonic::transport::{Channel, Endpoint};

use super::place::{self, Fault, Holder, LabgridError, Param, PlaceView, Record, ResourceView};
use super::proto::{self, coordinator_client::CoordinatorClient};
use super::record;
use crate::lab::config::LabgridConfig;

/// How long one call to the coordinator may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a waiting bench asks about its reservation (and so keeps it
/// alive: the coordinator expires one not polled for 60 s), unless the
/// coordinator's place updates wake it sooner.
const POLL: Duration = Duration::from_secs(1);

/// A place this bench holds. Dropping it releases the place (blocking, on a
/// runtime of its own); [`Acquisition::release`] does so and reports.
#[derive(Debug)]
pub struct Acquisition {
    /// The coordinator, `host:port`.
    pub coordinator: String,
    /// The place.
    pub place: String,
    /// The name the bench acquired it as (`host/user`).
    pub user: String,
    /// What the place's resources are in the lab rig's terms.
    pub resolved: place::Resolved,
    record: Record,
    record_dir: PathBuf,
    released: bool,
}

/// The name the bench gives the coordinator: `host/user`, as labgrid-client
/// does (and, like it, `LG_HOSTNAME` and `LG_USERNAME` override the parts).
pub fn user_name() -> String {
    let host = std::env::var("LG_HOSTNAME").ok().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    });
    let user = std::env::var("LG_USERNAME")
        .ok()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "sacbench".into());
    format!("{host}/{user}")
}

struct Session {
    coordinator: String,
    client: CoordinatorClient<Channel>,
}

impl Session {
    async fn connect(coordinator: &str) -> Result<Session, LabgridError> {
        let err = |m: String| LabgridError::new(Fault::Coordinator, coordinator, m);
        let endpoint = Endpoint::from_shared(format!("http://{coordinator}"))
            .map_err(|e| err(format!("not a host:port: {e}")))?
            .connect_timeout(Duration::from_secs(5));
        let channel = endpoint.connect().await.map_err(|e| {
            err(format!(
                "cannot connect ({}); is labgrid-coordinator running and reachable there?",
                source_chain(&e)
            ))
        })?;
        Ok(Session {
            coordinator: coordinator.to_owned(),
            client: CoordinatorClient::new(channel),
        })
    }

    /// A failed call: whose fault by its status (see [`place::classify`]).
    fn status(&self, step: &str, place: &str, s: &tonic::Status) -> LabgridError {
        let fault = place::classify(s.code(), s.message());
        let who = match fault {
            Fault::Coordinator => self.coordinator.clone(),
            Fault::Exporter => format!("of place {place}"),
            Fault::Place => place.to_owned(),
        };
        LabgridError::new(fault, who, format!("{step}: {}", s.message()))
    }

    fn timed_out(&self, step: &str) -> LabgridError {
        LabgridError::new(
            Fault::Coordinator,
            &self.coordinator,
            format!("{step}: no answer within {} s", RPC_TIMEOUT.as_secs()),
        )
    }

    async fn places(&mut self) -> Result<Vec<PlaceView>, LabgridError> {
        let r = tokio::time::timeout(
            RPC_TIMEOUT,
            self.client.get_places(proto::GetPlacesRequest {}),
        )
        .await
        .map_err(|_| self.timed_out("GetPlaces"))?
        .map_err(|s| self.status("GetPlaces", "", &s))?;
        Ok(r.into_inner().places.into_iter().map(place_view).collect())
    }

    async fn release(&mut self, place: &str, user: &str) -> Result<(), LabgridError> {
        let req = proto::ReleasePlaceRequest {
            placename: place.to_owned(),
            fromuser: Some(user.to_owned()),
        };
        tokio::time::timeout(RPC_TIMEOUT, self.client.release_place(req))
            .await
            .map_err(|_| self.timed_out("ReleasePlace"))?
            .map_err(|s| self.status("releasing the place", place, &s))?;
        Ok(())
    }

    /// Cancels a reservation; one the coordinator no longer has is fine.
    async fn cancel(&mut self, token: &str) -> Result<(), LabgridError> {
        let req = proto::CancelReservationRequest {
            token: token.to_owned(),
        };
        match tokio::time::timeout(RPC_TIMEOUT, self.client.cancel_reservation(req)).await {
            Err(_) => Err(self.timed_out("CancelReservation")),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(s)) if s.code() == tonic::Code::FailedPrecondition => Ok(()),
            Ok(Err(s)) => Err(self.status("cancelling the reservation", "", &s)),
        }
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn place_view(p: proto::Place) -> PlaceView {
    PlaceView {
        name: p.name,
        aliases: p.aliases,
        tags: p.tags.into_iter().collect(),
        acquired: p.acquired.filter(|a| !a.is_empty()),
        acquired_resources: p.acquired_resources,
    }
}

fn resource_view(r: proto::Resource) -> Option<ResourceView> {
    let path = r.path?;
    let params = r
        .params
        .into_iter()
        .filter_map(|(k, v)| {
            use proto::map_value::Kind;
            let v = match v.kind? {
                Kind::BoolValue(b) => Param::Bool(b),
                Kind::IntValue(i) => Param::Int(i),
                Kind::UintValue(u) => Param::Uint(u),
                Kind::FloatValue(f) => Param::Float(f),
                Kind::StringValue(s) => Param::Str(s),
            };
            Some((k, v))
        })
        .collect();
    Some(ResourceView {
        exporter: path.exporter_name.unwrap_or_default(),
        group: path.group_name,
        cls: r.cls,
        name: path.resource_name,
        params,
        avail: r.avail,
    })
}

/// The resources the coordinator streams, by path.
#[derive(Default)]
struct Resources(BTreeMap<(String, String, String), ResourceView>);

impl Resources {
    fn apply(&mut self, updates: Vec<proto::UpdateResponse>) {
        use proto::update_response::Kind;
        for u in updates {
            match u.kind {
                Some(Kind::Resource(r)) => {
                    if let Some(r) = resource_view(r) {
                        self.0
                            .insert((r.exporter.clone(), r.group.clone(), r.name.clone()), r);
                    }
                }
                Some(Kind::DelResource(p)) => {
                    self.0.remove(&(
                        p.exporter_name.unwrap_or_default(),
                        p.group_name,
                        p.resource_name,
                    ));
                }
                _ => {}
            }
        }
    }
}

/// The open ClientStream: what the bench sends, and the coordinator's updates.
struct Stream {
    tx: UnboundedSender<proto::ClientInMessage>,
    rx: tonic::Streaming<proto::ClientOutMessage>,
    next_sync: u64,
}

impl Stream {
    /// Sends a Sync and applies every update until its answer: afterwards
    /// `resources` holds all the coordinator had queued before it.
    async fn sync(&mut self, s: &Session, resources: &mut Resources) -> Result<(), LabgridError> {
        let id = self.next_sync;
        self.next_sync += 1;
        let msg = proto::ClientInMessage {
            kind: Some(proto::client_in_message::Kind::Sync(proto::Sync { id })),
        };
        self.tx.unbounded_send(msg).map_err(|_| {
            LabgridError::new(
                Fault::Coordinator,
                &s.coordinator,
                "the session stream closed",
            )
        })?;
        loop {
            let out = tokio::time::timeout(RPC_TIMEOUT, self.rx.message())
                .await
                .map_err(|_| s.timed_out("Sync"))?
                .map_err(|st| s.status("the session stream", "", &st))?
                .ok_or_else(|| {
                    LabgridError::new(
                        Fault::Coordinator,
                        &s.coordinator,
                        "the coordinator ended the session stream",
                    )
                })?;
            resources.apply(out.updates);
            if out.sync.is_some_and(|y| y.id == id) {
                return Ok(());
            }
        }
    }

    /// Waits for the coordinator's next update (a place changed) or `at_most`.
    async fn next_update(
        &mut self,
        s: &Session,
        resources: &mut Resources,
        at_most: Duration,
    ) -> Result<(), LabgridError> {
        match tokio::time::timeout(at_most, self.rx.message()).await {
            Err(_) => Ok(()),
            Ok(Ok(Some(out))) => {
                resources.apply(out.updates);
                Ok(())
            }
            Ok(Ok(None)) => Err(LabgridError::new(
                Fault::Coordinator,
                &s.coordinator,
                "the coordinator ended the session stream",
            )),
            Ok(Err(st)) => Err(s.status("the session stream", "", &st)),
        }
    }
}

async fn open_stream(s: &mut Session, user: &str) -> Result<Stream, LabgridError> {
    use proto::client_in_message::Kind;
    let (tx, rx) = unbounded();
    let send = |k: Kind| {
        let _ = tx.unbounded_send(proto::ClientInMessage { kind: Some(k) });
    };
    send(Kind::Startup(proto::StartupDone {
        version: format!("sacbench-{}", env!("CARGO_PKG_VERSION")),
        name: user.to_owned(),
    }));
    for kind in [
        proto::subscribe::Kind::AllResources(true),
        proto::subscribe::Kind::AllPlaces(true),
    ] {
        send(Kind::Subscribe(proto::Subscribe {
            is_unsubscribe: None,
            kind: Some(kind),
        }));
    }
    let rx = tokio::time::timeout(RPC_TIMEOUT, s.client.client_stream(rx))
        .await
        .map_err(|_| s.timed_out("ClientStream"))?
        .map_err(|st| s.status("opening the session stream", "", &st))?
        .into_inner();
    Ok(Stream {
        tx,
        rx,
        next_sync: 1,
    })
}

/// Releases every place `config` names that a killed bench of this host
/// left acquired under `user` (see [`place::holder`]), saying so.
async fn recover_stale(
    s: &mut Session,
    places: &[PlaceView],
    config: &LabgridConfig,
    user: &str,
    record_dir: &Path,
    say: &mut dyn FnMut(String),
) -> Result<(), LabgridError> {
    let coord = config.coordinator.as_str();
    for p in place::candidates(places, &config.selector, coord)? {
        let rec = record::read(record_dir, coord, &p.name);
        if let Holder::Stale(r) = place::holder(p, user, rec.as_ref(), record::alive) {
            say(format!(
                "labgrid: place {} on {coord} was left acquired by {user} (the bench run with pid {}, started at Unix time {}), which is no longer running: releasing it (by hand: labgrid-client -x {coord} -p {} release --kick)",
                p.name, r.pid, r.started, p.name
            ));
            // Reservation first: the coordinator hands a released place to
            // the next reservation only once the place has none.
            s.cancel(&r.token).await?;
            s.release(&p.name, user).await?;
            record::remove(record_dir, &r);
        }
    }
    Ok(())
}

/// Reserves, acquires and resolves the place `config` names, as `user`
/// (see [`user_name`]), keeping the bench's record in `record_dir` (see
/// [`record::default_dir`]). Progress lines (waiting, a stale lock lifted)
/// go to `say`; `interrupted` is asked while waiting, and a `true` gives up.
pub async fn acquire(
    config: &LabgridConfig,
    user: &str,
    record_dir: &Path,
    say: &mut dyn FnMut(String),
    interrupted: &dyn Fn() -> bool,
) -> Result<Acquisition, LabgridError> {
    let coord = config.coordinator.as_str();
    let mut s = Session::connect(coord).await?;
    let mut stream = open_stream(&mut s, user).await?;
    let mut resources = Resources::default();
    stream.sync(&s, &mut resources).await?;

    // A lock this host's killed bench left behind: lift it, and say so.
    let places = s.places().await?;
    recover_stale(&mut s, &places, config, user, record_dir, say).await?;

    // Reserve: the coordinator hands the place over when it is free.
    let filter = proto::reservation::Filter {
        filter: config.selector.reservation_filter().into_iter().collect(),
    };
    let req = proto::CreateReservationRequest {
        filters: [("main".to_owned(), filter)].into_iter().collect(),
        prio: 0.0,
    };
    let what = config.selector.to_string();
    let token = tokio::time::timeout(RPC_TIMEOUT, s.client.create_reservation(req))
        .await
        .map_err(|_| s.timed_out("CreateReservation"))?
        .map_err(|st| s.status("reserving", &what, &st))?
        .into_inner()
        .reservation
        .map(|r| r.token)
        .unwrap_or_default();
    let waited = Instant::now();
    let timeout = Duration::from_secs(config.timeout_s.into());
    let mut said = false;
    let name = loop {
        let poll = proto::PollReservationRequest {
            token: token.clone(),
        };
        let res = tokio::time::timeout(RPC_TIMEOUT, s.client.poll_reservation(poll))
            .await
            .map_err(|_| s.timed_out("PollReservation"))?
            .map_err(|st| s.status("waiting for the reservation", &what, &st))?
            .into_inner()
            .reservation
            .unwrap_or_default();
        match res.state {
            // allocated, acquired
            1 | 2 => {
                if let Some(name) = res.allocations.get("main") {
                    break name.clone();
                }
            }
            // waiting
            0 => {}
            state => {
                return Err(LabgridError::new(
                    Fault::Place,
                    &what,
                    format!(
                        "the reservation became {} while waiting",
                        if state == 3 { "expired" } else { "invalid" }
                    ),
                ))
            }
        }
        let places = s.places().await?;
        // A bench of this host that held it may have been killed meanwhile.
        recover_stale(&mut s, &places, config, user, record_dir, say).await?;
        let held: Vec<String> = places
            .iter()
            .filter(|p| {
                place::candidates(std::slice::from_ref(*p), &config.selector, coord).is_ok()
            })
            .filter_map(|p| p.acquired.as_ref().map(|a| format!("{} by {a}", p.name)))
            .collect();
        if !said {
            say(format!(
                "labgrid: waiting for place {what} on {coord} (held: {}), up to {} s (labgrid.timeout_s)",
                if held.is_empty() { "reserved by another".into() } else { held.join(", ") },
                config.timeout_s
            ));
            said = true;
        }
        if waited.elapsed() >= timeout || interrupted() {
            let _ = s.cancel(&token).await;
            let why = if interrupted() {
                "interrupted while waiting for it".to_owned()
            } else {
                format!(
                    "still not free after {} s (labgrid.timeout_s); held: {}",
                    config.timeout_s,
                    held.join(", ")
                )
            };
            return Err(LabgridError::new(Fault::Place, &what, why));
        }
        stream.next_update(&s, &mut resources, POLL).await?;
    };

    let req = proto::AcquirePlaceRequest {
        placename: name.clone(),
    };
    let acquired = tokio::time::timeout(RPC_TIMEOUT, s.client.acquire_place(req)).await;
    if let Err(e) = acquired
        .map_err(|_| s.timed_out("AcquirePlace"))
        .and_then(|r| r.map_err(|st| s.status("acquiring", &name, &st)))
    {
        let _ = s.cancel(&token).await;
        return Err(e);
    }
    // The reservation has done its work. The coordinator frees a released
    // place for the next waiting reservation only if it has no reservation of
    // its own left (else only at its next periodic scheduling, seconds later):
    // cancelling it now lets the next bench in the moment this one releases.
    if let Err(e) = s.cancel(&token).await {
        say(format!("labgrid: {e} (the place is acquired all the same)"));
    }
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rec = Record {
        coordinator: coord.to_owned(),
        place: name.clone(),
        user: user.to_owned(),
        pid: std::process::id(),
        started,
        token,
    };
    let mut acq = Acquisition {
        coordinator: coord.to_owned(),
        place: name.clone(),
        user: user.to_owned(),
        resolved: place::Resolved::default(),
        record: rec.clone(),
        record_dir: record_dir.to_owned(),
        released: false,
    };
    if let Err(e) = record::write(record_dir, &rec) {
        say(format!(
            "labgrid: cannot record the acquisition in {} ({e}): if this run is killed, release place {name} by hand",
            record_dir.display()
        ));
    }
    // The exporters start their servers (ser2net) on acquisition and
    // publish the new parameters before they answer it: one more Sync has them.
    stream.sync(&s, &mut resources).await?;
    let places = s.places().await?;
    let place = places.iter().find(|p| p.name == name).ok_or_else(|| {
        LabgridError::new(
            Fault::Place,
            &name,
            "deleted from the coordinator while being acquired",
        )
    })?;
    let all: Vec<ResourceView> = resources.0.into_values().collect();
    // On failure `acq` is dropped here, which releases the place.
    acq.resolved = place::resolve(place, &all)?;
    Ok(acq)
}

impl Acquisition {
    /// Releases the place (only if still held under this name), cancels the
    /// reservation, removes the record.
    pub async fn release(mut self) -> Result<(), LabgridError> {
        self.released = true;
        self.release_inner().await
    }

    async fn release_inner(&self) -> Result<(), LabgridError> {
        let mut s = Session::connect(&self.coordinator)
            .await
            .map_err(|e| self.hint(e))?;
        // Cancelled after acquiring already; a no-op unless that failed.
        s.cancel(&self.record.token)
            .await
            .map_err(|e| self.hint(e))?;
        s.release(&self.place, &self.user)
            .await
            .map_err(|e| self.hint(e))?;
        record::remove(&self.record_dir, &self.record);
        Ok(())
    }

    /// A failed release says how to do it by hand.
    fn hint(&self, mut e: LabgridError) -> LabgridError {
        e.message.push_str(&format!(
            "; place {} is still acquired: release it with `labgrid-client -x {} -p {} release --kick` (or the next bench run on this host does)",
            self.place, self.coordinator, self.place
        ));
        e
    }
}

impl Drop for Acquisition {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Not from inside a runtime's worker (block_on would panic): a thread of its own.
        let result = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| {
                            LabgridError::new(Fault::Coordinator, &self.coordinator, e.to_string())
                        })?
                        .block_on(self.release_inner())
                })
                .join()
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("sacbench: {e}"),
            Err(_) => eprintln!("sacbench: releasing labgrid place {} panicked", self.place),
        }
    }
}
