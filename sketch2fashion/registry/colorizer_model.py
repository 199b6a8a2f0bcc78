"""The colorizer as an MLflow model: an exported (`torch.export`) generator behind a pyfunc wrapper.

The registry stores exactly what serving runs: `mlflow.pyfunc.load_model("models:/colorizer-top@champion")`
returns a model whose `predict` maps the generator input of models/inputs.py (float32
N x 9 x H x W: the sketch and its flat fill) to photos (float32 N x 3 x H x W in [-1, 1]).
Versions registered before the flat fill read 5 channels (their signature says so); callers
hand them the first 5 of the 9, the sketch itself (`fit_input`), so every version serves from
the same prepared input. Nothing trains or samples at
prediction time (eval mode: no dropout, BatchNorm running statistics), so a sketch always gives
the same photo.

At load time the wrapper reads keys from MLflow's `model_config`, overridable with
`load_model(uri, model_config={"dtype": "fp32"})` or `MLFLOW_PYFUNC_INFERENCE_CONFIG`:
`device` ("auto" = CUDA when present, else CPU), `dtype` ("auto" = bf16 where the hardware
computes it natively, else fp32; see models/device.py), `compile` ("off" by default; "auto" /
"on" = torch.compile at load for the `batch_sizes` listed, see registry/compiled.py: serving
turns it on, one-off scoring leaves it off because compiling takes tens of seconds).

Versions exported before torch.export (a frozen TorchScript `generator.pt`) still load and
serve, uncompiled: TorchScript cannot go through torch.compile.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import Schema, TensorSpec
from torch import nn

from sketch2fashion.imaging.flat_fill import prepare_drawing
from sketch2fashion.imaging.io import decode_rgb, encode_png
from sketch2fashion.registry.compiled import DEFAULT_BATCH_SIZES, compile_generator, wants_compile
from sketch2fashion.models.device import inference_autocast, pick_device, resolve_dtype
from sketch2fashion.models.inputs import to_generator_batch, to_images
from sketch2fashion.models.networks import GENERATOR_IN_CHANNELS, IMAGE_CHANNELS, count_parameters

log = logging.getLogger("sketch2fashion.registry")

GENERATOR_ARTIFACT = "generator"
CONFIG_ARTIFACT = "config"
GENERATOR_FILE = "generator.pt2"
LEGACY_TORCHSCRIPT_SUFFIX = ".pt"
CONFIG_FILE = "colorizer.json"
EXPORT_FORMAT = "torch-export"
DEFAULT_LOAD_CONFIG = {"device": "auto", "dtype": "auto", "compile": "off", "batch_sizes": list(DEFAULT_BATCH_SIZES)}
MAX_EXPORT_BATCH = 4096
# Inputs and weights are channels-last: measured on the 256 px U-Net (2 CPU cores), the frozen
# channels-last export ran fp32 in 53 ms vs 95 ms for NCHW, and bf16 in 36 ms vs 45 ms.
MEMORY_FORMAT = torch.channels_last


class Predictor(Protocol):
    """Anything with pyfunc's `predict(data)`: a loaded `mlflow.pyfunc.PyFuncModel`."""

    def predict(self, data: Any) -> Any: ...


