//! No file panics the capture reader: a deterministic generator over valid pcap and pcapng
//! captures cut at every length, with every 32-bit field set to sizes and codes that matter,
//! bit flips, and arbitrary bytes behind each magic. Runs in `cargo test`.

use std::{
    borrow::Cow,
    panic::{catch_unwind, AssertUnwindSafe},
    path::Path,
    time::Duration,
};

use pcap_file::{
    pcap::{PcapHeader, PcapPacket, PcapWriter},
    pcapng::{
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            interface_statistics::InterfaceStatisticsBlock,
            section_header::SectionHeaderBlock,
            simple_packet::SimplePacketBlock,
        },
        PcapNgWriter,
    },
    DataLink, Endianness, TsResolution,
};

use super::{Capture, CaptureError};
use crate::packet::fixture::{tcp4, udp6};

/// xorshift64*: reproducible, and enough to spread inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Reads `bytes` as a capture and walks its frames, failing the test with the input if
/// anything panics.
fn read(bytes: &[u8]) -> Result<usize, CaptureError> {
    let run = || {
        let c = Capture::from_bytes(Path::new("fuzz"), bytes.to_vec());
        let p = c.parse()?;
        Ok(p.frames().map(|f| f.data.len() + f.number).sum())
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(_) => panic!(
            "the capture reader panicked on {} bytes: {:02x?}",
            bytes.len(),
            &bytes[..bytes.len().min(128)]
        ),
    }
}

fn survives(bytes: &[u8]) {
    let _ = read(bytes);
}

fn pcap(resolution: TsResolution, endianness: Endianness) -> Vec<u8> {
    let header = PcapHeader {
        ts_resolution: resolution,
        endianness,
        snaplen: 65535,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).expect("a header writes");
    for (i, f) in [tcp4(1, 2, 3, None, "S", &[]), udp6(5, 6, b"hi")]
        .iter()
        .enumerate()
    {
        let ts = Duration::from_nanos(1_700_000_000_123_456_789 + i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .expect("a packet writes");
    }
    w.into_writer()
}

fn pcapng(endianness: Endianness) -> Vec<u8> {
    let section = SectionHeaderBlock {
        endianness,
        ..SectionHeaderBlock::default()
    };
    let mut w = PcapNgWriter::with_section_header(Vec::new(), section).expect("a section writes");
    let syn = tcp4(1, 2, 3, None, "S", &[]);
    for tsresol in [9, 0x83] {
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 65535,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Borrowed("lo")),
                InterfaceDescriptionOption::IfTsResol(tsresol),
                InterfaceDescriptionOption::IfTsOffset(3),
            ],
        })
        .expect("an interface writes");
    }
    for interface_id in [0, 1] {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id,
            timestamp: Duration::from_nanos(1_700_000_000_123_456_789),
            original_len: syn.len() as u32,
            data: Cow::Borrowed(&syn),
            options: vec![EnhancedPacketOption::Comment(Cow::Borrowed("c"))],
        })
        .expect("a packet writes");
    }
    w.write_pcapng_block(SimplePacketBlock {
        original_len: syn.len() as u32,
        data: Cow::Borrowed(&syn),
    })
    .expect("a simple packet writes");
    w.write_pcapng_block(InterfaceStatisticsBlock {
        interface_id: 0,
        timestamp: 5,
        options: vec![],
    })
    .expect("statistics write");
    w.into_inner()
}

/// Valid captures of every kind the reader takes, and two sections back to back.
fn seeds() -> Vec<Vec<u8>> {
    let mut two = pcapng(Endianness::Little);
    two.extend(pcapng(Endianness::Big));
    vec![
        pcap(TsResolution::MicroSecond, Endianness::Little),
        pcap(TsResolution::NanoSecond, Endianness::Big),
        pcapng(Endianness::Little),
        pcapng(Endianness::Big),
        two,
    ]
}

#[test]
fn the_seeds_are_read() {
    for s in seeds() {
        assert!(read(&s).is_ok(), "{:?}", read(&s));
    }
}

#[test]
fn captures_cut_at_every_length() {
    for s in seeds() {
        for len in 0..s.len() {
            survives(&s[..len]);
        }
    }
}

#[test]
fn every_field_claiming_every_size_that_matters() {
    let values = |len: usize| {
        let len = len as u32;
        [
            0,
            1,
            3,
            4,
            8,
            11,
            12,
            19,
            20,
            24,
            28,
            32,
            len / 2,
            len - 4,
            len,
            len + 4,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_fffc,
            0xffff_ffff,
        ]
    };
    for s in seeds() {
        for at in (0..s.len() - 3).step_by(2) {
            for v in values(s.len()) {
                for bytes in [v.to_le_bytes(), v.to_be_bytes()] {
                    let mut b = s.clone();
                    b[at..at + 4].copy_from_slice(&bytes);
                    survives(&b);
                }
            }
            // Option codes and lengths are 16 bits.
            for v in [0u16, 1, 2, 3, 4, 9, 14, 0x7fff, 0xffff] {
                let mut b = s.clone();
                b[at..at + 2].copy_from_slice(&v.to_le_bytes());
                survives(&b);
            }
        }
    }
}

#[test]
fn bit_flips_and_arbitrary_bytes() {
    let mut rng = Rng(0x5eed_cafe);
    let seeds = seeds();
    for _ in 0..20_000 {
        let mut b = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(b.len());
            b[at] ^= 1 << rng.below(8);
        }
        survives(&b);
    }
    let magics: [&[u8]; 5] = [
        &[0xa1, 0xb2, 0xc3, 0xd4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        &[0xa1, 0xb2, 0x3c, 0x4d],
        &[0x4d, 0x3c, 0xb2, 0xa1],
        &[0x0a, 0x0d, 0x0d, 0x0a],
    ];
    for i in 0..20_000 {
        let mut b = magics[i % magics.len()].to_vec();
        let len = rng.below(512);
        b.extend((0..len).map(|_| rng.next() as u8));
        if i % 2 == 0 && b.len() >= 12 && b[0] == 0x0a {
            // A byte-order magic where a section header has it, so the blocks are reached.
            b[8..12].copy_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        }
        survives(&b);
    }
}
