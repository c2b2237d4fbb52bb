//! The VISTA3D network (MONAI's `VISTA3D` with `vista3d132`'s parts), in tch. Variable paths
//! are MONAI's state-dict keys, so the published weights load with no renaming. Inference
//! policy (windows, blending, post-processing) lives outside, in `vista3d::infer`.

mod class_head;
mod config;
mod layers;
mod point_head;
mod segresnet;
mod transformer;

pub use class_head::ClassHead;
pub use config::Config;
pub use point_head::PointHead;
pub use segresnet::{Branches, ImageEncoder};

use tch::{nn, Device, Tensor};

/// The whole network: encoder with both decoders, class head, point head.
#[derive(Debug)]
pub struct Vista3d {
    pub config: Config,
    pub vs: nn::VarStore,
    pub image_encoder: ImageEncoder,
    pub class_head: ClassHead,
    pub point_head: PointHead,
}

// SAFETY: tch's `Tensor` is not `Sync` because a shared reference could reach an in-place op.
// A loaded network's variables are only read by `forward` (weights are filled and converted
// before the network is shared, see `models::shared`), and libtorch's read-only ops and
// refcounts are thread-safe; this is the same contract as `Volume`'s.
unsafe impl Sync for Vista3d {}

impl Vista3d {
    /// The network with every variable zero: fill it with `weights::load_into`.
    pub fn zeros(config: &Config, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let image_encoder = ImageEncoder::new(&root / "image_encoder", config);
        let class_head = ClassHead::new(&root / "class_head", config);
        let point_head = PointHead::new(&root / "point_head", config);
        Vista3d {
            config: config.clone(),
            vs,
            image_encoder,
            class_head,
            point_head,
        }
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// MONAI's `forward(image, class_vector=ids)`: logits [N, B, H, W, D] for class ids [N].
    pub fn class_logits(&self, image: &Tensor, ids: &Tensor) -> Tensor {
        let (_, dec) = self.image_encoder.forward(
            image,
            Branches {
                point: false,
                class: true,
            },
        );
        self.class_head
            .forward(&dec.expect("class branch asked for"), ids)
    }

    /// The point head on one patch: logits [B, 1, H, W, D] for B objects' clicks.
    pub fn point_logits(
        &self,
        image: &Tensor,
        coords: &Tensor,
        labels: &Tensor,
        class_ids: Option<&Tensor>,
    ) -> Tensor {
        self.point_head
            .forward(&self.point_decoded(image), coords, labels, class_ids)
    }

    /// The image encoder's point branch for one patch.
    fn point_decoded(&self, image: &Tensor) -> Tensor {
        let (dec, _) = self.image_encoder.forward(
            image,
            Branches {
                point: true,
                class: false,
            },
        );
        dec.expect("point branch asked for")
    }

    /// What clicks in one patch share (and what `vista3d_refine` keeps between runs): the
    /// image encoder's point branch, downsampled by the point head to half resolution.
    pub fn point_features(&self, image: &Tensor) -> Tensor {
        self.point_head.downsample(&self.point_decoded(image))
    }

    /// The point head on features from [`Vista3d::point_features`] of a patch of `size`.
    pub fn point_logits_from(
        &self,
        features: &Tensor,
        size: [i64; 3],
        coords: &Tensor,
        labels: &Tensor,
        class_ids: Option<&Tensor>,
    ) -> Tensor {
        self.point_head
            .forward_low(features, size, coords, labels, class_ids)
    }
}
