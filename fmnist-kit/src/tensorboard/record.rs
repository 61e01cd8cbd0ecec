//! TFRecord framing, the container of TensorBoard's event files: each record is its length (u64,
//! little-endian), the masked CRC32C of those 8 bytes, the data, and the masked CRC32C of the
//! data. CRC32C is the Castagnoli polynomial (not zlib's IEEE one); the mask is TensorFlow's
//! `((c >> 15) | (c << 17)) + 0xa282ead8`.

/// TensorFlow's masked CRC32C of `bytes`.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One framed record holding `data`.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// The records of `bytes`, checked: their data, or the byte offset and what is wrong at the
/// first bad record (a file cut short by a killed writer ends in a partial record).
pub fn read_records(bytes: &[u8]) -> std::result::Result<Vec<&[u8]>, (usize, &'static str)> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = bytes.get(at..at + 12).ok_or((at, "a header cut short"))?;
        let (len, crc) = header.split_at(8);
        if masked_crc32c(len).to_le_bytes() != crc {
            return Err((at, "the length's checksum does not match"));
        }
        let n = u64::from_le_bytes(len.try_into().map_err(|_| (at, "a bad length"))?) as usize;
        let data = bytes
            .get(at + 12..at + 12 + n)
            .ok_or((at, "a record cut short"))?;
        let crc = bytes
            .get(at + 12 + n..at + 16 + n)
            .ok_or((at, "a record's checksum cut short"))?;
        if masked_crc32c(data).to_le_bytes() != crc {
            return Err((at, "the data's checksum does not match"));
        }
        records.push(data);
        at += n + 16;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnolis_and_masked_as_tensorflow_masks_it() {
        // The check value of CRC-32C (Castagnoli) for "123456789".
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let c: u32 = 0xe306_9283;
        assert_eq!(
            masked_crc32c(b"123456789"),
            ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn a_framed_record_reads_back_and_a_cut_one_is_refused() {
        let mut file = frame(b"first");
        file.extend(frame(b""));
        file.extend(frame(&[7u8; 300]));
        let records = read_records(&file).unwrap();
        assert_eq!(records, vec![&b"first"[..], &b""[..], &[7u8; 300][..]]);
        let cut = &file[..file.len() - 3];
        assert_eq!(
            read_records(cut).unwrap_err().1,
            "a record's checksum cut short"
        );
        let mut flipped = file.clone();
        flipped[13] ^= 1;
        assert_eq!(
            read_records(&flipped).unwrap_err(),
            (0, "the data's checksum does not match")
        );
    }
}