def export_program(generator: nn.Module, example_input: torch.Tensor, path: str | Path) -> Path:
    """Export `generator` in eval mode with `torch.export` (any batch size) and save it at `path`.

    Why torch.export: the file loads with plain `torch.export.load` (no runtime beyond torch,
    none of our Python classes, so a later change to models/networks.py cannot change a
    registered model), and the loaded graph is an ordinary module that `torch.compile` can
    optimise for the serving machine (registry/compiled.py). TorchScript, the previous format,
    cannot be compiled, and torch 2.13 deprecates it.

    The batch dimension is exported dynamic (1..MAX_EXPORT_BATCH); height and width stay those
    of `example_input`, which is what the registry's signature promises. The generator is copied
    (the caller's module keeps its mode, device and layout); eval mode is captured in the graph
    (dropout off, BatchNorm on running statistics).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(generator).eval().to(device="cpu", dtype=torch.float32)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    example = example_input.detach().to(device="cpu", dtype=torch.float32)
    example = example.expand(2, *example.shape[1:]).clone()  # batch 1 would be specialised
    batch = torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


class ColorizerModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of the exported generator: N x 9 x H x W -> N x 3 x H x W float32."""

    def __init__(self) -> None:
        # Filled by load_context; the instance is pickled at logging time, so keep it empty here.
        self.module: Any = None
        self.runner: Any = None
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.config: dict[str, Any] = {}
        self.compiled: dict[str, Any] = {"compiled": False, "why": "not loaded"}

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        settings = {**DEFAULT_LOAD_CONFIG, **(context.model_config or {})}
        self.device = pick_device(str(settings["device"]))
        self.dtype = resolve_dtype(self.device, str(settings["dtype"]))
        self.config = json.loads(Path(context.artifacts[CONFIG_ARTIFACT]).read_text(encoding="utf-8"))
        if self.device.type == "cuda":
            # Repeat calls on one input must give the same photo (cuDNN may otherwise pick
            # non-deterministic algorithms; measured on an H100 at the same speed).
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        self.module = _load_generator(context.artifacts[GENERATOR_ARTIFACT], self.device)
        self.runner = _eager_runner(self.module, self.device, self.dtype)
        self.compile(str(settings["compile"]), settings["batch_sizes"])

    def compile(self, setting: str, batch_sizes: list[int]) -> dict[str, Any]:
        """Swap in the torch.compile'd runner when asked and possible; say why not otherwise.

        Also callable after loading with `compile: off`: serving probes the uncompiled model first,
        so a broken candidate is refused in the seconds a load takes, not after a compile that
        takes minutes on a slow CPU (serving/champions.py).
        """
        self.compiled = self._maybe_compile(setting, batch_sizes)
        return self.compiled

    def uncompile(self, why: str) -> None:
        """Back to the eager runner (a compiled graph that failed its probe)."""
        self.runner = _eager_runner(self.module, self.device, self.dtype)
        self.compiled = {"compiled": False, "why": why}

    def _maybe_compile(self, setting: str, batch_sizes: list[int]) -> dict[str, Any]:
        wanted, why = wants_compile(setting, self.device)
        if wanted and isinstance(self.module, torch.jit.ScriptModule):
            wanted, why = False, "a TorchScript export (registered before torch.export) cannot be compiled"
        if not wanted:
            return {"compiled": False, "why": why}
        size = int(self.config.get("image_size", 256))
        in_channels = int(self.config.get("in_channels", GENERATOR_IN_CHANNELS))
        example = torch.from_numpy(blank_sketch_input(size)[:, :in_channels]).to(self.device)
        runner, failure = compile_generator(self.module, device=self.device, dtype=self.dtype,
                                            example=example, batch_sizes=batch_sizes)
        if runner is None:
            if setting == "on":
                raise RuntimeError(f"torch.compile failed ({failure}) and compile is 'on'")
            log.warning("torch.compile failed (%s); serving the generator uncompiled", failure)
            return {"compiled": False, "why": f"compile failed: {failure}"}
        self.runner = runner
        return {"compiled": True, "batch_sizes": runner.batch_sizes,
                "compile_seconds": round(runner.compile_seconds, 1),
                "ms_per_call": {k: round(1000 * v, 2) for k, v in runner.costs.items()}}

    def predict(self, context: mlflow.pyfunc.PythonModelContext | None, model_input: np.ndarray,
                params: dict[str, Any] | None = None) -> np.ndarray:
        """Generator input (float32 N x 9 x H x W) -> photos (float32 N x 3 x H x W in [-1, 1])."""
        if self.runner is None:
            raise RuntimeError("ColorizerModel.predict called before load_context")
        batch = np.asarray(_single_array(model_input), dtype=np.float32)
        self._check_shape(batch.shape)
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, memory_format=MEMORY_FORMAT)
        return self.runner(x).float().clamp(-1.0, 1.0).contiguous().cpu().numpy()

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        """The exported graph lost the generator's own checks; fail here with a readable message."""
        in_channels = int(self.config.get("in_channels", GENERATOR_IN_CHANNELS))
        if len(shape) != 4 or shape[1] != in_channels:
            raise ValueError(f"colorizer expects float32 N x {in_channels} x H x W, got shape {shape}")
        if shape[0] < 1:
            raise ValueError("colorizer needs at least one image in the batch")
        size = self.config.get("image_size")
        if self.config.get("format") == EXPORT_FORMAT and size and (shape[2], shape[3]) != (size, size):
            raise ValueError(f"this colorizer was exported for {size}x{size} images, got {shape[2]}x{shape[3]}")
        step = 2 ** int(self.config.get("depth", 1))
        if shape[2] % step or shape[3] % step:
            raise ValueError(f"colorizer needs H and W divisible by {step}, got {shape[2]}x{shape[3]}")


