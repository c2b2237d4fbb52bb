//! `supervoxels`: 3D SLIC on CT (work in progress).
