//! The inputs fuzzing found (committed, minimised, under fuzz/corpus/<target>/) through the
//! `vistaflow` binary as a user meets them: each is a clear error naming the file and the
//! cause, within seconds and without a "thread panicked" line, however it failed before.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn corpus(target: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
        .join(name)
}

/// The largest resident set of any child this test process has waited for, in MB (the
/// findings took 0.4-4.3 GB; every run here must stay far below: a refusal takes about
/// 125 MB, libtorch loaded).
/// The bound on [`children_peak_mb`].
const MAX_CHILD_MB: i64 = 256;

fn children_peak_mb() -> i64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    u.ru_maxrss / 1024
}

/// Runs load_dicom on a folder holding only `input`, and checks the error names the file;
/// returns the output text.
fn load_dicom(input: &Path) -> String {
    let text = load_dicom_unnamed(input);
    assert!(
        text.contains("series/1.dcm"),
        "the file is not named:\n{text}"
    );
    text
}

/// Runs load_dicom on a folder holding only `input`: an error (exit 1) within 10 s, the
/// child's memory bounded, no panic text; returns the output text.
fn load_dicom_unnamed(input: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let series = dir.path().join("series");
    std::fs::create_dir(&series).unwrap();
    std::fs::copy(input, series.join("1.dcm")).unwrap();
    let yaml =
        "version: 1\nname: regression\nnodes:\n  ct: {kind: load_dicom, params: {path: series}}\n";
    fails_quickly(dir.path(), yaml)
}

/// Runs the workflow `yaml` in `dir`: an error (exit 1) within 10 s, the child's memory
/// bounded, no panic text; returns the output text.
fn fails_quickly(dir: &Path, yaml: &str) -> String {
    std::fs::write(dir.join("w.yaml"), yaml).unwrap();
    let start = Instant::now();
    let out = common::vistaflow(&["run", "-q", "--no-cache", "--no-trace", "w.yaml"], dir);
    let took = start.elapsed();
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {text}");
    assert!(
        children_peak_mb() < MAX_CHILD_MB,
        "{} MB: {text}",
        children_peak_mb()
    );
    assert!(
        !text.contains("panicked"),
        "a panic message reached the user:\n{text}"
    );
    text
}

#[test]
fn an_element_longer_than_its_file_is_refused_before_allocating() {
    // was: 4.3 GB and 11 s for a 2 KB file
    let text = load_dicom(&corpus("dicom", "length-beyond-file.dcm"));
    common::assert_has(
        &text,
        &[
            "truncated or damaged",
            "declares",
            "bytes but the file has only",
        ],
    );
}

#[test]
fn a_short_rle_segment_is_an_error_not_a_panic() {
    // was: a panic inside dicom-rs's RLE decoder, printed above the error
    let text = load_dicom(&corpus("dicom", "rle-segment-short.dcm"));
    common::assert_has(
        &text,
        &[
            "cannot decode frame 1",
            "the decoder failed on damaged data",
        ],
    );
}

#[test]
fn a_un_sequence_dicom_rs_misreads_is_refused_before_allocating() {
    // was: 3.8 GB and 8 s for pydicom's 674-byte UN_sequence.dcm (from data/, fetched)
    let Some(data) = common::data_dir() else {
        eprintln!("skipped: data/ is absent (scripts/fetch-data.sh)");
        return;
    };
    let text = load_dicom(&data.join("pydicom/test_files/UN_sequence.dcm"));
    common::assert_has(
        &text,
        &[
            "(0008,1115) declares 3758161918 bytes",
            "sequence sent as UN",
        ],
    );
}

#[test]
fn an_element_inside_a_defined_length_sequence_is_refused_before_allocating() {
    // was: 4.3 GB and 10 s for a 6.8 KB structured report
    let text = load_dicom(&corpus("dicom", "length-inside-sequence.dcm"));
    common::assert_has(&text, &["(A043,5153) declares 4294836224 bytes"]);
}

#[test]
fn a_meta_group_with_a_stray_element_does_not_hide_the_data_set_from_the_check() {
    // was: 3.8 GB and 8 s (UN_sequence.dcm with (0002,0001) turned into (000A,0001))
    let text = load_dicom(&corpus("dicom", "meta-stray-group.dcm"));
    common::assert_has(&text, &["(0008,1115) declares 3758161918 bytes"]);
}

#[test]
fn an_unknown_vr_is_read_with_a_4_byte_length_as_the_parser_does() {
    // was: 1.7 GB (a damaged VR "DC" on (0018,0081), whose next bytes read as 808 MB)
    let text = load_dicom(&corpus("dicom", "unknown-vr.dcm"));
    common::assert_has(&text, &["(0018,0081) declares 808922675 bytes"]);
}

#[test]
fn a_legacy_file_declaring_4_gb_of_pixels_is_refused_before_allocating() {
    // was: 4.3 GB and 3 s (no preamble, read whole; its pixel data length was not checked)
    let start = Instant::now();
    let text = load_dicom_unnamed(&corpus("dicom", "legacy-pixel-length.dcm"));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}: {text}",
        start.elapsed()
    );
    // a file whose declared lengths do not fit is no legacy data set after all
    common::assert_has(
        &text,
        &["no DICOM image volume found among 1 file(s): 1 not DICOM"],
    );
}

#[test]
fn an_element_where_a_sequence_item_should_be_is_refused_before_allocating() {
    // was: 4.3 GB and 14 s (an 18 KB legacy file: dicom-rs read a group length inside an
    // undefined-length sequence as a 4 GB value)
    let text = load_dicom_unnamed(&corpus("dicom", "item-expected-in-sequence.dcm"));
    common::assert_has(&text, &["1 not DICOM"]);
}

