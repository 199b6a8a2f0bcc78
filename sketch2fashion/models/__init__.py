"""Model building blocks shared by training and serving: networks, tensor I/O, device policy."""
from sketch2fashion.models.device import (
    bf16_supported,
    inference_autocast,
    inference_memory_format,
    pick_device,
    prepare_for_inference,
    resolve_dtype,
)
from sketch2fashion.models.inputs import (
    to_generator_batch,
    to_generator_input,
    to_image,
    to_images,
    to_target,
)
from sketch2fashion.models.networks import (
    PatchDiscriminator,
    UNetGenerator,
    build_discriminator,
    build_generator,
    count_parameters,
    init_weights,
    max_depth_for,
)

__all__ = [
    "PatchDiscriminator",
    "UNetGenerator",
    "bf16_supported",
    "build_discriminator",
    "build_generator",
    "count_parameters",
    "inference_autocast",
    "inference_memory_format",
    "init_weights",
    "max_depth_for",
    "pick_device",
    "prepare_for_inference",
    "resolve_dtype",
    "to_generator_batch",
    "to_generator_input",
    "to_image",
    "to_images",
    "to_target",
]
