//! A walk over a file's element headers that checks every declared value length against the
//! bytes left in the file, before dicom-rs reads it: dicom-rs allocates what a header
//! declares, so a 2 KB file declaring a 4 GB element took 4.3 GB and 11 s to refuse (found
//! by fuzzing, `fuzz/corpus/dicom/length-beyond-file.dcm`).
//!
//! Only lengths are judged, as the parser would read them (an unknown VR with a 4-byte
//! length, as dicom-rs does); a header cut short ends the walk and is left to the parser.

use std::fs::File;
use std::os::unix::fs::FileExt;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// `start`: where the data set (or the file meta group, when `part10`) begins; `legacy_ts`:
/// the guessed transfer syntax of a file without meta group; `pixels`: also the pixel data
/// (reading headers only, a truncated pixel data element is for the pixel read to report,
/// naming the file, not for the scan to skip it).
pub fn check(
    file: &File,
    start: u64,
    part10: bool,
    legacy_ts: Option<&str>,
    pixels: bool,
) -> Result<(), String> {
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut w = Walk {
        src: Source::File(file),
        size,
        pos: start,
        pixels,
        in_un_sequence: std::cell::Cell::new(false),
        in_sequence: std::cell::Cell::new(false),
        unit: std::cell::Cell::new(1),
    };
    let ts = if part10 {
        match w.meta_group()? {
            Some(ts) => ts,
            None => return Ok(()),
        }
    } else {
        legacy_ts.unwrap_or(IMPLICIT_LE).to_string()
    };
    if ts == DEFLATED {
        // The lengths are inside the compressed stream: walk its inflated bytes (dicom-rs
        // allocated what an element there declared: 795 MB for a 1.6 KB file, fuzzing).
        let inflated = inflate(file, w.pos, size)?;
        let mut inner = Walk {
            src: Source::Memory(&inflated),
            size: inflated.len() as u64,
            pos: 0,
            pixels,
            in_un_sequence: std::cell::Cell::new(false),
            in_sequence: std::cell::Cell::new(false),
            unit: std::cell::Cell::new(1),
        };
        return inner.data_set(true, false);
    }
    w.data_set(ts != IMPLICIT_LE, ts == EXPLICIT_BE)
}

/// The deflated data set from `start` on, inflated (raw deflate, PS3.5 A.5), at most
/// [`crate::io::MAX_INFLATE`] times its compressed size (deflate's own bound: more is a
/// damaged stream). A corrupt stream is refused: how far the parser gets into it depends on
/// its buffering, and it allocated what a header decoded just before the break declared
/// (4.3 GB for a 1.8 KB file: a fuzzing finding).
fn inflate(file: &File, start: u64, size: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let compressed = size.saturating_sub(start);
    let most = compressed.saturating_mul(crate::io::MAX_INFLATE);
    let mut reader = std::io::BufReader::new(file);
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut decoder = flate2::read::DeflateDecoder::new(reader).take(most + 1);
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match decoder.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) => {
                return Err(format!(
                    "damaged: its deflated data set is corrupt after {} inflated bytes ({e})",
                    out.len()
                ))
            }
        }
    }
    if out.len() as u64 > most {
        return Err(format!(
            "damaged: its deflated data set inflates to more than {} times its {compressed} \
             compressed bytes",
            crate::io::MAX_INFLATE
        ));
    }
    Ok(out)
}

/// Where the walk reads: the file itself, or a deflated data set inflated in memory.
enum Source<'a> {
    File(&'a File),
    Memory(&'a [u8]),
}

impl Source<'_> {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        match self {
            Source::File(f) => f.read_exact_at(buf, at),
            Source::Memory(m) => {
                let end = at
                    .checked_add(buf.len() as u64)
                    .filter(|e| *e <= m.len() as u64);
                let Some(end) = end else {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                };
                buf.copy_from_slice(&m[at as usize..end as usize]);
                Ok(())
            }
        }
    }
}

