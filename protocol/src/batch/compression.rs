//! The compression codecs of Kafka's RecordBatch v2: the records of a batch
//! (everything after the header) may be compressed as one block. The header
//! stays plain, so offsets, timestamps and producer fields are read without
//! decompressing; only reading the records does.

use std::io::Read;

use bytes::Bytes;

use super::DecodeError;

/// Attribute bits 0-2: the codec.
pub(crate) const CODEC_MASK: u16 = 0b111;

/// Most bytes a batch's records may decompress to. A batch is at most a few
/// MiB compressed; the limit stops a small batch of zeros from taking
/// gigabytes of memory wherever records are read.
pub const MAX_DECOMPRESSED: usize = 128 << 20;

/// A batch's compression codec (attribute bits 0-2), as Kafka numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Records stored as they are.
    #[default]
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Snappy: raw, or in the xerial framing Kafka's Java client writes.
    Snappy,
    /// The LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The codec named by a batch's attributes, if it is one of Kafka's.
    pub fn from_attributes(attributes: u16) -> Option<Compression> {
        Some(match attributes & CODEC_MASK {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return None,
        })
    }

    /// The codec's attribute bits.
    pub fn bits(self) -> u16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec's name as Kafka spells it (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The codec called `name` (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn from_name(name: &str) -> Option<Compression> {
        [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    /// Decompresses a batch's records, refusing more than
    /// [`MAX_DECOMPRESSED`] bytes of output.
    pub fn decompress(self, data: &[u8]) -> Result<Bytes, DecodeError> {
        let bad = |reason: &'static str| DecodeError::Compression {
            codec: self.name(),
            reason,
        };
        let mut out = Vec::new();
        let limit = MAX_DECOMPRESSED as u64 + 1;
        let read = match self {
            Compression::None => return Ok(Bytes::copy_from_slice(data)),
            Compression::Gzip => flate2::read::MultiGzDecoder::new(data)
                .take(limit)
                .read_to_end(&mut out),
            Compression::Lz4 => lz4_flex::frame::FrameDecoder::new(data)
                .take(limit)
                .read_to_end(&mut out),
            Compression::Zstd => match zstd::stream::read::Decoder::new(data) {
                Ok(d) => d.take(limit).read_to_end(&mut out),
                Err(e) => Err(e),
            },
            Compression::Snappy => {
                out = snappy_decompress(data).ok_or(bad("not valid snappy data"))?;
                Ok(out.len())
            }
        };
        read.map_err(|_| bad("not valid compressed data"))?;
        if out.len() > MAX_DECOMPRESSED {
            return Err(bad("decompresses to more than 128 MiB"));
        }
        Ok(Bytes::from(out))
    }

    /// Compresses a batch's records (the builder's side).
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).expect("writing to a Vec cannot fail");
                e.finish().expect("writing to a Vec cannot fail")
            }
            Compression::Snappy => snap::raw::Encoder::new()
                .compress_vec(data)
                .expect("snappy takes any input below 4 GiB"),
            Compression::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(data).expect("writing to a Vec cannot fail");
                e.finish().expect("writing to a Vec cannot fail")
            }
            Compression::Zstd => {
                zstd::bulk::compress(data, 3).expect("zstd compresses any input in memory")
            }
        }
    }
}

/// The header of the xerial snappy framing (Kafka's Java client).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

/// Raw snappy, or xerial framing: the 16-byte header, then blocks of
/// `[length: u32 big-endian][raw snappy]`.
fn snappy_decompress(data: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = snap::raw::Decoder::new();
    let mut raw = |block: &[u8], out: &mut Vec<u8>| -> Option<()> {
        let len = snap::raw::decompress_len(block).ok()?;
        if out.len() + len > MAX_DECOMPRESSED {
            return None;
        }
        let at = out.len();
        out.resize(at + len, 0);
        decoder.decompress(block, &mut out[at..]).ok()?;
        Some(())
    };
    let mut out = Vec::new();
    let Some(mut rest) = data.strip_prefix(XERIAL_MAGIC) else {
        raw(data, &mut out)?;
        return Some(out);
    };
    rest = rest.get(8..)?; // version and compatible version
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let block = rest.get(4..4 + len)?;
        raw(block, &mut out)?;
        rest = &rest[4 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let packed = codec.compress(&data);
            assert_eq!(codec.decompress(&packed).unwrap(), data, "{codec:?}");
            assert_eq!(Compression::from_attributes(codec.bits()), Some(codec));
            assert_eq!(Compression::from_name(codec.name()), Some(codec));
        }
    }

    #[test]
    fn xerial_framed_snappy_is_read() {
        let data = b"hello hello hello hello".repeat(100);
        let block = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1u32.to_be_bytes());
        framed.extend_from_slice(&1u32.to_be_bytes());
        for _ in 0..2 {
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        let out = Compression::Snappy.decompress(&framed).unwrap();
        assert_eq!(out.len(), data.len() * 2);
        assert!(
            Compression::Snappy
                .decompress(&framed[..framed.len() - 1])
                .is_err()
        );
    }

    #[test]
    fn garbage_and_bombs_are_errors() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert!(codec.decompress(b"\x00\x01garbage").is_err(), "{codec:?}");
        }
        let zeros = vec![0u8; MAX_DECOMPRESSED + 1];
        let bomb = Compression::Zstd.compress(&zeros);
        assert!(bomb.len() < 1 << 20);
        assert!(matches!(
            Compression::Zstd.decompress(&bomb),
            Err(DecodeError::Compression { .. })
        ));
    }
}