def input_channels(model: Any) -> int:
    """How many input channels a loaded pyfunc colorizer takes, from its registered signature."""
    try:
        return int(model.metadata.get_input_schema().inputs[0].shape[1])
    except (AttributeError, IndexError, TypeError):
        return GENERATOR_IN_CHANNELS


def fit_input(model: Any, batch: np.ndarray) -> np.ndarray:
    """`batch` (N x 9 x H x W) as `model` reads it: all 9 channels, or the sketch's first 5 for a
    version registered before the flat fill."""
    channels = input_channels(model)
    return batch if channels >= batch.shape[1] else batch[:, :channels]


class PyfuncGenerator(nn.Module):
    """A loaded pyfunc colorizer behind the nn.Module interface the evaluator drives: scores the
    served artifact exactly as serving runs it."""

    def __init__(self, pyfunc_model: Predictor) -> None:
        super().__init__()
        self.pyfunc_model = pyfunc_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(np.asarray(self.pyfunc_model.predict(fit_input(self.pyfunc_model, batch))))


def _load_generator(path: str, device: torch.device) -> Any:
    """The generator module from its artifact: torch.export (`.pt2`) or a legacy TorchScript `.pt`."""
    if path.endswith(LEGACY_TORCHSCRIPT_SUFFIX):
        with _quiet_torchscript():
            return torch.jit.load(path, map_location=device).eval()
    module = torch.export.load(path).module()
    return module.to(device=device, memory_format=MEMORY_FORMAT)


def _eager_runner(module: Any, device: torch.device, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """The uncompiled generator call: inference mode, in the resolved precision."""
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), inference_autocast(device, dtype):
            return module(x)

    return run


def _single_array(model_input: Any) -> Any:
    """The array itself, also when a caller wrapped it as {"name": array} or {"inputs": array}."""
    if isinstance(model_input, Mapping):
        if len(model_input) != 1:
            raise ValueError(f"colorizer expects one input tensor, got keys {sorted(model_input)}")
        return next(iter(model_input.values()))
    return model_input


def colorizer_signature(image_size: int, in_channels: int = GENERATOR_IN_CHANNELS,
                        out_channels: int = IMAGE_CHANNELS) -> ModelSignature:
    """Tensor signature: float32 (-1, 5, H, W) in, float32 (-1, 3, H, W) out.

    The tensors stay unnamed: with a named input, MLflow hands `predict` a {name: array} dict
    for REST requests but a bare array for in-process calls.
    """
    float32 = np.dtype(np.float32)
    return ModelSignature(
        inputs=Schema([TensorSpec(float32, (-1, in_channels, image_size, image_size))]),
        outputs=Schema([TensorSpec(float32, (-1, out_channels, image_size, image_size))]),
    )


def blank_sketch_input(image_size: int) -> np.ndarray:
    """A 1 x 9 x H x W generator input of empty paper without hints: a valid, cheap example."""
    size = (1, image_size, image_size)
    blank = to_generator_batch(np.full(size, 255, np.uint8), np.zeros((*size, 3), np.uint8), np.zeros(size, np.uint8),
                               np.zeros((*size, 3), np.uint8), np.zeros(size, np.uint8))
    return blank.numpy()


