//! Writing the capture back as pcapng with each frame's comments. A pcapng capture keeps every
//! block it had (sections, interfaces with their names and filters, statistics, name
//! resolution) and each frame gains comments after its own; a pcap capture becomes one section
//! with one interface of its link type, nanosecond timestamps and the same frames.

use std::{borrow::Cow, io::Write};

use pcap_file::{
    pcapng::{blocks::enhanced_packet::EnhancedPacketOption, Block, PcapNgWriter},
    PcapError,
};

use super::capture::{Format, Parsed, Record, Source};
use crate::output::pcapng::{interface_block, packet_block, section_block};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Pcap(#[from] PcapError),
    #[error("the capture has no section header block")]
    NoSection,
}

/// Writes `parsed` to `out`, giving frame number N the comments `comments(N)`.
/// `section_comment` is added to a pcap capture's new section header.
pub fn write<W: Write>(
    parsed: &Parsed,
    mut comments: impl FnMut(usize) -> Vec<String>,
    section_comment: String,
    out: W,
) -> Result<W, WriteError> {
    match &parsed.format {
        Format::Pcap(header) => {
            let mut w =
                PcapNgWriter::with_section_header(out, section_block(Some(section_comment), None))?;
            w.write_pcapng_block(interface_block(header.datalink, header.snaplen, None, None))?;
            for f in parsed.frames() {
                let ts = f.ts_ns.unwrap_or(0);
                let epb = packet_block(0, ts, &f.data, f.orig_len, comments(f.number), false);
                w.write_pcapng_block(epb)?;
            }
            Ok(w.into_inner())
        }
        Format::Pcapng => {
            let mut records = parsed.records.iter();
            let Some(Record::Section(first)) = records.next() else {
                return Err(WriteError::NoSection);
            };
            let mut w = PcapNgWriter::with_section_header(out, unsized_section(first))?;
            for r in records {
                match r {
                    Record::Section(s) => {
                        w.write_block(&Block::SectionHeader(unsized_section(s)))?;
                    }
                    Record::Interface(i) => {
                        w.write_block(&Block::InterfaceDescription(i.clone()))?;
                    }
                    // Copied byte for byte: they are in the byte order of the section the
                    // writer is in, which is the input's.
                    Record::Other(bytes) => w.get_mut().write_all(bytes)?,
                    Record::Frame(f) => match &f.source {
                        Source::Enhanced(block) => {
                            let mut b = block.clone();
                            b.options.extend(
                                comments(f.number)
                                    .into_iter()
                                    .map(|c| EnhancedPacketOption::Comment(Cow::Owned(c))),
                            );
                            w.write_block(&Block::EnhancedPacket(b))?;
                        }
                        Source::Unannotated { raw, .. } => w.get_mut().write_all(raw)?,
                        Source::Pcap => unreachable!("pcap records in a pcapng capture"),
                    },
                }
            }
            Ok(w.into_inner())
        }
    }
}

/// A section header whose length is "unspecified": comments change the section's length.
fn unsized_section<'a>(
    s: &pcap_file::pcapng::blocks::section_header::SectionHeaderBlock<'a>,
) -> pcap_file::pcapng::blocks::section_header::SectionHeaderBlock<'static> {
    let mut s = s.clone().into_owned();
    s.section_length = -1;
    s
}

#[cfg(test)]
mod tests {
    use std::{path::Path, time::Duration};

    use pcap_file::{
        pcap::{PcapHeader, PcapPacket, PcapWriter},
        pcapng::{
            blocks::{
                interface_description::InterfaceDescriptionOption,
                interface_statistics::{InterfaceStatisticsBlock, InterfaceStatisticsOption},
            },
            PcapNgReader,
        },
        DataLink, Endianness, TsResolution,
    };

    use super::*;
    use crate::{annotate::capture::Capture, packet::fixture::tcp4};

    fn comments(n: usize) -> Vec<String> {
        vec![format!("frame {n}"), "second".into()]
    }

