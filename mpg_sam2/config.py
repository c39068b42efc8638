"""Model configuration: frozen dataclasses and the named presets.

Every width, head count and grid size used by the model code comes from here (or from the
SAM 2 YAML file named by :class:`SAM2Config`), so one code path serves the released
Hiera-L + BEiT-3-large checkpoints, the BEiT-3-base "tiny" variant and the small test
configurations.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "AggregatorConfig",
    "BEiT3Config",
    "MPGSAM2Config",
    "MaskPriorConfig",
    "MaskReadoutConfig",
    "PRESETS",
    "SAM2Config",
    "get_preset",
]


@dataclass(frozen=True)
class BEiT3Config:
    """The multiway BEiT-3 vision-language encoder (torchscale layout)."""

    embed_dim: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    ffn_dim: int = 4096
    vocab_size: int = 64010
    image_size: int = 224
    patch_size: int = 16
    # Rows of the text position table. torchscale starts both position tables at row 2
    # (fairseq's padding offset), so a caption may hold at most max_text_positions - 2 tokens.
    max_text_positions: int = 1024
    position_offset: int = 2
    layer_norm_eps: float = 1e-5
    # Not in BEiT-3: the widths of a convolutional stem whose output is added to the patch
    # projection (mpg_sam2.model.conv_stem): 3 x 3 stride-2 convolutions with these output widths,
    # then one more to embed_dim, log2(patch_size) in all, so each patch token also sees 31 px
    # around its cell through a non-linear path. Adds the weights beit3.vision_embed.stem.*.
    # Empty (every preset): BEiT-3's linear patch projection and its state-dict layout.
    conv_stem: tuple[int, ...] = ()

    @property
    def grid_size(self) -> int:
        """Patches per side of the BEiT-3 image (14 for 224 px and patch 16)."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def num_vision_tokens(self) -> int:
        """Class token plus patches (197)."""
        return self.num_patches + 1

    @property
    def max_text_tokens(self) -> int:
        return self.max_text_positions - self.position_offset


@dataclass(frozen=True)
class SAM2Config:
    """Which SAM 2.0 model to build from the ``sam2`` package's YAML files."""

    # One of "hiera_t", "hiera_s", "hiera_b+", "hiera_l": configs/sam2/sam2_<variant>.yaml.
    variant: str = "hiera_l"
    image_size: int = 1024
    # The authors' config keeps up to 16 object pointers in memory attention (SAM 2 default).
    max_obj_ptrs_in_encoder: int = 16
    # Hydra overrides applied to the YAML before building, e.g. a smaller trunk or width for
    # models trained from scratch ("model.image_encoder.trunk.embed_dim=32"). Empty for every
    # released configuration.
    overrides: tuple[str, ...] = ()

    @property
    def config_file(self) -> str:
        return f"configs/sam2/sam2_{self.variant}.yaml"


@dataclass(frozen=True)
class MaskPriorConfig:
    """The mask prior generator (paper §3.3); its width is the BEiT-3 width."""

    num_heads: int = 8
    ffn_dim: int = 4096
    # Queries per attention call over the T*196 video tokens. Bounds the working memory of
    # the space-time self-attention without changing any number.
    attention_query_chunk: int = 4096
    # False is the paper's "w/o MPG" ablation (Table 3): SAM 2 gets its learned "no mask"
    # dense prompt instead of the prior. The generator still runs, because its global
    # context feeds the aggregator.
    dense_prompt: bool = True
    # Not in the paper: on a frame with clicks, each click also sets a disk of this radius (in
    # cells of the prior's g x g grid) in that frame's prior, to 1 under a positive click and
    # to 0 under a negative one, later clicks over earlier ones. For models whose SAM 2 decoder
    # never learned points: one trained from random weights on captions alone (the bundled
    # model) ignores the point tokens, but follows its dense prompt. 0 (the release presets):
    # clicks are SAM 2's sparse points only, as in SAM 2.
    click_radius: float = 0.0
    # Not in the paper: patch motion measured by soft correspondence with the neighbouring
    # frames (mpg_sam2.model.patch_motion) is added to BEiT-3's patches before the space-time
    # layer, which has no frame order and so cannot see which way an object moves. Adds the
    # weights mask_prior_generator.correspondence_motion.*. False (the release presets): the
    # authors' generator and state-dict layout.
    motion_features: bool = False


