//! Reading a capture tcpdump or Wireshark wrote: pcap (micro- or nanosecond) or pcapng (any
//! byte order, any if_tsresol, several sections). Frames are numbered from 1 as Wireshark numbers
//! them, so a report's "frame 12" is Wireshark's frame 12. `pcapng` reads the pcapng form.

mod pcapng;

use std::{
    borrow::Cow,
    path::{Path, PathBuf},
};

use pcap_file::{
    pcap::{PcapHeader, PcapParser},
    pcapng::blocks::{
        enhanced_packet::EnhancedPacketBlock, interface_description::InterfaceDescriptionBlock,
        section_header::SectionHeaderBlock,
    },
    DataLink, PcapError, TsResolution,
};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read the capture {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the capture {0} is empty")]
    Empty(PathBuf),
    #[error("{0} is gzip-compressed: decompress it first (gunzip), or save it uncompressed")]
    Compressed(PathBuf),
    #[error(
        "{path} is not a pcap or pcapng capture (it starts with {start}); give a file `tcpdump -w` or Wireshark wrote"
    )]
    NotACapture { path: PathBuf, start: String },
    #[error("the capture {path} is malformed: {what}")]
    Malformed { path: PathBuf, what: String },
}

pub enum Format {
    Pcap(PcapHeader),
    Pcapng,
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::Pcap(_) => "pcap",
            Format::Pcapng => "pcapng",
        }
    }
}

/// How a frame is written back.
pub enum Source<'a> {
    /// A record of a pcap file.
    Pcap,
    /// A pcapng Enhanced Packet Block, rewritten with comments.
    Enhanced(EnhancedPacketBlock<'a>),
    /// A pcapng block that has no timestamp or cannot carry comments (simple packet block,
    /// obsolete packet block): copied unchanged.
    Unannotated { raw: &'a [u8], why: &'static str },
}

pub struct Frame<'a> {
    /// 1, 2, ... as Wireshark numbers frames.
    pub number: usize,
    /// Nanoseconds since the epoch, if the frame has a timestamp.
    pub ts_ns: Option<u64>,
    pub linktype: DataLink,
    pub data: Cow<'a, [u8]>,
    pub orig_len: u32,
    pub source: Source<'a>,
}

pub enum Record<'a> {
    /// A pcapng section header: the blocks after it are in its byte order.
    Section(SectionHeaderBlock<'a>),
    /// A pcapng interface description: frames name it by its index in the section.
    Interface(InterfaceDescriptionBlock<'a>),
    /// Any other pcapng block that is not a packet (statistics, name resolution, ...), copied
    /// as it is: it is in the byte order of the section it belongs to.
    Other(&'a [u8]),
    Frame(Frame<'a>),
}

pub struct Parsed<'a> {
    pub format: Format,
    pub records: Vec<Record<'a>>,
    /// Things a person should know that do not stop the work (a capture cut short).
    pub warnings: Vec<String>,
}

impl Parsed<'_> {
    pub fn frames(&self) -> impl Iterator<Item = &Frame<'_>> {
        self.records.iter().filter_map(|r| match r {
            Record::Frame(f) => Some(f),
            _ => None,
        })
    }
}

