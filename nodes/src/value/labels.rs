//! [`LabelMap`]: an integer volume whose values are classes of a [`ClassTable`].

use super::Volume;
use std::collections::BTreeMap;

/// Class id -> class name. Id 0 is background and is not listed.
pub type ClassTable = BTreeMap<u32, String>;

/// An integer-typed [`Volume`] of class ids, with the names of those classes.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelMap {
    pub volume: Volume,
    pub classes: ClassTable,
}

impl LabelMap {
    /// Fails unless the volume has an integer dtype.
    pub fn new(volume: Volume, classes: ClassTable) -> Result<Self, String> {
        use tch::Kind::*;
        match volume.kind() {
            Uint8 | Int8 | Int16 | Int | Int64 => Ok(LabelMap { volume, classes }),
            k => Err(format!(
                "a label map needs an integer dtype, got {k:?}; load it with `labels: true` only \
                 if the file holds class ids"
            )),
        }
    }
}
