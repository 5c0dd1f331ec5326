//! `--pcapng FILE`: every matched packet as a pcapng frame Wireshark and tshark open without
//! plugins. One interface description per receiving interface (a network namespace's `lo` is
//! not another's), the bytes the kernel had at device receive (`netif_receive_skb`, up to the
//! snap length), the wall-clock time tcpdump's timestamps use, in nanoseconds, and the journey
//! as the frame's comments (see `comment`).

use std::{borrow::Cow, collections::HashMap, io::Write, time::Duration};

use pcap_file::{
    pcapng::{
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            section_header::{SectionHeaderBlock, SectionHeaderOption},
        },
        PcapNgWriter,
    },
    DataLink, Endianness, PcapError,
};
use sockpath_ebpf::event::SNAP_MAX;

use super::{comment, Sink, StartInfo};
use crate::journey::model::{Item, Journey, Summary};

/// if_tsresol: timestamps in nanoseconds (10^-9 s); the pcapng default is microseconds.
const TSRESOL_NS: u8 = 9;
/// epb_flags: direction inbound (bits 0-1 = 01); every frame sockpath writes was received.
const FLAG_INBOUND: u32 = 0b01;
/// Bytes of Ethernet header; the kernel reports this mac_len for Ethernet and loopback.
const ETH_HLEN: u16 = 14;

/// An interface description with nanosecond timestamps.
pub fn interface_block(
    linktype: DataLink,
    snaplen: u32,
    name: Option<&str>,
    description: Option<String>,
) -> InterfaceDescriptionBlock<'static> {
    let mut options = Vec::new();
    if let Some(n) = name {
        options.push(InterfaceDescriptionOption::IfName(Cow::Owned(
            n.to_string(),
        )));
    }
    if let Some(d) = description {
        options.push(InterfaceDescriptionOption::IfDescription(Cow::Owned(d)));
    }
    options.push(InterfaceDescriptionOption::IfTsResol(TSRESOL_NS));
    InterfaceDescriptionBlock {
        linktype,
        snaplen,
        options,
    }
}

/// A frame on an interface written by `interface_block`, with its comments.
pub fn packet_block<'a>(
    interface_id: u32,
    ts_ns: u64,
    data: &'a [u8],
    original_len: u32,
    comments: Vec<String>,
    inbound: bool,
) -> EnhancedPacketBlock<'a> {
    let mut options: Vec<EnhancedPacketOption> = comments
        .into_iter()
        .map(|c| EnhancedPacketOption::Comment(Cow::Owned(c)))
        .collect();
    if inbound {
        options.push(EnhancedPacketOption::Flags(FLAG_INBOUND));
    }
    EnhancedPacketBlock {
        interface_id,
        // With if_tsresol 9 the block's timestamp counts nanoseconds; pcap-file writes
        // Duration::as_nanos() as the raw count.
        timestamp: Duration::from_nanos(ts_ns),
        original_len: original_len.max(data.len() as u32),
        data: Cow::Borrowed(data),
        options,
    }
}

/// A section header naming the program that wrote the file.
pub fn section_block(comment: Option<String>, os: Option<String>) -> SectionHeaderBlock<'static> {
    let mut options = vec![SectionHeaderOption::UserApplication(Cow::Owned(format!(
        "sockpath {}",
        env!("CARGO_PKG_VERSION")
    )))];
    if let Some(os) = os {
        options.push(SectionHeaderOption::OS(Cow::Owned(os)));
    }
    if let Some(c) = comment {
        options.push(SectionHeaderOption::Comment(Cow::Owned(c)));
    }
    SectionHeaderBlock {
        endianness: Endianness::native(),
        options,
        ..SectionHeaderBlock::default()
    }
}

/// An interface as the kernel names it: ifindex is per network namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Interface {
    netns: u32,
    ifindex: u32,
    name: String,
    linktype: u32,
}

enum State<W: Write> {
    /// The file is open; the section header waits for what `start` says.
    Opened(W),
    Writing(PcapNgWriter<W>),
    Failed,
}

pub struct PcapngSink<W: Write> {
    state: State<W>,
    interfaces: HashMap<Interface, u32>,
}

