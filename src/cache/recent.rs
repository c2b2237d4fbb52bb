//! Values this process read from or wrote to the store lately, kept in memory. Opt-in
//! ([`Store::keep_recent`]), for `vistaflow serve`: every click reads the same image and
//! writes a label map that the server then reads back, and each read is a file plus its
//! sha256. Entries are content-addressed, so a kept value stays that entry's value. Values
//! go in and out as copies: a node that changed its input in place cannot change what the
//! next run gets.

use crate::hash::Digest;
use std::collections::VecDeque;
use std::sync::Mutex;
use tch::Tensor;
use vistaflow_nodes::Encoded;
use vistaflow_nodes::{PortType, Value};

pub struct Recent {
    limit: u64,
    /// Least recently used first.
    entries: Mutex<VecDeque<Kept>>,
}

struct Kept {
    id: Digest,
    ty: PortType,
    tensors: Vec<(String, Tensor)>,
    meta: serde_json::Value,
    bytes: u64,
}

fn copies(tensors: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    tensors.iter().map(|(n, t)| (n.clone(), t.copy())).collect()
}

impl Recent {
    /// Keeps up to `limit` bytes of tensors; the least recently used go first.
    pub fn new(limit: u64) -> Recent {
        Recent {
            limit,
            entries: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Kept>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of entry `id` when it is kept as a `ty`.
    pub fn get(&self, id: &Digest, ty: PortType) -> Option<Value> {
        let (tensors, meta) = {
            let mut g = self.lock();
            let at = g.iter().position(|k| k.id == *id && k.ty == ty)?;
            let k = g.remove(at)?;
            let got = (copies(&k.tensors), k.meta.clone());
            g.push_back(k);
            got
        };
        Value::decode(ty, Encoded { tensors, meta }).ok()
    }

    /// Keeps a copy of `value` as entry `id` (a value larger than the limit is not kept).
    pub fn put(&self, id: &Digest, value: &Value) {
        let Encoded { tensors, meta } = value.encode();
        let bytes: u64 = tensors
            .iter()
            .map(|(_, t)| (t.numel() * t.kind().elt_size_in_bytes()) as u64)
            .sum();
        if bytes > self.limit {
            return;
        }
        let kept = Kept {
            id: *id,
            ty: value.port_type(),
            tensors: copies(&tensors),
            meta,
            bytes,
        };
        let mut g = self.lock();
        g.retain(|k| k.id != *id);
        g.push_back(kept);
        let mut total: u64 = g.iter().map(|k| k.bytes).sum();
        while total > self.limit {
            match g.pop_front() {
                Some(k) => total -= k.bytes,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vistaflow_nodes::{Geometry, Volume};

    fn image(v: f64) -> Value {
        let t = Tensor::full([2, 3, 4], v, (tch::Kind::Float, tch::Device::Cpu));
        Value::Image(Volume::new(t, Geometry::axis_aligned([1.0; 3], [0.0; 3])).unwrap())
    }

    fn first(v: &Value) -> f64 {
        match v {
            Value::Image(i) => i.data().double_value(&[0, 0, 0]),
            _ => panic!("not an image"),
        }
    }

    #[test]
    fn kept_values_come_back_as_copies_and_the_least_used_go_first() {
        // 96 bytes per image: room for two.
        let r = Recent::new(200);
        let (a, b, c) = (Digest([1; 32]), Digest([2; 32]), Digest([3; 32]));
        r.put(&a, &image(1.0));
        let got = r.get(&a, PortType::Image).unwrap();
        assert_eq!(first(&got), 1.0);
        // Changing what was handed out in place changes nothing kept.
        if let Value::Image(i) = &got {
            let _ = i.data().shallow_clone().fill_(9.0);
        }
        assert_eq!(first(&r.get(&a, PortType::Image).unwrap()), 1.0);
        assert!(r.get(&a, PortType::Labels).is_none(), "kept as an image");
        r.put(&b, &image(2.0));
        // Reading a makes b the least recently used: c pushes b out.
        assert!(r.get(&a, PortType::Image).is_some());
        r.put(&c, &image(3.0));
        assert!(r.get(&b, PortType::Image).is_none(), "the least used went");
        assert_eq!(first(&r.get(&a, PortType::Image).unwrap()), 1.0);
        assert_eq!(first(&r.get(&c, PortType::Image).unwrap()), 3.0);
    }
}
