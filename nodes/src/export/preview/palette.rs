//! The class colours: a fixed, deterministic palette by class id, and the overlay blend.
//!
//! Colour of id `n >= 1`: HSV with hue `n * 40503 / 65536` of a turn (the golden-ratio
//! conjugate: consecutive ids sit about 222 degrees apart), saturation `[255, 170][n % 2]`
//! and value `[255, 205, 230][n % 3]` (out of 255). Hues of the golden-ratio sequence come
//! close only for ids 21, 34, 55, 89... apart, and those differ in saturation or value. Integer
//! arithmetic only, so every platform gets the same bytes. Id 0 (background) is black; ids 1-5
//! are (68, 108, 205), (134, 230, 0), (255, 85, 233), (0, 205, 170), (230, 159, 76).
//!
//! [`class_colour`] is public so that the colour tables written next to label maps (3D
//! Slicer's `.ctbl`, ITK-SNAP's label description) can use the very same colours.

/// Overlay opacity, as the fraction `ALPHA_NUM / ALPHA_DEN` (0.4): a labelled pixel is
/// `(ALPHA_NUM * colour + (ALPHA_DEN - ALPHA_NUM) * grey + ALPHA_DEN / 2) / ALPHA_DEN` per
/// channel (integer division), grey being the windowed image (0 without an image).
pub const ALPHA_NUM: u32 = 2;
/// See [`ALPHA_NUM`].
pub const ALPHA_DEN: u32 = 5;

const SATURATION: [u32; 2] = [255, 170];
const VALUE: [u32; 3] = [255, 205, 230];

/// The RGB colour of class `id` (black for 0). Deterministic; see the module doc.
pub fn class_colour(id: u32) -> [u8; 3] {
    if id == 0 {
        return [0, 0, 0];
    }
    let hue = (u64::from(id) * 40503 % 65536) as u32; // 0..65536 = one turn
    let s = SATURATION[(id % 2) as usize];
    let v = VALUE[(id % 3) as usize];
    hsv(hue, s, v)
}

/// HSV (hue 0..65536, saturation and value 0..=255) to RGB, in integers.
fn hsv(hue: u32, s: u32, v: u32) -> [u8; 3] {
    let h6 = hue * 6; // < 6 * 65536
    let sector = h6 >> 16;
    let f = h6 & 0xFFFF; // position inside the sector, 0..65536
    let p = v * (255 - s) / 255;
    let q = v * (255 * 65536 - s * f) / (255 * 65536);
    let t = v * (255 * 65536 - s * (65536 - f)) / (255 * 65536);
    let (r, g, b) = match sector {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [r as u8, g as u8, b as u8]
}

/// `colour` laid over `grey` with the overlay opacity ([`ALPHA_NUM`] / [`ALPHA_DEN`]).
pub fn blend(colour: [u8; 3], grey: u8) -> [u8; 3] {
    let g = u32::from(grey);
    colour.map(|c| {
        ((ALPHA_NUM * u32::from(c) + (ALPHA_DEN - ALPHA_NUM) * g + ALPHA_DEN / 2) / ALPHA_DEN) as u8
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const PINNED: [[u8; 3]; 5] = [
        [68, 108, 205],
        [134, 230, 0],
        [255, 85, 233],
        [0, 205, 170],
        [230, 159, 76],
    ];

    #[test]
    fn colours_are_distinct_and_visible() {
        let all: BTreeSet<[u8; 3]> = (1..=512).map(class_colour).collect();
        assert_eq!(all.len(), 512, "two class ids share a colour");
        for id in 1..=512 {
            let c = class_colour(id);
            let max = *c.iter().max().unwrap();
            assert!(max >= 200, "class {id} is too dark: {c:?}");
        }
        assert_eq!(class_colour(0), [0, 0, 0]);
    }

    /// Pinned: colour tables written elsewhere (e.g. for 3D Slicer) rely on these staying put.
    #[test]
    fn first_colours_are_pinned() {
        let got: Vec<[u8; 3]> = (1..=5).map(class_colour).collect();
        assert_eq!(got, PINNED);
    }

    #[test]
    fn blend_is_the_documented_fraction() {
        assert_eq!(blend([255, 0, 100], 0), [102, 0, 40]);
        assert_eq!(blend([255, 0, 100], 255), [255, 153, 193]);
        assert_eq!(blend([10, 10, 10], 10), [10, 10, 10]);
    }
}
