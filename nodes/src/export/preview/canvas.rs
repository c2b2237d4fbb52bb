//! [`Canvas`]: an RGB8 image in memory, with the few drawing operations the sheet needs.

/// An RGB image, rows top to bottom, 3 bytes a pixel.
pub(crate) struct Canvas {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Canvas {
    /// A `width` x `height` canvas filled with `fill`.
    pub fn new(width: usize, height: usize, fill: [u8; 3]) -> Canvas {
        let mut rgb = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            rgb.extend_from_slice(&fill);
        }
        Canvas { width, height, rgb }
    }

    /// Sets one pixel; outside the canvas is ignored.
    pub fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.width && y < self.height {
            let o = (y * self.width + x) * 3;
            self.rgb[o..o + 3].copy_from_slice(&c);
        }
    }

    /// Fills the rectangle at (`x`, `y`) of size `w` x `h`, clipped to the canvas.
    pub fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
        for yy in y..(y + h).min(self.height) {
            for xx in x..(x + w).min(self.width) {
                self.set(xx, yy, c);
            }
        }
    }

    /// Copies a `w`-wide block of pixels (row-major, `pixels.len() / w` rows) to (`x`, `y`).
    pub fn blit(&mut self, x: usize, y: usize, w: usize, pixels: &[[u8; 3]]) {
        if w == 0 {
            return;
        }
        for (r, row) in pixels.chunks(w).enumerate() {
            for (c, p) in row.iter().enumerate() {
                self.set(x + c, y + r, *p);
            }
        }
    }
}