#[test]
fn an_element_inside_a_deflated_data_set_is_checked_after_inflating() {
    // was: 795 MB for a 1.6 KB file (the walk did not look inside the compressed stream)
    let text = load_dicom(&corpus("dicom", "deflated-length.dcm"));
    common::assert_has(
        &text,
        &["(2929,2929) declares 690563369 bytes but the inflated data set has only 199 left"],
    );
}

#[test]
fn pixel_data_inside_an_item_is_checked_by_the_header_scan() {
    // was: 4.3 GB and 8 s for 492 bytes (the header scan stopped at a nested (7FE0,0010))
    let text = load_dicom(&corpus("dicom", "pixel-data-in-item.dcm"));
    common::assert_has(&text, &["(7FE0,0010) declares 4294901762 bytes"]);
}

#[test]
fn an_odd_length_number_is_walked_as_the_parser_reads_it() {
    // was: 4.1 GB and 5 s for 17.8 KB (a UL of length 7: dicom-rs reads 4 bytes of it, the
    // walk skipped 7 and then judged other lengths than the parser met)
    let text = load_dicom_unnamed(&corpus("dicom", "odd-length-number.dcm"));
    common::assert_has(&text, &["no DICOM image volume found among 1 file(s)"]);
}

#[test]
fn a_corrupt_deflated_data_set_is_refused_before_the_parser_reads_it() {
    // was: 4.3 GB and 7 s for 1.8 KB (the inflate gave up at once, the parser decoded a
    // header declaring 4 GB before meeting the damage)
    let text = load_dicom(&corpus("dicom", "deflate-corrupt.dcm"));
    common::assert_has(&text, &["its deflated data set is corrupt"]);
}

/// Runs load_dicom_seg on `input` with the fuzz targets' CT series (fuzz/fixtures/series) as
/// its image, as [`fails_quickly`]; the error must name the file.
fn load_dicom_seg(input: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(input, dir.path().join("in.dcm")).unwrap();
    let series = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fixtures/series");
    let yaml = format!(
        "version: 1\nname: regression\nnodes:\n  ct: {{kind: load_dicom, params: {{path: {}}}}}\n  \
         x: {{kind: load_dicom_seg, inputs: {{image: ct.image}}, params: {{path: in.dcm}}}}\n",
        series.display()
    );
    let text = fails_quickly(dir.path(), &yaml);
    assert!(text.contains("in.dcm"), "the file is not named:\n{text}");
    text
}

/// `corpus/seg/NAME` is refused with `message` by load_dicom_seg and by load_dicom.
fn seg_and_series_loaders_refuse(name: &str, message: &str) {
    let input = corpus("seg", name);
    common::assert_has(&load_dicom_seg(&input), &[message]);
    common::assert_has(&load_dicom(&input), &[message]);
}

#[test]
fn an_item_tag_inside_an_item_is_read_as_the_parser_reads_it() {
    // was: 4.3 GB and 7 s for a 7.3 KB SEG (an item delimiter damaged into (FFFE,FFFF) with
    // 9 value bytes: dicom-rs read them, the walk did not, and the next header dicom-rs met
    // declared 4 GB)
    seg_and_series_loaders_refuse(
        "fffe-element-in-item.dcm",
        "(2200,5392) declares 4278190079 bytes",
    );
}

#[test]
fn a_transfer_syntax_uid_with_a_trailing_cr_is_walked_as_the_parser_reads_it() {
    // was: 4.2 GB and 9 s for 392 bytes ("1.2.840.10008.1.2\r": dicom-rs trims any trailing
    // whitespace and read implicit VR; the walk trimmed spaces only and walked explicit VR)
    seg_and_series_loaders_refuse(
        "transfer-syntax-trailing-cr.dcm",
        "(0000,0000) declares 4143906866 bytes",
    );
}

#[test]
fn an_odd_length_pixel_data_choice_in_implicit_vr_is_walked_as_words() {
    // was: 4.3 GB and 8 s for 24 bytes (a legacy data set opening with a 1-byte (7F20,0010),
    // `OB or OW` in the dictionary: dicom-rs reads OW, so no whole word and no byte of it;
    // the walk skipped the byte and judged other headers than the parser met)
    let input = corpus("dicom", "legacy-odd-length-pixel-words.dcm");
    let text = load_dicom_unnamed(&input);
    common::assert_has(&text, &["1 not DICOM"]);
    common::assert_has(&load_dicom_seg(&input), &["not a DICOM file"]);
}

#[test]
fn an_item_tag_element_in_implicit_vr_is_walked_with_its_dictionary_vr() {
    // was: 1.1 GB for 28 bytes (a legacy data set with a 7-byte (FFFE,0000): in implicit VR
    // dicom-rs reads it as a group length, UL, so 4 bytes of it; the walk skipped all 7 and
    // missed the (0000,0100) of 1 GB that the parser then read)
    let input = corpus("dicom", "implicit-fffe-group-length.dcm");
    common::assert_has(&load_dicom_unnamed(&input), &["1 not DICOM"]);
    common::assert_has(&load_dicom_seg(&input), &["not a DICOM file"]);
}

#[test]
fn an_item_delimiter_ends_a_defined_length_item_as_the_parser_reads_it() {
    // was: 285 MB more for 805 bytes (an item delimiter inside an item of defined length, then
    // a sequence delimiter: dicom-rs ended both there, the walk kept them open and skipped
    // the header that dicom-rs then read, declaring 285 MB)
    seg_and_series_loaders_refuse(
        "item-delimiter-in-defined-item.dcm",
        "(FE79,DDFF) declares 285220864 bytes",
    );
}
