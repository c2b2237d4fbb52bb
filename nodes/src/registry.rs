//! The [`Registry`]: every node kind by name.

use crate::node::Node;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Node kinds by name. [`Registry::builtin`] has every node of this crate.
#[derive(Clone, Default)]
pub struct Registry {
    nodes: BTreeMap<&'static str, Arc<dyn Node>>,
}

impl Registry {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every node this crate provides.
    pub fn builtin() -> Self {
        let mut r = Registry::empty();
        r.register(Arc::new(crate::io::LoadNifti));
        r.register(Arc::new(crate::io::SaveNifti));
        r.register(Arc::new(crate::io::dicom::LoadDicom));
        r.register(Arc::new(crate::io::nrrd::LoadNrrd));
        r.register(Arc::new(crate::io::nrrd::SaveNrrd));
        r.register(Arc::new(crate::io::rtstruct::LoadRtstruct));
        r.register(Arc::new(crate::io::seg::LoadDicomSeg));
        r.register(Arc::new(crate::spatial::Resample));
        r.register(Arc::new(crate::spatial::CropForeground));
        r.register(Arc::new(crate::vista3d::Vista3dAuto));
        r.register(Arc::new(crate::vista3d::refine::Vista3dRefine));
        r.register(Arc::new(crate::vista3d::Vista3dZeroshot));
        r.register(Arc::new(crate::vista3d::Vista3dTrain));
        r.register(Arc::new(crate::metrics::Metrics));
        r.register(Arc::new(crate::supervoxels::Supervoxels));
        r.register(Arc::new(crate::structures::Structures));
        r.register(Arc::new(crate::export::Export));
        r
    }

    /// Adds a kind, replacing any earlier one of the same name (so a program can override).
    pub fn register(&mut self, node: Arc<dyn Node>) {
        self.nodes.insert(node.spec().kind, node);
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Node>> {
        self.nodes.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.nodes.keys().copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Node>> {
        self.nodes.values()
    }
}

#[cfg(test)]
mod tests {
    use super::Registry;

    /// A string continued on the next source line without its trailing `\` keeps the next
    /// line's indentation: `vistaflow nodes` then shows gaps of 20 spaces.
    #[test]
    fn every_doc_reads_as_one_line_of_prose() {
        let mut texts = Vec::new();
        for node in Registry::builtin().iter() {
            let spec = node.spec();
            texts.push((spec.kind, "summary", spec.summary));
            for port in spec.inputs.iter().chain(&spec.outputs) {
                texts.push((spec.kind, port.name, port.doc));
            }
            for param in &spec.params {
                texts.push((spec.kind, param.name, param.doc));
            }
        }
        assert!(texts.len() > 100, "only {} docs found", texts.len());
        let bad: Vec<_> = texts
            .iter()
            .filter(|(_, _, doc)| doc.contains("   ") || doc.contains('\n') || doc.trim() != *doc)
            .collect();
        assert!(
            bad.is_empty(),
            "docs with a lost line continuation: {bad:#?}"
        );
    }
}
