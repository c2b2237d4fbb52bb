//! Spatial nodes: `resample`, `crop_foreground`.
