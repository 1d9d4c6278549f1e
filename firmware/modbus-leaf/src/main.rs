//! `modbus-leaf`: an emulated legacy device behind the field gateway — a
//! Modbus server (tokio-modbus) on TCP or on a serial line (RTU), with 100
//! holding and 100 input registers. Every write is logged on stderr
//! (`leaf: write unit=U register=R words=[..]`), so a case can prove what
//! was written and what was not.
//!
//! ```text
//! modbus-leaf --tcp 10.200.1.2:502 --unit 1 --set h0=215 --set i4=1000
//! modbus-leaf --rtu /dev/pts/7 --baud 9600 --unit 7
//! ```
#![forbid(unsafe_code)]

use std::future::ready;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use clap::Parser;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

const REGISTERS: usize = 100;

#[derive(Parser)]
#[command(name = "modbus-leaf", about = "An emulated legacy Modbus device")]
struct Cli {
    /// Serve Modbus TCP on this address.
    #[arg(long, conflicts_with = "rtu")]
    tcp: Option<SocketAddr>,
    /// Serve Modbus RTU on this serial device (e.g. one end of a socat pty pair).
    #[arg(long, requires = "baud")]
    rtu: Option<String>,
    #[arg(long)]
    baud: Option<u32>,
    /// The unit id it answers to.
    #[arg(long, default_value_t = 1)]
    unit: u8,
    /// Initial register values: `hN=V` (holding) or `iN=V` (input).
    #[arg(long = "set", value_parser = parse_set)]
    sets: Vec<(char, usize, u16)>,
}

fn parse_set(s: &str) -> Result<(char, usize, u16), String> {
    let (reg, value) = s.split_once('=').ok_or("expected hN=V or iN=V")?;
    let mut chars = reg.chars();
    let table = chars
        .next()
        .filter(|c| *c == 'h' || *c == 'i')
        .ok_or("expected h or i")?;
    let n: usize = chars
        .as_str()
        .parse()
        .map_err(|_| format!("{reg:?}: bad register"))?;
    if n >= REGISTERS {
        return Err(format!("register {n} is past {}", REGISTERS - 1));
    }
    let v: u16 = value
        .parse()
        .map_err(|_| format!("{value:?}: not 0..=65535"))?;
    Ok((table, n, v))
}

#[derive(Clone)]
struct Leaf {
    unit: u8,
    holding: Arc<Mutex<[u16; REGISTERS]>>,
    input: Arc<Mutex<[u16; REGISTERS]>>,
}

fn range(addr: u16, n: usize) -> Result<std::ops::Range<usize>, ExceptionCode> {
    let start = addr as usize;
    (start + n <= REGISTERS && n > 0)
        .then_some(start..start + n)
        .ok_or(ExceptionCode::IllegalDataAddress)
}

impl Leaf {
    fn answer(&self, req: Request<'static>) -> Result<Response, ExceptionCode> {
        match req {
            Request::ReadHoldingRegisters(a, n) => {
                let r = range(a, n as usize)?;
                Ok(Response::ReadHoldingRegisters(
                    self.holding.lock().expect("the register table lock")[r].to_vec(),
                ))
            }
            Request::ReadInputRegisters(a, n) => {
                let r = range(a, n as usize)?;
                Ok(Response::ReadInputRegisters(
                    self.input.lock().expect("the register table lock")[r].to_vec(),
                ))
            }
            Request::WriteSingleRegister(a, w) => {
                let r = range(a, 1)?;
                self.holding.lock().expect("the register table lock")[r].copy_from_slice(&[w]);
                eprintln!("leaf: write unit={} register={a} words=[{w}]", self.unit);
                Ok(Response::WriteSingleRegister(a, w))
            }
            Request::WriteMultipleRegisters(a, words) => {
                let r = range(a, words.len())?;
                self.holding.lock().expect("the register table lock")[r].copy_from_slice(&words);
                eprintln!(
                    "leaf: write unit={} register={a} words={words:?}",
                    self.unit
                );
                Ok(Response::WriteMultipleRegisters(a, words.len() as u16))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

impl Service for Leaf {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        // Another unit's request: a device on a shared line stays silent.
        if req.slave != self.unit {
            return ready(Ok(None));
        }
        ready(self.answer(req.request).map(Some))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let leaf = Leaf {
        unit: cli.unit,
        holding: Arc::new(Mutex::new([0; REGISTERS])),
        input: Arc::new(Mutex::new([0; REGISTERS])),
    };
    for (table, n, v) in &cli.sets {
        let regs = if *table == 'h' {
            &leaf.holding
        } else {
            &leaf.input
        };
        regs.lock().expect("the register table lock")[*n] = *v;
    }
    let served = match (cli.tcp, cli.rtu, cli.baud) {
        (Some(addr), None, _) => serve_tcp(addr, leaf).await,
        (None, Some(port), Some(baud)) => {
            match tokio_modbus::server::rtu::Server::new_from_path(&port, baud) {
                Ok(server) => {
                    eprintln!("leaf: unit {} on {port} at {baud} baud", cli.unit);
                    server.serve_forever(leaf).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(format!("{port}: {e}")),
            }
        }
        _ => Err("give --tcp ADDR or --rtu PORT --baud N".into()),
    };
    if let Err(e) = served {
        eprintln!("modbus-leaf: {e}");
        std::process::exit(2);
    }
}

async fn serve_tcp(addr: SocketAddr, leaf: Leaf) -> Result<(), String> {
    use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    // The bound address (port 0 picks a free one): whoever started us reads it here.
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("leaf: unit {} on {bound}", leaf.unit);
    let on_connected = move |stream, peer| {
        let leaf = leaf.clone();
        ready(accept_tcp_connection(stream, peer, move |_| {
            Ok(Some(leaf.clone()))
        }))
    };
    Server::new(listener)
        .serve(&on_connected, |e| eprintln!("leaf: {e}"))
        .await
        .map_err(|e| e.to_string())
}