fn pcap_err(e: PcapError) -> std::io::Error {
    match e {
        PcapError::IoError(e) => e,
        e => std::io::Error::other(e),
    }
}

impl<W: Write> PcapngSink<W> {
    pub fn new(out: W) -> Self {
        Self {
            state: State::Opened(out),
            interfaces: HashMap::new(),
        }
    }

    fn writer(&mut self) -> std::io::Result<&mut PcapNgWriter<W>> {
        match &mut self.state {
            State::Writing(w) => Ok(w),
            _ => Err(std::io::Error::other("pcapng: no section header written")),
        }
    }

    fn interface_id(&mut self, j: &Journey, linktype: DataLink) -> std::io::Result<u32> {
        let key = Interface {
            netns: j.netns,
            ifindex: j.ifindex,
            name: j.iface.clone(),
            linktype: linktype.into(),
        };
        if let Some(id) = self.interfaces.get(&key) {
            return Ok(*id);
        }
        let id = self.interfaces.len() as u32;
        let name = (!j.iface.is_empty()).then_some(j.iface.as_str());
        let description = format!(
            "{} (ifindex {}) in network namespace {}: packets received, seen at netif_receive_skb",
            if j.iface.is_empty() { "?" } else { &j.iface },
            j.ifindex,
            j.netns
        );
        let idb = interface_block(linktype, SNAP_MAX as u32, name, Some(description));
        self.writer()?.write_pcapng_block(idb).map_err(pcap_err)?;
        self.interfaces.insert(key, id);
        Ok(id)
    }

    fn journey(&mut self, j: &Journey) -> std::io::Result<()> {
        // A journey whose device-receive event was lost has no bytes to show.
        if j.frame.is_empty() {
            return Ok(());
        }
        // Ethernet (and loopback, which the kernel gives an Ethernet header) as captured;
        // anything else from its network header on, as a raw IP frame.
        let (linktype, data, wire_len) = match j.mac_len {
            ETH_HLEN => (DataLink::ETHERNET, &j.frame[..], j.wire_len),
            n => {
                let n = usize::from(n).min(j.frame.len());
                (
                    DataLink::RAW,
                    &j.frame[n..],
                    j.wire_len.saturating_sub(n as u32),
                )
            }
        };
        let id = self.interface_id(j, linktype)?;
        let epb = packet_block(id, j.ts_ns, data, wire_len, comment::comments(j), true);
        self.writer()?
            .write_pcapng_block(epb)
            .map_err(pcap_err)
            .map(drop)
    }
}

impl<W: Write> Sink for PcapngSink<W> {
    fn start(&mut self, info: &StartInfo) -> std::io::Result<()> {
        let State::Opened(out) = std::mem::replace(&mut self.state, State::Failed) else {
            return Ok(());
        };
        let shb = section_block(
            Some(format!(
                "kernel journeys by sockpath watch ({}); each frame's comments are its journey",
                info.filter
            )),
            Some(format!("Linux {}", info.kernel)),
        );
        let mut w = PcapNgWriter::with_section_header(out, shb).map_err(pcap_err)?;
        w.get_mut().flush()?;
        self.state = State::Writing(w);
        Ok(())
    }

    fn item(&mut self, item: &Item) -> std::io::Result<()> {
        match item {
            Item::Journey(j) => self.journey(j),
            Item::Syscall(_) | Item::Note(_) => Ok(()),
        }
    }

    fn summary(&mut self, _s: &Summary) -> std::io::Result<()> {
        self.flush()
    }