pub struct Capture {
    pub path: PathBuf,
    bytes: Vec<u8>,
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const CUT_SHORT: &str =
    "bytes at its end are an incomplete record, as when the capturing program is killed; ignored";

fn hex_start(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Capture {
    pub fn read(path: &Path) -> Result<Self, CaptureError> {
        let bytes = std::fs::read(path).map_err(|source| CaptureError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::from_bytes(path, bytes))
    }

    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Self {
        Self {
            path: path.to_owned(),
            bytes,
        }
    }

    fn malformed(&self, what: impl Into<String>) -> CaptureError {
        CaptureError::Malformed {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    pub fn parse(&self) -> Result<Parsed<'_>, CaptureError> {
        let b = &self.bytes[..];
        if b.is_empty() {
            return Err(CaptureError::Empty(self.path.clone()));
        }
        if b.starts_with(&GZIP_MAGIC) {
            return Err(CaptureError::Compressed(self.path.clone()));
        }
        if b.len() >= 4 && PCAP_MAGICS.iter().any(|m| b.starts_with(m)) {
            return self.parse_pcap();
        }
        if b.starts_with(&PCAPNG_MAGIC) {
            return self.parse_pcapng();
        }
        Err(CaptureError::NotACapture {
            path: self.path.clone(),
            start: hex_start(b),
        })
    }

    fn parse_pcap(&self) -> Result<Parsed<'_>, CaptureError> {
        let (mut rem, parser) = PcapParser::new(&self.bytes).map_err(|e| match e {
            PcapError::IncompleteBuffer => self.malformed("the pcap file header is cut short"),
            e => self.malformed(format!("pcap file header: {e}")),
        })?;
        let header = parser.header();
        let mut records = Vec::new();
        let mut warnings = Vec::new();
        while !rem.is_empty() {
            // Raw records: pcap-file's checked packets refuse an original length above the
            // snap length, which is every packet of a capture with a short snap length.
            let (next, raw) = match parser.next_raw_packet(rem) {
                Ok(x) => x,
                Err(PcapError::IncompleteBuffer) => {
                    warnings.push(format!("{} {CUT_SHORT}", rem.len()));
                    break;
                }
                Err(e) => return Err(self.malformed(format!("record {}: {e}", records.len() + 1))),
            };
            rem = next;
            let frac_ns = match header.ts_resolution {
                TsResolution::MicroSecond => u64::from(raw.ts_frac) * 1000,
                TsResolution::NanoSecond => u64::from(raw.ts_frac),
            };
            records.push(Record::Frame(Frame {
                number: records.len() + 1,
                ts_ns: Some(u64::from(raw.ts_sec) * 1_000_000_000 + frac_ns),
                linktype: header.datalink,
                orig_len: raw.orig_len,
                data: raw.data,
                source: Source::Pcap,
            }));
        }
        Ok(Parsed {
            format: Format::Pcap(header),
            records,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pcap_file::pcap::{PcapPacket, PcapWriter};

    use super::{pcapng::ts_to_ns, *};
    use crate::{
        output::pcapng::{interface_block, packet_block, section_block},
        packet::fixture::tcp4,
    };

    fn pcap(nanos: bool, snaplen: u32, frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let header = PcapHeader {
            ts_resolution: if nanos {
                TsResolution::NanoSecond
            } else {
                TsResolution::MicroSecond
            },
            snaplen: 65535,
            ..PcapHeader::default()
        };
        let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
        for (ts, f) in frames {
            let cut = &f[..f.len().min(snaplen as usize)];
            // Written raw-ish: PcapWriter checks nothing about lengths.
            w.write_packet(&PcapPacket::new(
                Duration::from_nanos(*ts),
                f.len() as u32,
                cut,
            ))
            .unwrap();
        }
        w.into_writer()
    }

    /// Number, time, captured length and wire length of each frame.
    type Summary = Vec<(usize, Option<u64>, usize, u32)>;

    fn parse(bytes: Vec<u8>) -> Result<Summary, CaptureError> {
        let c = Capture::from_bytes(Path::new("x"), bytes);
        let p = c.parse()?;
        Ok(p.frames()
            .map(|f| (f.number, f.ts_ns, f.data.len(), f.orig_len))
            .collect())
    }

    #[test]
    fn pcap_micro_and_nano_with_short_snap_length() {
        let syn = tcp4(1, 2, 3, None, "S", &[0; 100]);
        let frames = [(1_700_000_000_123_456_789, syn.clone())];
        let micro = parse(pcap(false, 60, &frames)).unwrap();
        assert_eq!(
            micro,
            [(1, Some(1_700_000_000_123_456_000), 60, syn.len() as u32)]
        );
        let nano = parse(pcap(true, 60, &frames)).unwrap();
        assert_eq!(nano[0].1, Some(1_700_000_000_123_456_789));
    }

    #[test]
    fn pcapng_microsecond_interfaces_are_scaled() {
        let syn = tcp4(1, 2, 3, None, "S", &[]);
        let mut out = Vec::new();
        let mut w = pcap_file::pcapng::PcapNgWriter::with_section_header(
            &mut out,
            section_block(None, None),
        )
        .unwrap();
        let mut idb = interface_block(DataLink::ETHERNET, 65535, Some("lo"), None);
        idb.options.clear(); // no if_tsresol: microseconds
        w.write_pcapng_block(idb).unwrap();
        // 1_700_000_000.123456 s in microseconds, written as the block's raw count.
        let mut epb = packet_block(0, 0, &syn, syn.len() as u32, vec![], false);
        epb.timestamp = Duration::from_nanos(1_700_000_000_123_456);
        w.write_pcapng_block(epb).unwrap();
        let frames = parse(out).unwrap();
        assert_eq!(
            frames,
            [(
                1,
                Some(1_700_000_000_123_456_000),
                syn.len(),
                syn.len() as u32
            )]
        );
    }

    #[test]
    fn resolutions_and_offsets() {
        assert_eq!(ts_to_ns(5, 9, 0), Some(5));
        assert_eq!(ts_to_ns(5, 6, 1), Some(1_000_005_000));
        assert_eq!(ts_to_ns(5_000, 12, 0), Some(5));
        assert_eq!(ts_to_ns(3, 0x81, 0), Some(1_500_000_000));
        assert_eq!(ts_to_ns(1, 120, 0), Some(0));
        assert_eq!(ts_to_ns(u128::MAX, 0, 0), None);
    }

    #[test]
    fn a_capture_cut_short_keeps_its_whole_frames() {
        let f = tcp4(1, 2, 3, None, "S", &[]);
        let mut bytes = pcap(true, 1500, &[(1, f.clone()), (2, f)]);
        bytes.truncate(bytes.len() - 10);
        let c = Capture::from_bytes(Path::new("x"), bytes);
        let p = c.parse().unwrap();
        assert_eq!(p.frames().count(), 1);
        assert!(p.warnings[0].contains("incomplete record"));
    }

    #[test]
    fn not_a_capture_says_what_it_is() {
        let e = |b: &[u8]| {
            Capture::from_bytes(Path::new("x"), b.to_vec())
                .parse()
                .err()
                .unwrap()
        };
        assert!(matches!(e(b""), CaptureError::Empty(_)));
        assert!(matches!(
            e(&[0x1f, 0x8b, 8, 0]),
            CaptureError::Compressed(_)
        ));
        assert!(e(b"hello world")
            .to_string()
            .contains("not a pcap or pcapng capture (it starts with 68 65 6c 6c)"));
        assert!(e(&PCAPNG_MAGIC).to_string().contains("malformed"));
        assert!(e(&PCAP_MAGICS[1]).to_string().contains("malformed"));
    }
}

#[cfg(test)]
mod fuzz;
