//! Command line: the commands a user can ask for. Each command's module owns its arguments and
//! checks them before anything touches the kernel.

use clap::{Parser, Subcommand};

use crate::{
    annotate::AnnotateArgs,
    daemon::DaemonArgs,
    demo::{peer::PeerArgs, DemoArgs},
    probes_cmd::ProbesArgs,
    watch::WatchArgs,
};

#[derive(Parser, Debug)]
#[command(
    name = "sockpath",
    version,
    about = "Shows, for every packet this machine receives, its trip through the kernel to the socket and the process that reads it (or why it never arrived)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Watch received packets live and print each one's kernel journey, with the socket system
    /// calls of the processes that own the watched sockets.
    Watch(WatchArgs),
    /// Replay the netcat experiment on loopback (server on 127.0.0.1:PORT, client from port
    /// 4444 sends "salam\n", both close, then a connection to the closed port) and show it.
    Demo(DemoArgs),
    /// Run as a daemon: one set of programs attached for every `sockpath watch`, `stats` and
    /// `probes` that connects to its socket (root and the members of its group, no sudo), and
    /// Prometheus metrics with --metrics.
    Daemon(DaemonArgs),
    /// Show which kernel hook serves each journey stage on this kernel, and why others were refused.
    Probes(ProbesArgs),
    /// Match the frames of a capture (tcpdump or Wireshark, pcap or pcapng) to the journeys of a
    /// `watch --json` log of the same traffic, and write the capture back as pcapng with each
    /// frame's journey as its comment. Needs no privileges.
    Annotate(AnnotateArgs),
    /// A process the demo starts as its server or client.
    #[command(name = "__demo-peer", hide = true)]
    DemoPeer(PeerArgs),
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sockpath").chain(args.iter().copied()))
    }

    #[test]
    fn port_bounds_are_usage_errors() {
        for bad in ["0", "65536", "-1", "http"] {
            let e = parse(&["watch", "--port", bad]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
        assert!(parse(&["watch", "--port", "65535"]).is_ok());
    }

    #[test]
    fn malformed_address_and_unknown_option_are_usage_errors() {
        assert_eq!(
            parse(&["watch", "--addr", "300.1.1.1"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(parse(&["watch", "--bogus"]).unwrap_err().exit_code(), 2);
        assert_eq!(
            parse(&["watch", "--proto", "sctp"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn unknown_interface_is_rejected() {
        let Command::Watch(w) = parse(&["watch", "--iface", "nosuchif0"]).unwrap().command else {
            panic!()
        };
        assert!(w.filter().unwrap_err().0.contains("no interface named"));
        let Command::Watch(w) = parse(&["watch", "--iface", "lo"]).unwrap().command else {
            panic!()
        };
        assert_eq!(w.filter().unwrap().iface.as_deref(), Some("lo"));
    }
}
