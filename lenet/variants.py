"""What to run: variants, optimizers, phases and benchmark cases.

A :class:`Variant` is one point on the execution axes (device, memory format,
precision, compile mode, scope). Its :attr:`Variant.id` (``cpu-channels_last-amp_bf16-compile``)
is the pytest id, the ``extra_info`` key, the report's row and the plot label alike.
The scope says what the compiler or a CUDA graph covers: ``module`` (the default, and
left out of the id, so ids of older runs are unchanged) wraps the model alone;
``step`` (``cpu-contiguous-fp32-compile-step``) covers forward, loss, backward, the
optimizer step and zero_grad in one compiled function or one captured CUDA graph.
Batch size and optimizer are separate axes of a :class:`Case`, because only
some phases use an optimizer.

Nothing here imports pytest: selection, validation and skip reasons are plain
functions that the suites and the tests both call.
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that need it, so that reading saved runs
# (lenet.analysis) never pays for importing torch.

DEVICES = ("cpu", "cuda")
MEMORY_FORMATS = ("contiguous", "channels_last")
PRECISIONS = ("fp32", "tf32", "amp_bf16", "amp_fp16")
# cuda_graph: eager kernels captured once in a CUDA graph and replayed (no compiler); step scope only.
COMPILE_MODES = ("eager", "compile", "compile_reduce_overhead", "compile_max_autotune", "cuda_graph")
SCOPES = ("module", "step")
OPTIMIZER_NAMES = ("sgd", "adam")
OPTIMIZER_IMPLS = ("default", "forloop", "foreach", "fused")

# torch.compile's ``mode`` argument for each compile axis value.
TORCH_COMPILE_MODE = {
    "compile": "default",
    "compile_reduce_overhead": "reduce-overhead",
    "compile_max_autotune": "max-autotune",
}


class SelectionError(ValueError):
    """A selection names something that does not exist; the message says what does."""


class Phase(str, enum.Enum):
    """One timed region of a training or inference loop."""

    FORWARD_INFERENCE = "forward_inference"  # under torch.inference_mode
    FORWARD_TRAIN = "forward_train"  # forward + loss, builds the autograd graph
    BACKWARD = "backward"  # loss.backward() alone; the graph is rebuilt untimed
    OPTIMIZER_STEP = "optimizer_step"  # optimizer.step() alone on fixed gradients
    TRAIN_STEP = "train_step"  # zero_grad, forward, loss, backward, step

    @property
    def uses_optimizer(self) -> bool:
        return self in (Phase.OPTIMIZER_STEP, Phase.TRAIN_STEP)

    @property
    def trains(self) -> bool:
        return self is not Phase.FORWARD_INFERENCE


PHASES = tuple(phase.value for phase in Phase)


@dataclass(frozen=True)
class Variant:
    """How LeNet is executed. Construct through :func:`parse_variant` to validate."""

    device: str = "cpu"
    memory_format: str = "contiguous"
    precision: str = "fp32"
    compile: str = "eager"
    scope: str = "module"

    @property
    def id(self) -> str:
        base = f"{self.device}-{self.memory_format}-{self.precision}-{self.compile}"
        return base if self.scope == "module" else f"{base}-{self.scope}"

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None when autocast is off."""
        import torch

        return {"amp_bf16": torch.bfloat16, "amp_fp16": torch.float16}.get(self.precision)

    @property
    def torch_compile_mode(self) -> str | None:
        return TORCH_COMPILE_MODE.get(self.compile)

    @property
    def is_compiled(self) -> bool:
        """Whether torch.compile builds any of it (a CUDA graph of eager kernels is not compiled)."""
        return self.compile not in ("eager", "cuda_graph")

    @property
    def is_captured(self) -> bool:
        """Whether the whole step is captured in a CUDA graph of eager kernels (no compiler)."""
        return self.compile == "cuda_graph"

    @property
    def step_scope(self) -> bool:
        return self.scope == "step"

    @property
    def torch_memory_format(self) -> torch.memory_format:
        import torch

        if self.memory_format == "channels_last":
            return torch.channels_last
        return torch.contiguous_format

    def fields(self) -> dict[str, str]:
        return {
            "device": self.device,
            "memory_format": self.memory_format,
            "precision": self.precision,
            "compile": self.compile,
            "scope": self.scope,
        }

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer and the implementation PyTorch should use for it.

    ``default`` lets PyTorch choose (foreach on CUDA, a for-loop on CPU).
    """

    name: str = "sgd"
    impl: str = "default"

    @property
    def id(self) -> str:
        return self.name if self.impl == "default" else f"{self.name}_{self.impl}"

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Case:
    """One benchmark: a phase of a variant at a batch size, with an optimizer if the phase steps."""

    phase: Phase
    variant: Variant
    batch_size: int
    optimizer: OptimizerSpec | None = None

    @property
    def id(self) -> str:
        """The pytest parameter id, ``cpu-contiguous-fp32-eager-sgd-b64`` (the test function names the phase)."""
        parts = [self.variant.id]
        if self.optimizer is not None:
            parts.append(self.optimizer.id)
        parts.append(f"b{self.batch_size}")
        return "-".join(parts)

    @property
    def name(self) -> str:
        """The case's one name, ``train_step-cpu-contiguous-fp32-eager-sgd-b64``: the phase, then the pytest id.

        The key of its instruction count, the folder of its trace and the ``case`` of every file about it;
        free of characters a shell or a glob would read specially.
        """
        return f"{self.phase.value}-{self.id}"

    def spec(self) -> dict[str, Any]:
        """The case as plain JSON values, the one way every file and child process writes it."""
        return {
            "phase": self.phase.value,
            "variant": self.variant.id,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer.id if self.optimizer is not None else None,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Case:
        """The case a :meth:`spec` names (the one place a case is parsed from text); SelectionError naming
        the bad value otherwise."""
        try:
            phase = Phase(spec["phase"])
        except (KeyError, ValueError, TypeError):
            names = ", ".join(p.value for p in Phase)
            raise SelectionError(f"case phase {spec.get('phase')!r} is not one of {names}") from None
        batch = spec.get("batch_size")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise SelectionError(f"case batch size {batch!r} is not a positive integer")
        optimizer = parse_optimizer(spec["optimizer"]) if spec.get("optimizer") is not None else None
        return cls(phase, parse_variant(str(spec.get("variant"))), batch, optimizer)


def nonsense_reason(variant: Variant) -> str | None:
    """Why a combination makes no sense anywhere (it is never generated), or None."""
    if variant.device == "cpu":
        if variant.precision == "tf32":
            return "tf32 is a CUDA math mode; on cpu use fp32 or amp_bf16"
        if variant.precision == "amp_fp16":
            return "amp_fp16 (with GradScaler) is measured on cuda only; on cpu use amp_bf16"
        if variant.compile == "compile_reduce_overhead":
            return "reduce-overhead mode replays CUDA graphs; on cpu use compile"
        if variant.compile == "cuda_graph":
            return "cuda_graph captures the step in a CUDA graph; on cpu use compile-step"
    return _scope_nonsense_reason(variant)


def _scope_nonsense_reason(variant: Variant) -> str | None:
    if variant.step_scope and variant.compile == "eager":
        return "an eager variant compiles nothing, so it has no step scope; use compile-step or drop the scope"
    if variant.compile == "cuda_graph" and not variant.step_scope:
        return "cuda_graph captures the whole step: name it with the step scope (cuda_graph-step)"
    if variant.step_scope and variant.precision == "amp_fp16":
        return "GradScaler's step reads an inf check on the CPU, which one compiled or captured step cannot hold"
    return None


def all_variants() -> list[Variant]:
    """Every sensible variant, in a stable order (device, memory format, precision, compile, scope)."""
    variants = [Variant(*axes) for axes in product(DEVICES, MEMORY_FORMATS, PRECISIONS, COMPILE_MODES, SCOPES)]
    return [v for v in variants if nonsense_reason(v) is None]


def all_optimizers() -> list[OptimizerSpec]:
    return [OptimizerSpec(name, impl) for name, impl in product(OPTIMIZER_NAMES, OPTIMIZER_IMPLS)]


def parse_variant(text: str) -> Variant:
    """``cpu-channels_last-amp_bf16-compile[-step]`` -> Variant, or SelectionError naming the legal values."""
    parts = text.strip().split("-")
    axes = (
        ("device", DEVICES),
        ("memory format", MEMORY_FORMATS),
        ("precision", PRECISIONS),
        ("compile", COMPILE_MODES),
        ("scope", SCOPES),
    )
    if len(parts) not in (len(axes) - 1, len(axes)):
        raise SelectionError(
            f"variant {text!r} must have 4 or 5 parts, device-memory_format-precision-compile[-scope], "
            f"e.g. 'cpu-channels_last-amp_bf16-compile' or 'cpu-contiguous-fp32-compile-step'"
        )
    for value, (axis, legal) in zip(parts, axes, strict=False):
        if value not in legal:
            raise SelectionError(f"variant {text!r}: unknown {axis} {value!r}; choose from {', '.join(legal)}")
    variant = Variant(*parts)
    reason = nonsense_reason(variant)
    if reason:
        raise SelectionError(f"variant {text!r} is not a valid combination: {reason}")
    return variant


def select_variants(patterns: Iterable[str]) -> list[Variant]:
    """Variants matching any of ``patterns``: exact ids or shell-style globs (``cpu-*-fp32-*``).

    A pattern that matches nothing is an error, so a typo never silently selects nothing.
    """
    universe = all_variants()
    chosen: list[Variant] = []
    for pattern in patterns:
        pattern = pattern.strip()
        if not pattern:
            continue
        if not any(ch in pattern for ch in "*?["):
            matches = [parse_variant(pattern)]
        else:
            matches = [v for v in universe if fnmatch.fnmatchcase(v.id, pattern)]
            if not matches:
                raise SelectionError(
                    f"variant pattern {pattern!r} matches no variant; ids look like "
                    f"'cpu-contiguous-fp32-eager' (device: {', '.join(DEVICES)}; memory format: "
                    f"{', '.join(MEMORY_FORMATS)}; precision: {', '.join(PRECISIONS)}; compile: "
                    f"{', '.join(COMPILE_MODES)}; scope, optional: {', '.join(SCOPES)})"
                )
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def parse_optimizer(text: str) -> OptimizerSpec:
    """``sgd``, ``adam_fused``, ... -> OptimizerSpec, or SelectionError naming the legal ids."""
    name, separator, impl = text.strip().partition("_")
    impl = impl if separator else "default"
    if name not in OPTIMIZER_NAMES or impl not in OPTIMIZER_IMPLS or (impl == "default" and separator):
        legal = ", ".join(spec.id for spec in all_optimizers())
        raise SelectionError(f"unknown optimizer {text!r}; choose from {legal}")
    return OptimizerSpec(name, impl)


def parse_phase(text: str) -> Phase:
    try:
        return Phase(text.strip())
    except ValueError:
        raise SelectionError(f"unknown phase {text!r}; choose from {', '.join(PHASES)}") from None


MAX_BATCH_SIZE = 65536  # LeNet's activations at this batch already take ~1.5 GB


def parse_batch_size(text: str | int) -> int:
    try:
        # int() also reads non-ASCII digits ("２"); a batch size is typed in ASCII.
        if isinstance(text, str) and not text.strip().isascii():
            raise ValueError(text)
        value = int(text)
    except (TypeError, ValueError):
        raise SelectionError(
            f"batch size {text!r} is not a whole number; give positive integers like 1,64,256"
        ) from None
    if value <= 0:
        raise SelectionError(f"batch size {value} must be a positive integer (e.g. 1, 64, 256)")
    if value > MAX_BATCH_SIZE:
        raise SelectionError(f"batch size {value} is larger than {MAX_BATCH_SIZE}; give at most {MAX_BATCH_SIZE}")
    return value


def split_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; empty items are dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


@dataclass(frozen=True)
class Selection:
    """What a run measures: the cross product of these, minus what a phase does not use."""

    variants: tuple[Variant, ...]
    batch_sizes: tuple[int, ...]
    phases: tuple[Phase, ...]
    optimizers: tuple[OptimizerSpec, ...]

    def cases(self, phase: Phase) -> list[Case]:
        """The cases of ``phase``; a step-scope variant only in the phases that step (the others are module-scope)."""
        if phase not in self.phases:
            return []
        optimizers: Sequence[OptimizerSpec | None] = self.optimizers if phase.uses_optimizer else (None,)
        return [
            Case(phase, variant, batch_size, optimizer)
            for variant in self.variants
            if phase.uses_optimizer or not variant.step_scope
            for batch_size in self.batch_sizes
            for optimizer in optimizers
        ]


@dataclass(frozen=True)
class Preset:
    """A named selection (comma-separated text, exactly as a user would type the options)."""

    description: str
    variants: str
    batch_sizes: str
    phases: str = ",".join(PHASES)  # every phase unless a preset narrows them
    optimizers: str = "sgd"


_CUDA_VARIANTS = (
    "cuda-contiguous-fp32-eager,cuda-channels_last-fp32-eager,cuda-contiguous-tf32-eager,"
    "cuda-contiguous-amp_fp16-eager,cuda-contiguous-amp_bf16-eager,cuda-channels_last-amp_fp16-eager,"
    "cuda-contiguous-fp32-compile,cuda-contiguous-fp32-compile_reduce_overhead,"
    "cuda-contiguous-amp_fp16-compile_reduce_overhead,"
    "cuda-contiguous-fp32-compile-step,cuda-contiguous-fp32-compile_reduce_overhead-step,"
    "cuda-contiguous-fp32-cuda_graph-step"
)

PRESETS: dict[str, Preset] = {
    "quick": Preset(
        description="a first look a 2-core CPU can afford: 4 CPU variants (+ CUDA when present), batch 64",
        variants=(
            "cpu-contiguous-fp32-eager,cpu-channels_last-fp32-eager,cpu-contiguous-amp_bf16-eager,"
            "cpu-contiguous-fp32-compile,cuda-contiguous-fp32-eager,cuda-contiguous-amp_fp16-eager,"
            "cuda-contiguous-fp32-compile"
        ),
        batch_sizes="64",
    ),
    "full": Preset(
        description="every sensible variant, batch sizes 1/16/64/256, SGD and Adam (default and fused)",
        variants="*",
        batch_sizes="1,16,64,256",
        optimizers="sgd,sgd_fused,adam,adam_fused",
    ),
    "cuda": Preset(
        description=(
            "the CUDA variants the GPU script measures: eager, channels_last, TF32, AMP, compile, "
            "and the whole step compiled or captured"
        ),
        variants=_CUDA_VARIANTS,
        batch_sizes="64,1024",
        optimizers="sgd,adam_fused",
    ),
    "smoke": Preset(
        description="one eager CPU variant at batch 2, every phase: proves the suites run (used by tests)",
        variants="cpu-contiguous-fp32-eager",
        batch_sizes="2",
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name.strip()]  # an empty name is unknown too: never a silent default
    except KeyError:
        raise SelectionError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None


def build_selection(
    preset: str = "quick",
    variants: str | None = None,
    batch_sizes: str | None = None,
    phases: str | None = None,
    optimizers: str | None = None,
) -> Selection:
    """A preset, with any of its four lists replaced by what the user gave explicitly."""
    base = get_preset(preset)
    variant_list = select_variants(split_list(variants if variants is not None else base.variants))
    batch_list = [parse_batch_size(b) for b in split_list(batch_sizes if batch_sizes is not None else base.batch_sizes)]
    phase_list = [parse_phase(p) for p in split_list(phases if phases is not None else base.phases)]
    optimizer_list = [parse_optimizer(o) for o in split_list(optimizers if optimizers is not None else base.optimizers)]
    for label, items in (("variant", variant_list), ("batch size", batch_list), ("phase", phase_list)):
        if not items:
            raise SelectionError(f"the selection has no {label}; give at least one")
    if not optimizer_list and any(p.uses_optimizer for p in phase_list):
        raise SelectionError("the optimizer_step and train_step phases need at least one optimizer, e.g. sgd")
    return Selection(
        variants=tuple(variant_list),
        batch_sizes=tuple(dict.fromkeys(batch_list)),
        phases=tuple(dict.fromkeys(phase_list)),
        optimizers=tuple(dict.fromkeys(optimizer_list)),
    )


# --- skip reasons: what cannot run on *this* machine --------------------------------------


@functools.cache
def cuda_unavailable_reason() -> str | None:
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"CUDA not available: this torch {torch.__version__} is a CPU-only build"
    return "CUDA not available: no GPU visible to torch (check the driver and CUDA_VISIBLE_DEVICES)"


@functools.cache
def compiler_unavailable_reason(device: str) -> str | None:
    import torch  # noqa: F401  (torch.utils._triton below needs torch imported)

    if device == "cpu":
        if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
            return "torch.compile on cpu needs a C++ compiler (g++ or clang++) on PATH"
        return None
    try:
        from torch.utils._triton import has_triton
    except ImportError:
        return "torch.compile on cuda needs Triton, which this torch cannot import"
    if not has_triton():
        return "torch.compile on cuda needs Triton, which is not installed"
    return None


@functools.cache
def _bf16_unsupported_reason() -> str | None:
    import torch

    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return f"{torch.cuda.get_device_name()} has no native bf16 support"
    return None


@functools.cache
def _optimizer_unsupported_reason(spec: OptimizerSpec, device: str) -> str | None:
    if spec.impl in ("default", "forloop"):
        return None
    import torch

    params = [torch.zeros(2, device=device, requires_grad=True)]
    params[0].grad = torch.zeros(2, device=device)
    cls = torch.optim.SGD if spec.name == "sgd" else torch.optim.Adam
    kwargs = {"fused": True} if spec.impl == "fused" else {"foreach": True}
    try:
        cls(params, lr=0.01, **kwargs).step()
    except (RuntimeError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"{spec.id} is not supported on {device} by torch {torch.__version__}: {first_line}"
    return None


def skip_reason(case: Case) -> str | None:
    """Why this case cannot run on this machine (a sentence a user understands), or None."""
    variant = case.variant
    if variant.device == "cuda":
        reason = cuda_unavailable_reason()
        if reason:
            return reason
        if variant.precision == "amp_bf16":
            reason = _bf16_unsupported_reason()
            if reason:
                return reason
    if variant.is_compiled:
        reason = compiler_unavailable_reason(variant.device)
        if reason:
            return reason
    if case.optimizer is not None:
        return _optimizer_unsupported_reason(case.optimizer, variant.device) or step_scope_unsupported_reason(
            variant, case.optimizer
        )
    return None


def step_scope_unsupported_reason(variant: Variant, optimizer: OptimizerSpec | None) -> str | None:
    """Why this torch cannot build the step scope of ``variant`` with ``optimizer`` here, or None."""
    if not variant.step_scope or optimizer is None:
        return None
    if variant.device == "cpu" and optimizer.id == "adam_foreach":
        return (
            "adam_foreach takes a tensor LR only with capturable=True, which torch allows on CUDA only; "
            "on cpu use adam or adam_fused at the step scope"
        )
    return None
