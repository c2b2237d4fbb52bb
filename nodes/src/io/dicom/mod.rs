//! DICOM series loading (`load_dicom`).
