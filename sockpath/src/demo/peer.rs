//! The demo's peers: the processes `sockpath demo` starts (as `sockpath __demo-peer ROLE`) to
//! play the netcat server, the client, and the client refused at the closed port, each under
//! its own process name.

use std::{
    ffi::CStr,
    io::Read,
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
};

use anyhow::anyhow;
use clap::{Args, ValueEnum};

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
pub fn run(a: PeerArgs) -> anyhow::Result<()> {
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