    /// Every tick: the blocks written so far reach the file whole, so it can be opened while
    /// sockpath runs, and a sockpath killed loses at most the last tick's frames.
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.state {
            State::Writing(w) => w.get_mut().flush(),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use pcap_file::pcapng::{Block, PcapNgReader};

    use super::*;
    use crate::{
        journey::model::{Outcome, OutcomeData, OutcomeKind},
        packet::{fixture::tcp4, Headers},
    };

    fn journey(id: u64, netns: u32, iface: &str, ts_ns: u64, frame: Vec<u8>) -> Journey {
        Journey {
            id,
            kernel_id: id,
            ts_ns,
            ts: crate::journey::model::Timestamp(0),
            cpu: 0,
            iface: iface.into(),
            ifindex: 1,
            netns,
            wire_len: frame.len() as u32,
            headers: Headers::parse(0x0800, 14, &frame).ok(),
            stages: Vec::new(),
            socket: None,
            state_changes: Vec::new(),
            outcome: Outcome::new(OutcomeKind::Unknown, OutcomeData::NothingObserved),
            complete: true,
            incomplete_reason: None,
            sampled_one_in: None,
            sampled_out: false,
            frame,
            mac_len: 14,
        }
    }

    fn info() -> StartInfo {
        StartInfo {
            filter: "port 4000, on any interface".into(),
            kernel: "6.18".into(),
            attach_ms: 1.0,
            hooks: Vec::new(),
        }
    }

    fn write(journeys: Vec<Journey>) -> Vec<u8> {
        let mut sink = PcapngSink::new(Vec::new());
        sink.start(&info()).unwrap();
        for j in journeys {
            sink.item(&Item::Journey(Box::new(j))).unwrap();
        }
        sink.summary(&Summary::default()).unwrap();
        match sink.state {
            State::Writing(w) => w.into_inner(),
            _ => panic!("not writing"),
        }
    }

    #[test]
    fn one_interface_per_namespace_and_ifindex_with_ns_timestamps_and_comments() {
        let syn = tcp4(4444, 4000, 1, None, "S", &[]);
        let data = tcp4(4444, 4000, 2, Some(9), "AP", b"salam\n");
        let bytes = write(vec![
            journey(1, 100, "lo", 1_700_000_000_123_456_789, syn.clone()),
            journey(2, 200, "lo", 1_700_000_000_123_456_999, syn),
            journey(3, 100, "lo", 1_700_000_000_223_456_789, data.clone()),
        ]);
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let mut frames = Vec::new();
        while let Some(b) = r.next_block() {
            if let Block::EnhancedPacket(p) = b.unwrap() {
                frames.push(p.into_owned());
            }
        }
        assert_eq!(r.interfaces().len(), 2);
        for idb in r.interfaces() {
            assert_eq!(idb.linktype, DataLink::ETHERNET);
            assert!(idb
                .options
                .contains(&InterfaceDescriptionOption::IfName("lo".into())));
            assert!(idb
                .options
                .contains(&InterfaceDescriptionOption::IfTsResol(9)));
        }
        let ids: Vec<u32> = frames.iter().map(|f| f.interface_id).collect();
        assert_eq!(ids, [0, 1, 0]);
        assert_eq!(frames[0].timestamp.as_nanos(), 1_700_000_000_123_456_789);
        assert_eq!(&frames[2].data[..], &data[..]);
        assert_eq!(frames[2].original_len, data.len() as u32);
        assert!(frames[2].options.contains(&EnhancedPacketOption::Comment(
            "sockpath journey 3: nothing observed after device receive".into()
        )));
        assert!(frames[2]
            .options
            .contains(&EnhancedPacketOption::Flags(FLAG_INBOUND)));
    }

    #[test]
    fn snapped_frames_keep_their_wire_length() {
        let data = tcp4(4444, 4000, 2, Some(9), "AP", &[7u8; 500]);
        let mut j = journey(1, 100, "lo", 1, data.clone());
        j.frame.truncate(128);
        let bytes = write(vec![j]);
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let mut p = None;
        while let Some(b) = r.next_block() {
            if let Block::EnhancedPacket(e) = b.unwrap() {
                p = Some(e.into_owned());
            }
        }
        let p = p.unwrap();
        assert_eq!(p.data.len(), 128);
        assert_eq!(p.original_len, data.len() as u32);
    }

    #[test]
    fn frames_without_a_link_header_are_raw_ip() {
        let f = tcp4(4444, 4000, 1, None, "S", &[]);
        let mut j = journey(1, 100, "tun0", 1, f[14..].to_vec());
        j.mac_len = 0;
        let bytes = write(vec![j]);
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        while r.next_block().is_some() {}
        assert_eq!(r.interfaces()[0].linktype, DataLink::RAW);
    }
}
