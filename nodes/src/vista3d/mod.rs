//! VISTA3D: the network (`net`), its weights, the class table and the automatic
//! segmentation node.

pub mod auto;
pub mod classes;
pub mod models;
pub mod net;
pub mod preprocess;
pub mod refine;
pub mod snap;
pub mod stream;
pub mod train;
pub mod weights;
pub mod window;
pub mod zeroshot;

pub use auto::Vista3dAuto;
pub use train::Vista3dTrain;
pub use zeroshot::Vista3dZeroshot;