struct Walk<'a> {
    src: Source<'a>,
    size: u64,
    pos: u64,
    pixels: bool,
    /// Past a UN sequence of undefined length: a bad length there is more likely dicom-rs
    /// misreading valid implicit VR content than damage, and the error says so.
    in_un_sequence: std::cell::Cell<bool>,
    /// The header just read opens a sequence (set by [`Walk::header`]).
    in_sequence: std::cell::Cell<bool>,
    /// The value unit of the header just read: dicom-rs reads a binary number VR (UL, FD,
    /// ...) as whole numbers, so it consumes only `len - len % unit` bytes of an odd length.
    unit: std::cell::Cell<u64>,
}

/// Implicit VR has no VR on the wire: dicom-rs takes it from the standard dictionary, and
/// reads the content of the tags it lists as SQ as items.
fn implicit_sequence(group: u16, elem: u16) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    use dicom_core::{Tag, VR};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(Tag(group, elem))
        .is_some_and(|e| e.vr() == VirtualVr::Exact(VR::SQ))
}

/// VRs with a 2-byte length in explicit VR, as dicom-rs lists them (PS3.5 7.1.2); every
/// other VR, unknown ones too, has 2 reserved bytes and a 4-byte length.
fn short_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

impl Walk<'_> {
    fn bytes<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        let mut b = [0u8; N];
        self.src.read_exact_at(&mut b, at).ok().map(|_| b)
    }

    fn u16(b: [u8; 2], big: bool) -> u16 {
        if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(b: [u8; 4], big: bool) -> u32 {
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// One element header at `pos`: (group, element, value length, header size), or None
    /// past the end of the file.
    fn header(&self, explicit: bool, big: bool) -> Option<(u16, u16, u32, u64)> {
        let h: [u8; 8] = self.bytes(self.pos)?;
        let group = Self::u16([h[0], h[1]], big);
        let elem = Self::u16([h[2], h[3]], big);
        if group == 0xFFFE || !explicit {
            // Items and delimiters have no VR in any transfer syntax.
            let len = Self::u32([h[4], h[5], h[6], h[7]], big);
            // dicom-rs gives (FFFE,xxxx) no VR in explicit VR (UN), the dictionary's in
            // implicit VR, as any tag: (FFFE,0000) is a group length, UL.
            self.unit.set(if explicit {
                1
            } else {
                implicit_unit(group, elem)
            });
            if group != 0xFFFE && implicit_sequence(group, elem) {
                self.in_sequence.set(true);
            }
            return Some((group, elem, len, 8));
        }
        let vr = &h[4..6];
        self.unit.set(number_unit(vr));
        // A VR dicom-rs does not know (a damaged one) is read as UN, with a 4-byte length.
        if !short_vr(vr) {
            let l: [u8; 4] = self.bytes(self.pos + 8)?;
            let len = Self::u32(l, big);
            // A sequence sent as UN of undefined length: the standard reads its content as
            // implicit VR, dicom-rs in the file's own syntax; the walk follows dicom-rs
            // (it stopped here, and a 674-byte file then took 3.8 GB: fuzzing finding).
            if vr == b"UN" && len == UNDEFINED {
                self.in_un_sequence.set(true);
            }
            if vr == b"SQ" {
                self.in_sequence.set(true);
            }
            Some((group, elem, len, 12))
        } else {
            Some((group, elem, Self::u16([h[6], h[7]], big) as u32, 8))
        }
    }

    fn check_length(&self, group: u16, elem: u16, len: u32, header: u64) -> Result<(), String> {
        let left = self.size.saturating_sub(self.pos + header);
        if len != UNDEFINED && len as u64 > left {
            let hint = if self.in_un_sequence.get() {
                "; it follows a sequence sent as UN (implicit VR inside explicit VR), which \
                 vistaflow's DICOM reader cannot read: remove that element with another \
                 tool (dcmtk's `dcmodify -ep` erases private elements, where such sequences \
                 usually are)"
            } else {
                ""
            };
            return Err(format!(
                "truncated or damaged: element ({group:04X},{elem:04X}) declares {len} bytes \
                 but the {} has only {left} left{hint}",
                match self.src {
                    Source::File(_) => "file",
                    Source::Memory(_) => "inflated data set",
                }
            ));
        }
        Ok(())
    }

    /// The file meta group (explicit VR little endian): its transfer syntax UID. Read as
    /// dicom-rs reads it: (0002,0000) first, then elements of any group until that many
    /// bytes are consumed (a walk that stopped at the first other group left the data set
    /// unchecked: a fuzzing finding). `None`: dicom-rs will refuse the header itself.
    fn meta_group(&mut self) -> Result<Option<String>, String> {
        match self.header(true, false) {
            Some((0x0002, 0x0000, 4, header)) => {
                let group_length = self
                    .bytes::<4>(self.pos + header)
                    .map(u32::from_le_bytes)
                    .ok_or("the file ends inside its meta header")?;
                self.pos += header + 4;
                let end = self.pos + group_length as u64;
                let mut ts = None;
                while self.pos < end {
                    let Some((group, elem, len, header)) = self.header(true, false) else {
                        return Ok(None);
                    };
                    self.check_length(group, elem, len, header)?;
                    if len == UNDEFINED {
                        return Ok(None);
                    }
                    if (group, elem) == (0x0002, 0x0010) && len <= 64 {
                        let mut v = vec![0u8; len as usize];
                        self.src
                            .read_exact_at(&mut v, self.pos + header)
                            .map_err(|e| e.to_string())?;
                        let s = String::from_utf8_lossy(&v);
                        // Trimmed as dicom-rs trims it: any trailing whitespace, not only
                        // spaces (a fuzzing finding: with a trailing CR the walk took the
                        // data set for explicit VR, dicom-rs read it as implicit and
                        // allocated the 4 GB that a header then declared).
                        let trailing = |c: char| c.is_whitespace() || c == '\0';
                        ts = Some(s.trim_end_matches(trailing).to_string());
                    }
                    self.pos += header + len as u64;
                }
                Ok(ts)
            }
            _ => Ok(None),
        }
    }

    /// The data set: element after element. Sequences and items are walked into whatever
    /// their length (dicom-rs parses their content, and allocated what an element inside a
    /// defined-length sequence declared: a 6 KB file took 4.3 GB, a fuzzing finding), as is
    /// anything of undefined length (encapsulated pixel data); other values are skipped.
    fn data_set(&mut self, explicit: bool, big: bool) -> Result<(), String> {
        // Inside encapsulated pixel data, items are fragments of compressed bytes.
        let mut fragments = false;
        // The open sequences and items, with where they end when their length is defined: a
        // sequence holds only items, and an element there is a damaged file that dicom-rs
        // reads astray (a fuzzing finding: 4.3 GB for an 18 KB file).
        let mut open: Vec<(Nest, Option<u64>)> = Vec::new();
        while self.pos < self.size {
            while open
                .last()
                .is_some_and(|(_, end)| end.is_some_and(|e| self.pos >= e))
            {
                open.pop();
            }
            self.in_sequence.set(false);
            let Some((group, elem, len, header)) = self.header(explicit, big) else {
                return Ok(());
            };
            // A header scan stops at the pixel data, as dicom-rs does: at the top level only
            // (it reads an element tagged (7FE0,0010) inside an item like any other, and
            // allocated the 4 GB one declared: a fuzzing finding).
            if (group, elem) == (0x7FE0, 0x0010) && !self.pixels && open.is_empty() {
                return Ok(());
            }
            if !fragments && matches!(open.last(), Some((Nest::Sequence, _))) && group != 0xFFFE {
                return Err(format!(
                    "damaged: element ({group:04X},{elem:04X}) stands inside a sequence, where \
                     only items may"
                ));
            }
            if !explicit && len == UNDEFINED && group != 0xFFFE && !self.in_sequence.get() {
                if let Some(vr) = implicit_vr(group, elem) {
                    if (group, elem) != (0x7FE0, 0x0010) {
                        return Err(format!(
                            "damaged: element ({group:04X},{elem:04X}) of VR {vr} declares an \
                             undefined length"
                        ));
                    }
                }
            }
            self.check_length(group, elem, len, header)?;
            let end = (len != UNDEFINED).then(|| self.pos + header + len as u64);
            self.pos += header;
            // dicom-rs takes an (FFFE,xxxx) tag for an item or a sequence delimiter only at a
            // sequence's level; elsewhere, but for an item delimiter, it is a plain element
            // whose value is read (a fuzzing finding: the walk skipped the 8-byte header of
            // an (FFFE,FFFF) inside an item, dicom-rs its 9-byte value too, and then
            // allocated the 4 GB that the next header it read declared).
            let at_sequence_level = matches!(open.last(), Some((Nest::Sequence, _)));
            if group == 0xFFFE && elem != 0xE00D && !fragments && !at_sequence_level {
                if len == UNDEFINED {
                    open.push((Nest::Sequence, None));
                } else {
                    // whole numbers only, as below (a fuzzing finding: 28 bytes took 1 GB
                    // when the walk skipped all 7 bytes of an implicit (FFFE,0000), a UL)
                    self.pos += len as u64 - len as u64 % self.unit.get();
                }
                continue;
            }
            match (group, elem) {
                (0x7FE0, 0x0010) => fragments = len == UNDEFINED,
                // A delimiter ends its sequence or item for dicom-rs also when that declared
                // a length (a fuzzing finding: an item delimiter inside a defined-length item
                // ended it for dicom-rs, not for the walk, and 805 bytes took 285 MB).
                (0xFFFE, 0xE0DD) => {
                    if fragments {
                        fragments = false;
                    } else if matches!(open.last(), Some((Nest::Sequence, _))) {
                        open.pop();
                    }
                }
                (0xFFFE, 0xE00D) if !fragments => match open.last() {
                    Some((Nest::Item, _)) => {
                        open.pop();
                    }
                    // dicom-rs would close the sequence and go on reading item headers
                    // where the enclosing item's elements are: refused, not followed.
                    Some((Nest::Sequence, _)) => {
                        return Err(
                            "damaged: an item delimiter stands where a sequence's items \
                             should be"
                                .into(),
                        )
                    }
                    None => {}
                },
                (0xFFFE, 0xE000) if !fragments => open.push((Nest::Item, end)),
                _ if self.in_sequence.get() || (len == UNDEFINED && group != 0xFFFE) => {
                    open.push((Nest::Sequence, end))
                }
                _ => {}
            }
            let item = (group, elem) == (0xFFFE, 0xE000);
            let opens = self.in_sequence.get() || (item && !fragments);
            if len != UNDEFINED && !opens && (group != 0xFFFE || item) {
                // dicom-rs reads (and so skips) whole numbers only: a UL of length 7 takes 4
                // bytes, and the next header is read 3 bytes early (a fuzzing finding: the
                // walk then saw another length than dicom-rs, which allocated 4 GB).
                let unit = self.unit.get();
                self.pos += len as u64 - len as u64 % unit;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Nest {
    Sequence,
    Item,
}

/// The size of one value of a binary number VR as dicom-rs reads it (OW as u16, OF and OL as
/// 32-bit, OD and OV as 64-bit words), 1 for every other VR.
fn number_unit(vr: &[u8]) -> u64 {
    match vr {
        b"US" | b"SS" | b"OW" => 2,
        b"UL" | b"SL" | b"FL" | b"AT" | b"OF" | b"OL" => 4,
        b"FD" | b"SV" | b"UV" | b"OD" | b"OV" => 8,
        _ => 1,
    }
}

/// The value unit of an element in implicit VR, as dicom-rs reads it: with the VR of the
/// standard dictionary, a choice of VRs taken as its first (pixel data, `OB or OW`, as OW: a
/// fuzzing finding, where the walk skipped a byte of a 1-byte (7F20,0010) that dicom-rs read
/// as no whole word, and 24 bytes then took 4.3 GB).
fn implicit_unit(group: u16, elem: u16) -> u64 {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(group, elem))
        .map_or(1, |e| number_unit(e.vr().relaxed().to_string().as_bytes()))
}

/// The VR dicom-rs gives an element in implicit VR (from the standard dictionary), when it
/// knows one other than SQ or UN (those may have an undefined length).
fn implicit_vr(group: u16, elem: u16) -> Option<String> {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    use dicom_core::{Tag, VR};
    match dicom_dictionary_std::StandardDataDictionary
        .by_tag(Tag(group, elem))
        .map(|e| e.vr())
    {
        Some(VirtualVr::Exact(VR::SQ)) | Some(VirtualVr::Exact(VR::UN)) | None => None,
        Some(VirtualVr::Exact(vr)) => Some(vr.to_string().to_string()),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn element(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(tag.0.to_le_bytes());
        b.extend(tag.1.to_le_bytes());
        b.extend(vr);
        if !short_vr(vr) {
            b.extend([0, 0]);
            b.extend((value.len() as u32).to_le_bytes());
        } else {
            b.extend((value.len() as u16).to_le_bytes());
        }
        b.extend(value);
        b
    }

    fn part10(data_set: &[u8], ts: &str) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        b.extend(b"DICM");
        let mut uid = ts.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let ts = element((0x0002, 0x0010), b"UI", &uid);
        b.extend(element(
            (0x0002, 0x0000),
            b"UL",
            &(ts.len() as u32).to_le_bytes(),
        ));
        b.extend(ts);
        b.extend(data_set);
        b
    }

    #[test]
    fn the_meta_group_is_read_by_its_length_and_unknown_vrs_have_4_byte_lengths() {
        // A meta element of another group inside the group length (dicom-rs reads on).
        let mut f = part10(&[], "1.2.840.10008.1.2.1");
        let stray = element((0x000A, 0x0001), b"OB", &[0, 1]);
        let group_length = (f.len() - 144 + stray.len()) as u32;
        f[140..144].copy_from_slice(&group_length.to_le_bytes());
        f.extend(stray);
        // then (0018,0081) with the unknown VR "DC": reserved 2 bytes, then 4 GB declared
        f.extend([
            0x18, 0x00, 0x81, 0x00, b'D', b'C', 0, 0, 0x00, 0xFF, 0xFF, 0xFF,
        ]);
        let e = check(&file(&f), 132, true, None, false).unwrap_err();
        assert!(e.contains("(0018,0081) declares 4294967040 bytes"), "{e}");
    }

    #[test]
    fn a_length_beyond_the_file_is_refused_and_sound_files_pass() {
        let ok = [
            element((0x0008, 0x0060), b"CS", b"CT"),
            element((0x7FE0, 0x0010), b"OW", &[0u8; 64]),
        ]
        .concat();
        let explicit = "1.2.840.10008.1.2.1";
        assert_eq!(
            check(&file(&part10(&ok, explicit)), 128 + 4, true, None, true),
            Ok(())
        );
        // Pixel data declaring 4 GB in a file of a few hundred bytes.
        let mut bad = element((0x0008, 0x0060), b"CS", b"CT");
        bad.extend([
            0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 0x00, 0xFF, 0xFF, 0xFF,
        ]);
        let e = check(&file(&part10(&bad, explicit)), 132, true, None, true).unwrap_err();
        assert!(e.contains("(7FE0,0010) declares 4294967040 bytes"), "{e}");
        // Headers only: the pixel data is the pixel read's to judge.
        assert_eq!(
            check(&file(&part10(&bad, explicit)), 132, true, None, false),
            Ok(())
        );
        // Implicit VR: 4-byte lengths right after the tag.
        let mut implicit = vec![0x08, 0x00, 0x60, 0x00, 2, 0, 0, 0, b'C', b'T'];
        assert_eq!(
            check(&file(&implicit), 0, false, Some(IMPLICIT_LE), true),
            Ok(())
        );
        implicit.extend([0x10, 0x00, 0x10, 0x00, 0, 0, 0, 0x7F]);
        assert!(check(&file(&implicit), 0, false, Some(IMPLICIT_LE), true).is_err());
    }

    #[test]
    fn a_un_sequence_of_undefined_length_is_walked_into_as_dicom_rs_reads_it() {
        // pydicom's UN_sequence.dcm: (0009,100C) UN of undefined length, whose item holds
        // implicit VR elements; dicom-rs reads (0008,1115)'s FFFF as a VR and the next 4
        // bytes (an item tag) as a length of 3.7 GB, and allocated it.
        let mut ds = vec![
            0x09, 0x00, 0x0C, 0x10, b'U', b'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend([0x08, 0x00, 0x15, 0x11, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let f = file(&part10(&ds, "1.2.840.10008.1.2.4.70"));
        let e = check(&f, 132, true, None, false).unwrap_err();
        assert!(e.contains("(0008,1115) declares 3758161918 bytes"), "{e}");
        assert!(e.contains("sequence sent as UN"), "{e}");
    }

    #[test]
    fn sequences_and_items_of_defined_length_are_walked_into() {
        // An SQ of 20 bytes holding an item of 12 whose one element declares 4 GB: dicom-rs
        // parses the item's content and allocated the 4 GB.
        let inner = [0x08, 0x00, 0x50, 0x11, b'U', b'I', 0xF0, 0xFF];
        let mut ds = vec![0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 16, 0, 0, 0];
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0]);
        ds.extend(inner);
        let explicit = "1.2.840.10008.1.2.1";
        let e = check(&file(&part10(&ds, explicit)), 132, true, None, false).unwrap_err();
        assert!(e.contains("(0008,1150) declares 65520 bytes"), "{e}");
        // Implicit VR: (0008,1115) is an SQ by the dictionary.
        let mut ds = vec![0x08, 0x00, 0x15, 0x11, 16, 0, 0, 0];
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0]);
        ds.extend([0x08, 0x00, 0x50, 0x11, 0, 0, 0, 0x7F]);
        let e = check(&file(&ds), 0, false, Some(IMPLICIT_LE), false).unwrap_err();
        assert!(e.contains("(0008,1150) declares 2130706432 bytes"), "{e}");
        // The same sound: passes.
        let mut ds = vec![0x08, 0x00, 0x15, 0x11, 20, 0, 0, 0];
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 12, 0, 0, 0]);
        ds.extend([0x08, 0x00, 0x50, 0x11, 4, 0, 0, 0, b'1', b'.', b'2', 0]);
        assert_eq!(check(&file(&ds), 0, false, Some(IMPLICIT_LE), true), Ok(()));
    }

    #[test]
    fn sequences_and_encapsulated_pixel_data_of_undefined_length_are_walked_into() {
        let explicit = "1.2.840.10008.1.2.4.50";
        let mut ds = Vec::new();
        // SQ of undefined length with one item of undefined length, then delimiters.
        ds.extend([
            0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend(element((0x0008, 0x1150), b"UI", b"1.2"));
        ds.extend([0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        ds.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        // Encapsulated pixel data: offset table item, one fragment, sequence delimiter.
        ds.extend([
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0, 1, 2, 3, 4]);
        ds.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        assert_eq!(
            check(&file(&part10(&ds, explicit)), 132, true, None, true),
            Ok(())
        );
        // The fragment claiming more than is there.
        let n = ds.len();
        ds[n - 16] = 0xFF;
        ds[n - 15] = 0xFF;
        assert!(check(&file(&part10(&ds, explicit)), 132, true, None, true).is_err());
    }

    #[test]
    fn a_deflated_data_set_is_walked_inflated_and_a_bomb_is_refused() {
        use flate2::{write::DeflateEncoder, Compression};
        let deflate = |raw: &[u8]| {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        };
        let sound = element((0x0008, 0x1150), b"UI", b"1.2");
        let f = file(&part10(&deflate(&sound), DEFLATED));
        assert_eq!(check(&f, 132, true, None, true), Ok(()));
        // The same element declaring 64 kB: found only inside the stream.
        let mut bad = sound.clone();
        bad[6..8].copy_from_slice(&0xFFF0u16.to_le_bytes());
        let f = file(&part10(&deflate(&bad), DEFLATED));
        let e = check(&f, 132, true, None, true).unwrap_err();
        assert!(
            e.contains("(0008,1150) declares 65520 bytes but the inflated"),
            "{e}"
        );
        // 8 MB of zeros deflate to ~8 kB (1000x): within deflate's bound. The bound itself:
        // the same stream, with inflate told it is 4096 times shorter than it is.
        let mut zeros = element((0x0009, 0x0010), b"OB", &vec![0u8; 8 << 20]);
        zeros.truncate(8 << 20);
        let packed = deflate(&zeros);
        assert!(inflate(&file(&packed), 0, packed.len() as u64).is_ok());
        let e = inflate(&file(&packed), 0, packed.len() as u64 / 4096).unwrap_err();
        assert!(e.contains("inflates to more than 1032 times"), "{e}");
        // A damaged stream: refused, whatever inflated before the damage.
        let mut broken = deflate(&sound);
        broken[0] ^= 0x06; // a reserved block type
        let f = file(&part10(&broken, DEFLATED));
        let e = check(&f, 132, true, None, true).unwrap_err();
        assert!(e.contains("deflated data set is corrupt"), "{e}");
    }

    #[test]
    fn a_header_scan_stops_at_top_level_pixel_data_only() {
        // Implicit VR: (0008,1115) SQ of undefined length, an item holding (7FE0,0010)
        // declaring 2 GB: dicom-rs reads nested pixel data as any element.
        let mut ds = vec![0x08, 0x00, 0x15, 0x11, 0xFF, 0xFF, 0xFF, 0xFF];
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend([0xE0, 0x7F, 0x10, 0x00, 0, 0, 0, 0x7F]);
        let e = check(&file(&ds), 0, false, Some(IMPLICIT_LE), false).unwrap_err();
        assert!(e.contains("(7FE0,0010) declares 2130706432 bytes"), "{e}");
        // At the top level a header scan leaves it to the pixel read.
        let top = [0xE0, 0x7F, 0x10, 0x00, 0, 0, 0, 0x7F];
        assert_eq!(
            check(&file(&top), 0, false, Some(IMPLICIT_LE), false),
            Ok(())
        );
        assert!(check(&file(&top), 0, false, Some(IMPLICIT_LE), true).is_err());
    }

    #[test]
    fn an_odd_length_number_is_skipped_as_dicom_rs_reads_it() {
        // (0028,0010) Rows, US, of length 3 in implicit VR: dicom-rs reads one u16 (2 bytes),
        // so the next header starts 2 bytes into the value; there, an element declaring 2 GB.
        let mut ds = vec![0x28, 0x00, 0x10, 0x00, 3, 0, 0, 0, 1, 2];
        ds.extend([0x10, 0x00, 0x10, 0x00, 0xF0, 0xFF, 0xFF, 0x7F]);
        ds.extend([0u8; 16]);
        let e = check(&file(&ds), 0, false, Some(IMPLICIT_LE), true).unwrap_err();
        assert!(e.contains("(0010,0010) declares 2147483632 bytes"), "{e}");
        // Explicit VR: the same with an OW of length 3 (one u16 read).
        let mut ds = element((0x0009, 0x1010), b"OW", &[1, 2, 3]);
        let n = ds.len();
        ds.truncate(n - 1); // the 3-byte value's last byte is the next header's first
        ds.extend([0x10, 0x00, 0x10, 0x00, b'L', b'O', 0xF0, 0xFF]);
        ds.extend([0u8; 16]);
        let explicit = "1.2.840.10008.1.2.1";
        let e = check(&file(&part10(&ds, explicit)), 132, true, None, true).unwrap_err();
        assert!(e.contains("declares 65520 bytes"), "{e}");
    }
}
