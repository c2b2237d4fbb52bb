//! NRRD reading and writing (`load_nrrd`, `save_nrrd`).
