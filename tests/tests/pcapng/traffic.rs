//! The traffic the loopback test makes: the netcat experiment, a refused connection, and
//! UDP over IPv4 and IPv6, read and to a closed port.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    time::Duration,
};

use sockpath_tests::{connect_from, Netns};

pub struct Done {
    pub accepted_fd: i32,
}

/// TCP handshake, 6 bytes read, close, a refused connection; UDP over IPv4 and IPv6, read and
/// to a closed port.
pub fn traffic(ns: &Netns, port: u16, cport: u16) -> Done {
    ns.run(move || {
        let server_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let listener = TcpListener::bind(server_addr).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let fd = s.as_raw_fd();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"salam\n");
            fd
        });
        let local: SocketAddr = format!("127.0.0.1:{cport}").parse().unwrap();
        let mut c = connect_from(local, server_addr).unwrap();
        c.write_all(b"salam\n").unwrap();
        drop(c);
        let accepted_fd = server.join().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let refused = TcpStream::connect(server_addr).unwrap_err().kind();
        assert_eq!(refused, std::io::ErrorKind::ConnectionRefused);
        for (server, client) in [("127.0.0.1", "127.0.0.1:0"), ("[::1]", "[::1]:0")] {
            let addr: SocketAddr = format!("{server}:{port}").parse().unwrap();
            let rx = UdpSocket::bind(addr).unwrap();
            let tx = UdpSocket::bind(client).unwrap();
            tx.send_to(b"hello", addr).unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(rx.recv_from(&mut buf).unwrap().0, 5);
            drop(rx);
            tx.send_to(b"anyone?", addr).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        Done { accepted_fd }
    })
}
