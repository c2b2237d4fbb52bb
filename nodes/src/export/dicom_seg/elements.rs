//! Building data elements: a small data set builder, decimal strings within DICOM's limits,
//! and code sequence items.

use super::codes::Code;
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// A data set (the file's root or a sequence item).
pub type Obj = InMemDicomObject;

/// A data set under construction; values are written with their VR.
pub struct Ds(Obj);

impl Ds {
    pub fn new() -> Self {
        Ds(Obj::new_empty())
    }
    pub fn put(&mut self, tag: Tag, vr: VR, v: impl Into<PrimitiveValue>) -> &mut Self {
        self.0.put(DataElement::new(tag, vr, v.into()));
        self
    }
    /// A text value (multiple values joined by `\`).
    pub fn s(&mut self, tag: Tag, vr: VR, v: &str) -> &mut Self {
        self.put(tag, vr, v)
    }
    pub fn us(&mut self, tag: Tag, v: u16) -> &mut Self {
        self.put(tag, VR::US, v)
    }
    pub fn ds(&mut self, tag: Tag, vals: &[f64]) -> &mut Self {
        let text: Vec<String> = vals.iter().map(|v| ds(*v)).collect();
        self.s(tag, VR::DS, &text.join("\\"))
    }
    pub fn seq(&mut self, tag: Tag, items: Vec<Obj>) -> &mut Self {
        self.0
            .put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
        self
    }
    pub fn done(self) -> Obj {
        self.0
    }
}

/// A decimal string of at most 16 characters (the DS limit), as precise as fits.
pub fn ds(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    let plain = format!("{v}");
    if plain.len() <= 16 {
        return plain;
    }
    for prec in (0..=15).rev() {
        let s = format!("{v:.prec$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s.len() <= 16 {
            return if s == "-0" { "0".into() } else { s };
        }
    }
    for prec in (0..=9).rev() {
        let s = format!("{v:.prec$e}");
        if s.len() <= 16 {
            return s;
        }
    }
    "0".into()
}

/// A code sequence item (CodeValue, CodingSchemeDesignator, CodeMeaning).
pub fn code_item(c: &Code) -> Obj {
    let mut d = Ds::new();
    d.s(tags::CODE_VALUE, VR::SH, &c.value)
        .s(tags::CODING_SCHEME_DESIGNATOR, VR::SH, &c.scheme)
        .s(tags::CODE_MEANING, VR::LO, &c.meaning);
    d.done()
}

/// A DICOM (DCM) code.
pub fn dcm(value: &str, meaning: &str) -> Code {
    Code {
        value: value.into(),
        scheme: "DCM".into(),
        meaning: meaning.into(),
    }
}

/// A code item with a modifier sequence nested in it (`tag`), when there is a modifier.
pub fn code_with_modifier(c: &Code, modifier: Option<&Code>, tag: Tag) -> Obj {
    let mut item = code_item(c);
    if let Some(m) = modifier {
        item.put(DataElement::new(
            tag,
            VR::SQ,
            DataSetSequence::from(vec![code_item(m)]),
        ));
    }
    item
}

/// At most `n` characters (LO holds 64).
pub fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
