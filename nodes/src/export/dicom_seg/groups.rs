//! The functional groups (shared: pixel measures, plane orientation; per frame: derivation
//! image, frame content, plane position, segment identification) and the dimension index.

use super::content::{Content, Frame};
use super::elements::{code_item, dcm, Ds, Obj};
use super::source::InstanceRef;
use dicom_core::value::PrimitiveValue;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;

/// voxel (i, j, k) -> LPS mm.
fn world(a: &[[f64; 4]; 4], ijk: [f64; 3]) -> [f64; 3] {
    let mut p = [0.0; 3];
    for (r, out) in p.iter_mut().enumerate() {
        *out = a[r][0] * ijk[0] + a[r][1] * ijk[1] + a[r][2] * ijk[2] + a[r][3];
    }
    p
}

fn column(a: &[[f64; 4]; 4], c: usize) -> ([f64; 3], f64) {
    let v = [a[0][c], a[1][c], a[2][c]];
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    (v, n)
}

/// The Shared Functional Groups Sequence item.
pub fn shared_groups(c: &Content) -> Obj {
    let (di, si) = column(&c.affine, 0);
    let (dj, sj) = column(&c.affine, 1);
    let (_, sk) = column(&c.affine, 2);
    let unit = |v: [f64; 3], n: f64| v.map(|x| if n > 0.0 { x / n } else { x });
    let (ui, uj) = (unit(di, si), unit(dj, sj));
    let mut measures = Ds::new();
    // PixelSpacing is (between rows, between columns) = (along j, along i).
    measures
        .ds(tags::PIXEL_SPACING, &[sj, si])
        .ds(tags::SLICE_THICKNESS, &[sk])
        .ds(tags::SPACING_BETWEEN_SLICES, &[sk]);
    let mut orientation = Ds::new();
    orientation.ds(
        tags::IMAGE_ORIENTATION_PATIENT,
        &[ui[0], ui[1], ui[2], uj[0], uj[1], uj[2]],
    );
    let mut d = Ds::new();
    d.seq(tags::PIXEL_MEASURES_SEQUENCE, vec![measures.done()])
        .seq(tags::PLANE_ORIENTATION_SEQUENCE, vec![orientation.done()]);
    if !c.per_frame_sources {
        // Resampled at load: every frame derives from the series' slices, none one to one.
        let sources = c
            .src
            .instances
            .iter()
            .map(|i| source_item(c, i, false))
            .collect();
        d.seq(tags::DERIVATION_IMAGE_SEQUENCE, derivation(sources));
    }
    d.done()
}

/// A Source Image Sequence item: `inst` of the source series, `preserved` saying whether the
/// frame lies on that image's grid (SpatialLocationsPreserved).
fn source_item(c: &Content, inst: &InstanceRef, preserved: bool) -> Obj {
    let mut source = Ds::new();
    source
        .s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &c.src.sop_class_uid)
        .s(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            &inst.sop_instance_uid,
        );
    if let Some(n) = inst.frame {
        source.s(tags::REFERENCED_FRAME_NUMBER, VR::IS, &n.to_string());
    }
    source
        .s(
            tags::SPATIAL_LOCATIONS_PRESERVED,
            VR::CS,
            if preserved { "YES" } else { "NO" },
        )
        .seq(
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![code_item(&dcm(
                "121322",
                "Source image for image processing operation",
            ))],
        );
    source.done()
}

/// A Derivation Image Sequence (one item: "Segmentation" from `sources`).
fn derivation(sources: Vec<Obj>) -> Vec<Obj> {
    let mut derivation = Ds::new();
    derivation
        .seq(
            tags::DERIVATION_CODE_SEQUENCE,
            vec![code_item(&dcm("113076", "Segmentation"))],
        )
        .seq(tags::SOURCE_IMAGE_SEQUENCE, sources);
    vec![derivation.done()]
}

/// The Per-Frame Functional Groups Sequence item of frame `f`.
pub fn frame_item(c: &Content, f: &Frame) -> Obj {
    let mut d = Ds::new();
    if c.per_frame_sources {
        // The frame is on the source slice's grid (check_grid made sure of that).
        let source = source_item(c, &c.src.instances[f.slice], true);
        d.seq(tags::DERIVATION_IMAGE_SEQUENCE, derivation(vec![source]));
    }
    let mut content = Ds::new();
    content.put(
        tags::DIMENSION_INDEX_VALUES,
        VR::UL,
        PrimitiveValue::U32([f.segment as u32, f.slice as u32 + 1].into_iter().collect()),
    );
    let mut position = Ds::new();
    position.ds(
        tags::IMAGE_POSITION_PATIENT,
        &world(&c.affine, [0.0, 0.0, f.slice as f64]),
    );
    let mut ident = Ds::new();
    ident.us(tags::REFERENCED_SEGMENT_NUMBER, f.segment);
    d.seq(tags::FRAME_CONTENT_SEQUENCE, vec![content.done()])
        .seq(tags::PLANE_POSITION_SEQUENCE, vec![position.done()])
        .seq(tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![ident.done()]);
    d.done()
}

/// DimensionOrganizationSequence and DimensionIndexSequence (segment number, then position).
pub fn dimensions(c: &Content, d: &mut Ds) {
    let mut org = Ds::new();
    org.s(
        tags::DIMENSION_ORGANIZATION_UID,
        VR::UI,
        &c.dimension_organization_uid,
    );
    let index = |pointer: Tag, group: Tag, label: &str| {
        let mut i = Ds::new();
        i.put(tags::DIMENSION_INDEX_POINTER, VR::AT, pointer)
            .put(tags::FUNCTIONAL_GROUP_POINTER, VR::AT, group)
            .s(
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                &c.dimension_organization_uid,
            )
            .s(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label);
        i.done()
    };
    d.seq(tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![org.done()])
        .seq(
            tags::DIMENSION_INDEX_SEQUENCE,
            vec![
                index(
                    tags::REFERENCED_SEGMENT_NUMBER,
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    "Segment Number",
                ),
                index(
                    tags::IMAGE_POSITION_PATIENT,
                    tags::PLANE_POSITION_SEQUENCE,
                    "Image Position Patient",
                ),
            ],
        );
}