def log_colorizer(
    generator: nn.Module,
    *,
    category: str,
    image_size: int,
    artifact_path: str = "model",
    extra_artifacts: Mapping[str, str | Path] | None = None,
    model_config: Mapping[str, Any] | None = None,
    step: int = 0,
) -> ModelInfo:
    """Log `generator` as a pyfunc colorizer model into the active MLflow run.

    `model_config` is params.yaml's `model:` section, stored in the model's config JSON with
    the category and image size. `step` (the epoch) matters when a run logs several models
    under one name: `runs:/<run>/<name>` then resolves to the highest step. Requirements are
    pinned to torch and numpy explicitly so logging never infers them (no network, no subprocess).
    """
    if mlflow.active_run() is None:
        raise RuntimeError("log_colorizer needs an active MLflow run: call it inside mlflow.start_run()")
    reserved = {GENERATOR_ARTIFACT, CONFIG_ARTIFACT} & set(extra_artifacts or {})
    if reserved:
        raise ValueError(f"extra_artifacts may not use the reserved name(s) {sorted(reserved)}")
    config_in = int(getattr(generator, "in_channels", GENERATOR_IN_CHANNELS))
    example = blank_sketch_input(image_size)[:, :config_in]
    config = _model_config_json(generator, category, image_size, model_config)
    with tempfile.TemporaryDirectory(prefix="s2f-colorizer-") as tmp:
        generator_file = export_program(generator, torch.from_numpy(example), Path(tmp) / GENERATOR_FILE)
        config_file = Path(tmp) / CONFIG_FILE
        config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        artifacts = {GENERATOR_ARTIFACT: str(generator_file), CONFIG_ARTIFACT: str(config_file),
                     **{name: str(p) for name, p in (extra_artifacts or {}).items()}}
        return mlflow.pyfunc.log_model(
            name=artifact_path,
            python_model=ColorizerModel(),
            artifacts=artifacts,
            signature=colorizer_signature(image_size, config["in_channels"], config["out_channels"]),
            input_example=example,
            pip_requirements=_pip_requirements(),
            model_config=dict(DEFAULT_LOAD_CONFIG),
            metadata={"category": category, "image_size": image_size, "format": EXPORT_FORMAT},
            tags={"category": category},
            step=step,
        )


def colorize_png(model: Predictor, sketch_png_bytes: bytes, size: int) -> bytes:
    """A drawing (PNG/JPEG bytes: black lines, coloured hints) -> the generated photo as PNG bytes.

    Prepared exactly as the service does (imaging.flat_fill.prepare_drawing).
    """
    prepared = prepare_drawing(decode_rgb(sketch_png_bytes), size)
    batch = to_generator_batch(prepared.edges[None], prepared.hints.rgb[None], prepared.hints.mask[None],
                               prepared.fill.rgb[None], prepared.fill.weight[None])
    photos = np.asarray(model.predict(fit_input(model, batch.numpy())), dtype=np.float32)
    return encode_png(to_images(torch.from_numpy(photos))[0])


def _model_config_json(generator: nn.Module, category: str, image_size: int,
                       model_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a reader of the registry needs to know about this generator, without loading it."""
    return {
        "category": category,
        "image_size": int(image_size),
        "format": EXPORT_FORMAT,
        "in_channels": int(getattr(generator, "in_channels", GENERATOR_IN_CHANNELS)),
        "out_channels": int(getattr(generator, "out_channels", IMAGE_CHANNELS)),
        "depth": int(getattr(generator, "depth", 1)),
        "parameters": count_parameters(generator, trainable_only=False),
        "model": dict(model_config or {}),
        "torch": torch.__version__,
    }


def _pip_requirements() -> list[str]:
    """torch and numpy at the versions that exported the model (local tags such as +cpu dropped)."""
    return [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"]


@contextlib.contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """Silence torch.jit's deprecation and tracer notices, which say nothing about our model."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


class ChampionColorizers:
    """Each category's registered champion, loaded on first use: (category, edges, hints) -> the
    generated photo (uint8 RGB), the drawing prepared as the service prepares it. What the search
    evaluation and the weight tuning put beside a simulated shopper's sketch."""

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}

    def __call__(self, category: str, edges: np.ndarray, hints: Any) -> np.ndarray:
        from sketch2fashion.imaging.flat_fill import prepare_fill
        from sketch2fashion.registry.promotion import registered_model_name

        if category not in self._models:
            uri = f"models:/{registered_model_name(category)}@champion"
            try:
                self._models[category] = mlflow.pyfunc.load_model(uri)
            except Exception as exc:  # noqa: BLE001 - MLflow raises several types for "not there"
                raise FileNotFoundError(f"{uri}: no champion colorizer ({exc}); run `dvc repro promote@{category}`") from exc
        prepared = prepare_fill(edges, hints)
        batch = to_generator_batch(prepared.edges[None], prepared.hints.rgb[None], prepared.hints.mask[None],
                                   prepared.fill.rgb[None], prepared.fill.weight[None]).numpy()
        model = self._models[category]
        return to_images(torch.from_numpy(model.predict(fit_input(model, batch))))[0]
