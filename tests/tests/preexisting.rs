//! A socket opened before sockpath started: sockpath finds its process and fd in /proc, and
//! follows that process's reads.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
};

use sockpath_tests::{free_port, Netns, Watch};

#[test]
fn socket_opened_before_sockpath_is_resolved_to_its_process_and_fd() {
    let ns = Netns::new("pre");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Listening before sockpath exists: no socket()/bind()/listen() for sockpath to see.
    let listener = ns.run(move || TcpListener::bind(addr).unwrap());
    let listener_fd = listener.as_raw_fd();

    let watch = Watch::start(&["--port", &port.to_string()]);
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let fd = s.as_raw_fd();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap();
        (fd, buf[..n].to_vec())
    });
    ns.run(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"early").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    });
    let (accepted_fd, got) = server.join().unwrap();
    assert_eq!(got, b"early");

    let r = watch.stop();
    let dump = r.dump();
    let me = std::process::id();
    let syn = &r.with_flags(&["SYN"])[0];
    assert_eq!(syn["socket"]["owner"]["pid"], me, "{dump}");
    assert_eq!(syn["socket"]["owner"]["fd"], listener_fd, "{dump}");
    let data = r
        .journeys
        .iter()
        .find(|j| j["payload_len"] == 5)
        .unwrap_or_else(|| panic!("no data\n{dump}"));
    assert_eq!(data["outcome"]["kind"], "read", "{dump}");
    assert_eq!(data["outcome"]["pid"], me);
    // The process was found owning a watched socket, so its calls are followed: the read has
    // its syscall and fd.
    assert_eq!(data["outcome"]["fd"], accepted_fd, "{dump}");
    assert!(
        r.syscalls_named("accept4")
            .iter()
            .any(|a| a["ret"] == accepted_fd),
        "{dump}"
    );
}
