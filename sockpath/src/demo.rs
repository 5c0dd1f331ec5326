//! `sockpath demo`: the classic netcat experiment, replayed on loopback by sockpath's own
//! processes while it watches, so nothing else needs to be installed.
//!
//! A server listens on 127.0.0.1:PORT; a client bound to port 4444 connects, sends "salam\n" and
//! closes; the server reads it and the end of file and closes; then a client connects to the now
//! closed port and is refused. The peers are separate processes (named "server" and "client") so
//! the output shows which process owns which socket.

use std::{
    ffi::CStr,
    io::{BufRead, BufReader, Read},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context as _};
use clap::{Args, ValueEnum};

use crate::{
    cli::{DemoArgs, UsageError},
    filter::WatchFilter,
    journey::model::Summary,
    watch::{self, Session},
};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Role {
    Server,
    Client,
    Refused,
}

#[derive(Args, Debug, Clone)]
pub struct PeerArgs {
    #[arg(value_enum)]
    pub role: Role,
    #[arg(long)]
    pub port: u16,
    #[arg(long, default_value_t = 4444)]
    pub client_port: u16,
}

pub async fn run(args: DemoArgs, started: Instant) -> anyhow::Result<Summary> {
    // Fail early and clearly if something already holds the port.
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, args.port)).map_err(|e| {
        UsageError(format!(
            "cannot run the demo on 127.0.0.1:{}: {e}; pick another port with --port",
            args.port
        ))
    })?;
    let session = Session {
        filter: WatchFilter {
            port: Some(args.port),
            ..WatchFilter::default()
        },
        output: args.output.clone(),
    };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    let (port, client_port) = (args.port, args.client_port);
    tokio::spawn(async move {
        if ready_rx.await.is_err() {
            return;
        }
        let r = tokio::task::spawn_blocking(move || experiment(port, client_port))
            .await
            .map_err(|e| anyhow!("demo task failed: {e}"))
            .and_then(|r| r);
        // Let the last packets' journeys settle before stopping.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = done_tx.send(r);
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let waiter = tokio::spawn(async move {
        let r = done_rx.await.unwrap_or(Ok(()));
        let _ = stop_tx.send(());
        r
    });
    let summary = watch::run(session, started, Some(ready_tx), async {
        let _ = stop_rx.await;
    })
    .await?;
    waiter
        .await
        .map_err(|e| anyhow!("demo task failed: {e}"))??;
    Ok(summary)
}

fn peer(role: &str, port: u16, client_port: u16) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe().context("locating sockpath's own executable")?;
    Command::new(exe)
        .args(["__demo-peer", role, "--port", &port.to_string()])
        .args(["--client-port", &client_port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the demo {role}"))
}

fn experiment(port: u16, client_port: u16) -> anyhow::Result<()> {
    let mut server = peer("server", port, client_port)?;
    let mut line = String::new();
    let out = server.stdout.take().context("server stdout")?;
    BufReader::new(out).read_line(&mut line)?;
    if line.trim() != "listening" {
        return Err(anyhow!("the demo server did not start: {line:?}"));
    }
    let status = peer("client", port, client_port)?.wait()?;
    if !status.success() {
        return Err(anyhow!("the demo client failed ({status})"));
    }
    let status = server.wait()?;
    if !status.success() {
        return Err(anyhow!("the demo server failed ({status})"));
    }
    // Let the closing handshake finish before knocking on the closed port.
    std::thread::sleep(Duration::from_millis(100));
    let status = peer("refused", port, client_port)?.wait()?;
    if !status.success() {
        return Err(anyhow!("the refused-connection client failed ({status})"));
    }
    Ok(())
}

fn set_comm(name: &CStr) {
    // SAFETY: PR_SET_NAME with a NUL-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
}

fn check(rc: libc::c_int, what: &str) -> anyhow::Result<libc::c_int> {
    if rc < 0 {
        Err(anyhow!("{what}: {}", std::io::Error::last_os_error()))
    } else {
        Ok(rc)
    }
}

fn sockaddr(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// The client as `nc -p 4444 127.0.0.1 4000` does it: socket, SO_REUSEADDR, bind its source
/// port, connect, write, close (std cannot bind before connecting).
fn client(port: u16, client_port: u16) -> anyhow::Result<()> {
    // SAFETY: plain socket calls on an fd this function owns, with valid pointers and lengths.
    unsafe {
        let fd = check(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0), "socket")?;
        let one: libc::c_int = 1;
        check(
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ),
            "setsockopt",
        )?;
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = sockaddr(client_port);
        check(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
            "bind",
        )?;
        let remote = sockaddr(port);
        check(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
            "connect",
        )?;
        let msg = b"salam\n";
        check(
            libc::write(fd, msg.as_ptr().cast(), msg.len()) as libc::c_int,
            "write",
        )?;
        check(libc::close(fd), "close")?;
    }
    Ok(())
}

/// A demo peer process.
pub fn peer_main(a: PeerArgs) -> anyhow::Result<()> {
    match a.role {
        Role::Server => {
            set_comm(c"server");
            // socket, setsockopt(SO_REUSEADDR), bind, listen: what nc -l does.
            let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, a.port))?;
            println!("listening");
            let (mut s, _) = l.accept()?;
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            drop(s);
            drop(l);
            if got != b"salam\n" {
                return Err(anyhow!("server received {got:?}"));
            }
            Ok(())
        }
        Role::Client => {
            set_comm(c"client");
            client(a.port, a.client_port)
        }
        Role::Refused => {
            set_comm(c"client");
            match TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, a.port)) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
                Err(e) => Err(anyhow!("expected ECONNREFUSED, got {e}")),
                Ok(_) => Err(anyhow!("expected ECONNREFUSED, but the port accepted")),
            }
        }
    }
}
