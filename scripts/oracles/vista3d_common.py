"""Shared by the VISTA3D oracles: the configurations (as config.json writes them) and MONAI's
VISTA3D built from one. `vista3d132` is MONAI's own builder for FULL; SMALL is the same
architecture with 16 features and blocks (1,2,1,1,1) (Rust: `Config::small()`)."""
from monai.networks.nets import SegResNetDS2
from monai.networks.nets.vista3d import VISTA3D, ClassMappingClassify, PointMappingSAM

_HEADS = {"n_classes": 512, "last_supported": 132, "max_prompt": 32, "mlp_dim": 512, "num_heads": 4, "depth": 2}
FULL = {"encoder_embed_dim": 48, "blocks_down": [1, 2, 2, 4, 4], **_HEADS}
SMALL = {"encoder_embed_dim": 16, "blocks_down": [1, 2, 1, 1, 1], **_HEADS}


def build(cfg):
    """MONAI's VISTA3D for a config dict, built in vista3d132's order (encoder, point head,
    class head), so a seeded build gives the same weights every time."""
    f = int(cfg["encoder_embed_dim"])
    encoder = SegResNetDS2(
        in_channels=1,
        blocks_down=tuple(cfg["blocks_down"]),
        norm="instance",
        out_channels=f,
        init_filters=f,
        dsdepth=1,
    )
    point_head = PointMappingSAM(
        feature_size=f,
        max_prompt=int(cfg.get("max_prompt", 32)),
        n_classes=int(cfg["n_classes"]),
        last_supported=int(cfg["last_supported"]),
    )
    class_head = ClassMappingClassify(n_classes=int(cfg["n_classes"]), feature_size=f, use_mlp=True)
    # PointMappingSAM hard-codes its transformer (depth 2, 4 heads, MLP 512): check the config agrees.
    tr = point_head.transformer
    for k, v in (("depth", tr.depth), ("num_heads", tr.num_heads), ("mlp_dim", tr.mlp_dim)):
        if k in cfg and int(cfg[k]) != v:
            raise SystemExit("vista3d config %s=%s, but MONAI's PointMappingSAM has %s" % (k, cfg[k], v))
    return VISTA3D(image_encoder=encoder, class_head=class_head, point_head=point_head)
