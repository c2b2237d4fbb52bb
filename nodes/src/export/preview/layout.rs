//! Where everything goes on the sheet. All sizes are pixels.
//!
//! ```text
//! +-- MARGIN ------------------------------------------------------------------+
//! | title (scale 2, 16 px) / 4 px / subtitle (8 px)              TITLE_H = 28  |
//! | TITLE_GAP                                                                  |
//! | header: "class" | "axial  R|L" | "coronal  R|L" | "sagittal  A|P"  (8 px)  |
//! | HEADER_GAP                                                                 |
//! | row: [swatch + text, LABEL_W] [axial] TILE_GAP [coronal] TILE_GAP [sagittal] |
//! | ROW_GAP ... up to ROWS_PER_COLUMN rows, then the next column (COL_GAP)     |
//! +----------------------------------------------------------------------------+
//! ```
//!
//! - Columns of rows: `columns = ceil(classes / ROWS_PER_COLUMN)` (at least 1), rows per
//!   column `r = ceil(classes / columns)`; classes in increasing id fill the first column
//!   top to bottom, then the next.
//! - One scale (px per mm) for every tile, so the three views keep the patient's proportions
//!   (anisotropic voxels included): with `ex, ey, ez` the grid's extent in mm along x (R-L),
//!   y (A-P), z (S-I), `room = floor((MAX_HEIGHT - TOP - MARGIN + ROW_GAP) / r) - ROW_GAP`
//!   and `s = min(MAX_TILE / max(ex, ey, ez), room / max(ey, ez))`. Tiles: axial
//!   `round(ex s) x round(ey s)`, coronal `round(ex s) x round(ez s)`, sagittal
//!   `round(ey s) x round(ez s)` (each at least 1), top-aligned in the row.
//! - Row height `max(axial h, coronal h, LABEL_MIN_H)`; column width
//!   `LABEL_W + axial w + coronal w + sagittal w + 2 TILE_GAP`.
//! - Sheet: width `max(2 MARGIN + columns * column + (columns - 1) COL_GAP,
//!   2 MARGIN + widest title line)`, height `TOP + r rows + (r - 1) ROW_GAP + MARGIN`
//!   (`TOP = MARGIN + TITLE_H + TITLE_GAP + HEADER_H + HEADER_GAP` = 60), so never taller
//!   than MAX_HEIGHT (4000) while rows keep at least LABEL_MIN_H.
//! - No class: the title lines only, on a sheet `2 MARGIN + widest line` by
//!   `2 MARGIN + TITLE_H`.

use super::views::View;

pub const MARGIN: usize = 12;
pub const TITLE_H: usize = 28;
pub const TITLE_GAP: usize = 8;
pub const HEADER_H: usize = 8;
pub const HEADER_GAP: usize = 4;
/// Top of the first row.
pub const TOP: usize = MARGIN + TITLE_H + TITLE_GAP + HEADER_H + HEADER_GAP;
/// Width of the class column (swatch and text) left of the tiles.
pub const LABEL_W: usize = 232;
/// The class column's swatch: a square of this side.
pub const SWATCH: usize = 16;
/// Three 8 px text lines, 10 px apart.
pub const LABEL_MIN_H: usize = 28;
pub const TILE_GAP: usize = 4;
pub const ROW_GAP: usize = 6;
pub const COL_GAP: usize = 24;
/// The largest tile side, in pixels.
pub const MAX_TILE: f64 = 256.0;
/// The tallest sheet (while rows fit at LABEL_MIN_H).
pub const MAX_HEIGHT: usize = 4000;
pub const ROWS_PER_COLUMN: usize = 40;

/// A rectangle on the sheet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// The sheet's geometry for a given class count and grid extent.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Layout {
    pub width: usize,
    pub height: usize,
    pub columns: usize,
    pub rows: usize,
    /// Tile sizes (w, h) of the axial, coronal and sagittal views.
    pub tiles: [(usize, usize); 3],
    pub row_h: usize,
    pub column_w: usize,
}

impl Layout {
    /// The layout for `classes` rows (>= 1) of a grid of `extent` mm (x, y, z), with a title
    /// `title_w` pixels wide.
    pub fn new(classes: usize, extent: [f64; 3], title_w: usize) -> Layout {
        let columns = classes.div_ceil(ROWS_PER_COLUMN).max(1);
        let rows = classes.div_ceil(columns).max(1);
        let room = ((MAX_HEIGHT - TOP - MARGIN + ROW_GAP) / rows).saturating_sub(ROW_GAP);
        let [ex, ey, ez] = extent.map(|e| if e > 0.0 { e } else { 1.0 });
        let s = (MAX_TILE / ex.max(ey).max(ez)).min(room.max(1) as f64 / ey.max(ez));
        let px = |mm: f64| ((mm * s).round() as usize).max(1);
        let tiles = [(px(ex), px(ey)), (px(ex), px(ez)), (px(ey), px(ez))];
        let row_h = tiles
            .iter()
            .map(|t| t.1)
            .max()
            .unwrap_or(1)
            .max(LABEL_MIN_H);
        let column_w = LABEL_W + tiles.iter().map(|t| t.0).sum::<usize>() + 2 * TILE_GAP;
        let width =
            (2 * MARGIN + columns * column_w + (columns - 1) * COL_GAP).max(2 * MARGIN + title_w);
        let height = TOP + rows * row_h + (rows - 1) * ROW_GAP + MARGIN;
        Layout {
            width,
            height,
            columns,
            rows,
            tiles,
            row_h,
            column_w,
        }
    }

    /// Left edge of column `c`.
    pub fn column_x(&self, c: usize) -> usize {
        MARGIN + c * (self.column_w + COL_GAP)
    }

    /// The class column of the `q`-th class (0-based, increasing id).
    pub fn label(&self, q: usize) -> Rect {
        Rect {
            x: self.column_x(q / self.rows),
            y: TOP + (q % self.rows) * (self.row_h + ROW_GAP),
            w: LABEL_W,
            h: self.row_h,
        }
    }

    /// The tile of `view` in the `q`-th class's row.
    pub fn tile(&self, q: usize, view: View) -> Rect {
        let l = self.label(q);
        let mut x = l.x + LABEL_W;
        for v in View::ALL {
            let (w, h) = self.tiles[v as usize];
            if v == view {
                return Rect { x, y: l.y, w, h };
            }
            x += w + TILE_GAP;
        }
        unreachable!("View::ALL holds every view")
    }
}

/// The sheet size when no class is present.
pub(crate) fn empty_size(title_w: usize) -> (usize, usize) {
    (2 * MARGIN + title_w, 2 * MARGIN + TITLE_H)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totalsegmentator_example_layout() {
        // 41 classes of a 122 x 101 x 30 grid of 3 mm voxels.
        let l = Layout::new(41, [366.0, 303.0, 90.0], 0);
        assert_eq!((l.columns, l.rows), (2, 21));
        assert_eq!(l.tiles, [(219, 181), (219, 54), (181, 54)]);
        assert_eq!((l.width, l.height), (1766, 3993));
        assert_eq!(
            l.tile(21, View::Sagittal),
            Rect {
                x: 895 + 232 + 219 + 4 + 219 + 4,
                y: 60,
                w: 181,
                h: 54
            }
        );
    }

    #[test]
    fn many_classes_stay_under_the_height_cap() {
        for n in [1, 2, 8, 40, 41, 80, 81, 120, 200] {
            let l = Layout::new(n, [500.0, 500.0, 600.0], 0);
            assert!(l.height <= MAX_HEIGHT, "{n} classes: {l:?}");
            assert!(l.columns * l.rows >= n);
        }
    }
}
