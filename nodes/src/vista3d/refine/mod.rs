//! `vista3d_refine`: click-based refinement (work in progress).
