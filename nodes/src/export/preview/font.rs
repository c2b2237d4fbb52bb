//! Text with the public-domain 8x8 bitmap font of the `font8x8` crate: ASCII and Latin-1;
//! other characters are drawn as `?`.

use super::canvas::Canvas;
use font8x8::legacy::{BASIC_LEGACY, LATIN_LEGACY};

/// Glyph cell size in pixels at scale 1.
pub(crate) const GLYPH: usize = 8;

/// The 8 rows of `c`'s glyph; bit 0 of a row is its leftmost pixel.
fn glyph(c: char) -> [u8; 8] {
    let code = c as usize;
    match code {
        0x20..=0x7E => BASIC_LEGACY[code],
        0xA0..=0xFF => LATIN_LEGACY[code - 0xA0],
        _ => BASIC_LEGACY[b'?' as usize],
    }
}

/// Width in pixels of `text` at `scale`.
pub(crate) fn text_width(text: &str, scale: usize) -> usize {
    text.chars().count() * GLYPH * scale
}

/// `text` cut to at most `max_chars` characters, ending in `~` when it was cut.
pub(crate) fn fit(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    if max_chars == 0 {
        return String::new();
    }
    let mut s: String = text.chars().take(max_chars - 1).collect();
    s.push('~');
    s
}

/// Draws `text` with its top-left corner at (`x`, `y`), each font pixel a `scale` x `scale`
/// square of `colour`; the background is left as it is.
pub(crate) fn draw_text(
    canvas: &mut Canvas,
    x: usize,
    y: usize,
    text: &str,
    scale: usize,
    colour: [u8; 3],
) {
    for (n, c) in text.chars().enumerate() {
        let gx = x + n * GLYPH * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH {
                if bits >> col & 1 == 1 {
                    canvas.fill_rect(gx + col * scale, y + row * scale, scale, scale, colour);
                }
            }
        }
    }
}