@dataclass(frozen=True)
class MaskReadoutConfig:
    """How the output masks are read from SAM 2's decoder. Not in the paper: the defaults (every
    release preset) output the masks as SAM 2 gives them; both settings change the output only,
    never what SAM 2's memory holds, and are chosen per trained model on its validation split."""

    # A frame's mask is empty unless SAM 2's object-score logit exceeds this. SAM 2's own gate is
    # 0 (and still decides what its memory holds); a model whose object score is poorly
    # calibrated (the bundled one leaves a mask on many frames without the object) may need a
    # higher bar.
    object_score_threshold: float = 0.0
    # Each frame's mask keeps only its connected components whose mean mask prior is at least
    # this share of the best component's (mpg_sam2.pipeline.prior_components): for a SAM 2 that
    # paints every object its prior lights (the bundled model). On a clicked frame the parts are
    # judged by the prior as the clicks painted it (mask_prior.click_radius), or all kept when
    # the clicks do not paint it. 0: every component.
    component_prior_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.object_score_threshold < 0:
            raise ValueError(f"readout.object_score_threshold must be at least 0 (SAM 2's own gate), got {self.object_score_threshold}")
        if not 0.0 <= self.component_prior_ratio <= 1.0:
            raise ValueError(f"readout.component_prior_ratio must be in [0, 1] (0: off), got {self.component_prior_ratio}")


@dataclass(frozen=True)
class AggregatorConfig:
    """The hierarchical global-historical aggregator (paper §3.4); width is SAM 2's."""

    num_heads: int = 8
    ffn_dim: int = 1024
    # p_g: side of the square patches the global context is compressed with (pixel level).
    global_patch_size: int = 2
    # False is the paper's "w/o HGA" ablation (Table 3): the image embedding and the mask
    # tokens reach the two-way transformer as in plain SAM 2. The weights stay in the state
    # dict (unused), so every checkpoint layout loads either way.
    enabled: bool = True


