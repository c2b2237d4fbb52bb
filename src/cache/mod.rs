//! The content-addressed store (see cache/README in design.md).
