//! VISTA3D: the network (`net`), its weights, the class table and the automatic
//! segmentation node.

pub mod net;
pub mod weights;
pub mod classes;
pub mod stream;
pub mod window;
mod auto;
pub mod models;
pub mod preprocess;

pub use auto::Vista3dAuto;
