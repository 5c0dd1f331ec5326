//! A pcapng capture's blocks: sections, interfaces, frames (enhanced, simple or obsolete packet
//! blocks) and the rest, each decoded in its section's byte order, with each frame's time from
//! its interface's if_tsresol and if_tsoffset.

use std::borrow::Cow;

use pcap_file::{
    pcapng::{
        blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
        Block, PcapNgParser,
    },
    DataLink, PcapError,
};

use super::{Capture, CaptureError, Format, Frame, Parsed, Record, Source, CUT_SHORT};

impl Capture {
    pub(super) fn parse_pcapng(&self) -> Result<Parsed<'_>, CaptureError> {
        let all = &self.bytes[..];
        let (mut rem, mut parser) = PcapNgParser::new(all).map_err(|e| match e {
            PcapError::IncompleteBuffer => self.malformed("the section header block is cut short"),
            e => self.malformed(format!("section header block: {e}")),
        })?;
        let mut records = vec![Record::Section(parser.section().clone())];
        let mut warnings = Vec::new();
        let mut number = 0;
        while !rem.is_empty() {
            let offset = all.len() - rem.len();
            // Parsed blocks: pcap-file decodes each in its section's byte order.
            let (next, block) = match parser.next_block(rem) {
                Ok(x) => x,
                Err(PcapError::IncompleteBuffer) => {
                    warnings.push(format!("{} {CUT_SHORT}", rem.len()));
                    break;
                }
                Err(e) => return Err(self.malformed(format!("block at byte {offset}: {e}"))),
            };
            let bytes = &rem[..rem.len() - next.len()];
            rem = next;
            let record = match block {
                Block::SectionHeader(s) => Record::Section(s),
                Block::InterfaceDescription(i) => Record::Interface(i),
                Block::EnhancedPacket(block) => {
                    number += 1;
                    let idb = parser
                        .interfaces()
                        .get(block.interface_id as usize)
                        .ok_or_else(|| {
                            self.malformed(format!(
                                "frame {number} names interface {}, which no interface description block before it defines",
                                block.interface_id
                            ))
                        })?;
                    let (tsresol, tsoffset) = time_options(idb);
                    Record::Frame(Frame {
                        number,
                        ts_ns: ts_to_ns(block.timestamp.as_nanos(), tsresol, tsoffset),
                        linktype: idb.linktype,
                        orig_len: block.original_len,
                        data: block.data.clone(),
                        source: Source::Enhanced(block),
                    })
                }
                Block::SimplePacket(_) | Block::Packet(_) => {
                    number += 1;
                    let why = if matches!(block, Block::SimplePacket(_)) {
                        "a simple packet block has no timestamp"
                    } else {
                        "an obsolete packet block"
                    };
                    Record::Frame(Frame {
                        number,
                        ts_ns: None,
                        linktype: DataLink::ETHERNET,
                        orig_len: 0,
                        data: Cow::Borrowed(&[]),
                        source: Source::Unannotated { raw: bytes, why },
                    })
                }
                _ => Record::Other(bytes),
            };
            records.push(record);
        }
        Ok(Parsed {
            format: Format::Pcapng,
            records,
            warnings,
        })
    }
}

/// if_tsresol (default 6: microseconds) and if_tsoffset (default 0) of an interface.
fn time_options(idb: &InterfaceDescriptionBlock) -> (u8, u64) {
    let mut r = (6, 0);
    for o in &idb.options {
        match o {
            InterfaceDescriptionOption::IfTsResol(v) => r.0 = *v,
            InterfaceDescriptionOption::IfTsOffset(v) => r.1 = *v,
            _ => {}
        }
    }
    r
}

/// A pcapng timestamp in units of if_tsresol, plus if_tsoffset seconds, in nanoseconds.
pub(super) fn ts_to_ns(units: u128, tsresol: u8, tsoffset_s: u64) -> Option<u64> {
    let ns = if tsresol & 0x80 == 0 {
        let p = u32::from(tsresol);
        if p <= 9 {
            units.checked_mul(10u128.pow(9 - p))?
        } else {
            units / 10u128.checked_pow(p - 9).unwrap_or(u128::MAX)
        }
    } else {
        // Negative powers of two: units / 2^p seconds.
        let p = u32::from(tsresol & 0x7f);
        units.checked_mul(1_000_000_000)?.checked_shr(p)?
    };
    let ns = ns.checked_add(u128::from(tsoffset_s) * 1_000_000_000)?;
    u64::try_from(ns).ok()
}
