//! Binary STL files.
//!
//! Layout: an 80-byte header, a little-endian `u32` triangle count, then per triangle its
//! unit normal and three corners (12 `f32`) and a `u16` attribute (0). STL has no units or
//! coordinate system; the header says both in the form 3D Slicer looks for: Slicer's model
//! reader (`vtkMRMLModelStorageNode::GetCoordinateSystemFromFileHeader`) searches the header
//! for the substring `SPACE=LPS` (or `SPACE=RAS`) and Slicer itself writes
//! `3D Slicer output. SPACE=LPS`. (Without a tag, current Slicer assumes LPS too.)

use super::surface::{norm, triangle_normal, Mesh};
use crate::io::atomic;
use crate::node::NodeError;
use std::io::Write;
use std::path::Path;

/// The 80-byte header: `vistaflow surface mesh. SPACE=LPS units=mm` and then `title`,
/// cut to fit. Never starts with `solid` (that would mark an ASCII STL).
pub(crate) fn header(title: &str) -> [u8; 80] {
    let text = format!("vistaflow surface mesh. SPACE=LPS units=mm {title}");
    let mut h = [b' '; 80];
    let n = text.len().min(80);
    h[..n].copy_from_slice(&text.as_bytes()[..n]);
    h
}

/// Writes `mesh` to `path` (its folder must exist) through a temporary file renamed into
/// place; `title` goes into the header after the coordinate-system tag.
pub(crate) fn write(path: &Path, mesh: &Mesh, title: &str) -> Result<(), NodeError> {
    let count = u32::try_from(mesh.triangles.len()).map_err(|_| {
        NodeError::Invalid(format!(
            "{}: {} triangles do not fit in an STL file (at most {}); use a larger `step`",
            path.display(),
            mesh.triangles.len(),
            u32::MAX
        ))
    })?;
    atomic::write(path, |w| {
        let err = |e| atomic::write_error(path, e);
        w.write_all(&header(title)).map_err(err)?;
        w.write_all(&count.to_le_bytes()).map_err(err)?;
        let mut rec = [0u8; 50];
        for t in &mesh.triangles {
            let corners = mesh.corners(t);
            let n = triangle_normal(corners);
            let l = norm(n);
            let n = if l > 0.0 { n.map(|x| x / l) } else { [0.0; 3] };
            let values = [n, corners[0], corners[1], corners[2]];
            for (i, x) in values.iter().flatten().enumerate() {
                rec[4 * i..4 * i + 4].copy_from_slice(&(*x as f32).to_le_bytes());
            }
            w.write_all(&rec).map_err(err)?;
        }
        Ok(())
    })
}