@dataclass(frozen=True)
class MPGSAM2Config:
    """The whole model. ``prompt_dim`` must equal the SAM 2 width (checked at build time)."""

    beit3: BEiT3Config = field(default_factory=BEiT3Config)
    sam2: SAM2Config = field(default_factory=SAM2Config)
    mask_prior: MaskPriorConfig = field(default_factory=MaskPriorConfig)
    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    readout: MaskReadoutConfig = field(default_factory=MaskReadoutConfig)
    prompt_dim: int = 256
    # The authors set the tokenizer's pad token to <unk> (id 3); see tokenizer.py.
    pad_token_id: int = 3
    bos_token_id: int = 0
    eos_token_id: int = 2

    def with_mask_prior(self, **changes: Any) -> "MPGSAM2Config":
        """This configuration with those fields of ``mask_prior`` changed (e.g. ``click_radius``;
        see :class:`MaskPriorConfig`)."""
        return dataclasses.replace(self, mask_prior=dataclasses.replace(self.mask_prior, **changes))

    def with_readout(self, **changes: Any) -> "MPGSAM2Config":
        """This configuration with those fields of ``readout`` changed (see :class:`MaskReadoutConfig`)."""
        return dataclasses.replace(self, readout=dataclasses.replace(self.readout, **changes))

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": "mpg_sam2", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MPGSAM2Config":
        """Inverse of :meth:`to_dict`; unknown keys are an error so typos do not pass silently."""
        data = {k: v for k, v in data.items() if k != "model_type"}
        nested = {
            "beit3": BEiT3Config,
            "sam2": SAM2Config,
            "mask_prior": MaskPriorConfig,
            "aggregator": AggregatorConfig,
            "readout": MaskReadoutConfig,
        }
        kwargs: dict[str, Any] = {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MPG-SAM 2 config fields {unknown}; known fields: {sorted(known)}")
        for name, value in data.items():
            if name in nested:
                sub = nested[name]
                sub_known = {f.name for f in dataclasses.fields(sub)}
                bad = sorted(set(value) - sub_known)
                if bad:
                    raise ValueError(f"unknown fields {bad} in config section {name!r}; known: {sorted(sub_known)}")
                # JSON has no tuples: turn lists back into tuples so configs compare equal.
                kwargs[name] = sub(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            else:
                kwargs[name] = value
        return cls(**kwargs)


_BEIT3_LARGE = BEiT3Config()
_BEIT3_BASE = BEiT3Config(embed_dim=768, num_layers=12, num_heads=12, ffn_dim=3072)

_NANO_WIDTH = 128
_NANO_SAM2_OVERRIDES = (
    "model.image_encoder.trunk.embed_dim=32",
    "model.image_encoder.trunk.stages=[1,1,2,1]",
    "model.image_encoder.trunk.global_att_blocks=[3]",
    "model.image_encoder.neck.backbone_channel_list=[256,128,64,32]",
    f"model.image_encoder.neck.d_model={_NANO_WIDTH}",
    f"model.image_encoder.neck.position_encoding.num_pos_feats={_NANO_WIDTH}",
    "model.memory_attention.num_layers=2",
    f"model.memory_attention.d_model={_NANO_WIDTH}",
    f"model.memory_attention.layer.d_model={_NANO_WIDTH}",
    "model.memory_attention.layer.dim_feedforward=512",
    f"model.memory_attention.layer.self_attention.embedding_dim={_NANO_WIDTH}",
    f"model.memory_attention.layer.cross_attention.embedding_dim={_NANO_WIDTH}",
    f"+model.memory_encoder.in_dim={_NANO_WIDTH}",
    f"+model.memory_encoder.mask_downsampler.embed_dim={_NANO_WIDTH}",
    f"model.memory_encoder.fuser.layer.dim={_NANO_WIDTH}",
)

PRESETS: dict[str, MPGSAM2Config] = {
    # The released Ref-YouTube-VOS and MeViS checkpoints: SAM 2.0 Hiera-L + BEiT-3 large.
    "release-large": MPGSAM2Config(beit3=_BEIT3_LARGE, sam2=SAM2Config(variant="hiera_l")),
    # The authors' README describes a tiny checkpoint with BEiT-3 base (768-d); the mask
    # prior generator then works at 768 channels. Their code cannot build it; ours can.
    "release-tiny": MPGSAM2Config(beit3=_BEIT3_BASE, sam2=SAM2Config(variant="hiera_t")),
    # The reference-fixture configuration: Hiera-T, BEiT-3 large width with 2 layers and a
    # 1000-token vocabulary.
    "mini": MPGSAM2Config(
        beit3=dataclasses.replace(_BEIT3_LARGE, num_layers=2, vocab_size=1000),
        sam2=SAM2Config(variant="hiera_t"),
    ),
    # Small enough to train from scratch on two CPU cores and to ship (<= 25 MB): a 5-block,
    # 32-wide Hiera at 256 px, SAM 2's heads and memory at width 128 with 2 memory-attention
    # layers, and a 2-layer 128-wide BEiT-3 at 224 px (a 14x14 prior grid, divisible by the
    # aggregator's 2x2 patches) with a 128-row vocabulary for a sentencepiece tokenizer trained
    # on the synthetic benchmark's words (see mpg_sam2.training.tokenizer_training).
    "nano": MPGSAM2Config(
        beit3=BEiT3Config(
            embed_dim=128, num_layers=2, num_heads=4, ffn_dim=512, vocab_size=128, image_size=224, patch_size=16,
            max_text_positions=64,
        ),
        sam2=SAM2Config(variant="hiera_t", image_size=256, overrides=_NANO_SAM2_OVERRIDES),
        mask_prior=MaskPriorConfig(num_heads=4, ffn_dim=512),
        aggregator=AggregatorConfig(num_heads=8, ffn_dim=256),
        prompt_dim=_NANO_WIDTH,
    ),
}


def get_preset(name: str) -> MPGSAM2Config:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