    fn read_back(bytes: &[u8]) -> (Vec<Block<'static>>, usize) {
        let mut r = PcapNgReader::new(bytes).unwrap();
        let mut blocks = Vec::new();
        while let Some(b) = r.next_block() {
            blocks.push(b.unwrap().into_owned());
        }
        (blocks, r.interfaces().len())
    }

    #[test]
    fn pcap_becomes_pcapng_with_nanosecond_times_and_comments() {
        let f = tcp4(1, 2, 3, None, "S", &[0; 40]);
        let header = PcapHeader {
            ts_resolution: TsResolution::MicroSecond,
            snaplen: 70,
            ..PcapHeader::default()
        };
        let mut pw = PcapWriter::with_header(Vec::new(), header).unwrap();
        pw.write_packet(&PcapPacket::new(
            Duration::from_nanos(1_700_000_000_000_001_000),
            f.len() as u32,
            &f[..70],
        ))
        .unwrap();
        let c = Capture::from_bytes(Path::new("x.pcap"), pw.into_writer());
        let parsed = c.parse().unwrap();
        let out = write(&parsed, comments, "annotated".into(), Vec::new()).unwrap();
        let (blocks, _) = read_back(&out);
        let Block::InterfaceDescription(idb) = &blocks[0] else {
            panic!("{blocks:?}")
        };
        assert_eq!(idb.linktype, DataLink::ETHERNET);
        assert_eq!(idb.snaplen, 70);
        assert!(idb
            .options
            .contains(&InterfaceDescriptionOption::IfTsResol(9)));
        let Block::EnhancedPacket(p) = &blocks[1] else {
            panic!()
        };
        assert_eq!(p.timestamp.as_nanos(), 1_700_000_000_000_001_000);
        assert_eq!(p.original_len, f.len() as u32);
        assert_eq!(&p.data[..], &f[..70]);
        assert_eq!(
            p.options,
            [
                EnhancedPacketOption::Comment("frame 1".into()),
                EnhancedPacketOption::Comment("second".into())
            ]
        );
    }

    #[test]
    fn pcapng_keeps_its_blocks_byte_order_and_options() {
        let f = tcp4(1, 2, 3, None, "S", &[]);
        for endianness in [Endianness::Big, Endianness::Little] {
            let mut shb = section_block(None, Some("Linux".into()));
            shb.endianness = endianness;
            let mut w = PcapNgWriter::with_section_header(Vec::new(), shb).unwrap();
            w.write_pcapng_block(interface_block(
                DataLink::ETHERNET,
                262144,
                Some("eth0"),
                None,
            ))
            .unwrap();
            let mut epb = packet_block(0, 5, &f, f.len() as u32, vec!["theirs".into()], true);
            epb.timestamp = Duration::from_nanos(77);
            w.write_pcapng_block(epb).unwrap();
            w.write_pcapng_block(InterfaceStatisticsBlock {
                interface_id: 0,
                timestamp: 78,
                options: vec![InterfaceStatisticsOption::IsbIfRecv(1)],
            })
            .unwrap();
            let input = w.into_inner();

            let c = Capture::from_bytes(Path::new("x.pcapng"), input.clone());
            let parsed = c.parse().unwrap();
            let out = write(&parsed, comments, String::new(), Vec::new()).unwrap();
            assert_eq!(out[8..12], input[8..12], "byte-order magic kept");
            let (before, _) = read_back(&input);
            let (after, n_if) = read_back(&out);
            assert_eq!(n_if, 1);
            assert_eq!(before.len(), after.len());
            assert_eq!(before[0], after[0], "interface");
            assert_eq!(before[2], after[2], "statistics");
            let (Block::EnhancedPacket(b), Block::EnhancedPacket(a)) = (&before[1], &after[1])
            else {
                panic!()
            };
            assert_eq!(a.timestamp, b.timestamp);
            assert_eq!(a.data, b.data);
            assert_eq!(
                a.options[..2],
                b.options[..],
                "existing comment and flags first"
            );
            assert_eq!(
                a.options[2],
                EnhancedPacketOption::Comment("frame 1".into())
            );
        }
    }
}
