"""Keep less for the backward pass: recompute cheap tensors instead (Liger's SwiGLU/RMSNorm idea, in torch).

Why: in a gated MLP, ``down(act(gate(x)) * up(x))``, autograd keeps ``gate(x)`` for the activation's
backward and both ``act(gate(x))`` and ``up(x)`` for the product's: three tensors of the MLP's
width (1,536 for SmolLM2, 2.7x the hidden size) per token and layer, plus the product, which the
down projection's LoRA keeps as its input. ``act(gate(x))`` is cheap to recompute from ``gate(x)``, so
`GatedProduct` keeps only ``gate(x)`` and ``up(x)`` and recomputes the activation in the backward pass:
one MLP-width tensor less per token and layer (about 14% of SmolLM2's saved activations), for one
extra elementwise activation per layer in the backward pass. Forward values and gradients are the
very ops autograd runs, in the same order, so results are bitwise the same.

Two more tensors are kept only because a LoRA A matrix needs its input for its gradient: the product
``act(gate) * up`` (the down projection's input) and each RMSNorm's output (the q/k/v and gate/up
projections' input). Both are recomputable from tensors autograd keeps anyway (``gate``/``up``; the
norm's own input), so inside `recompute()` (a saved-tensors hook around the training forward) they are
kept as a recipe and rebuilt, once, when the backward pass reaches them: another 1,536 + 2 x 576
elements per token and layer for SmolLM2. Under autocast the projections would keep autocast's
low-precision copies of a norm output (one per projection), and PEFT's cast of a LoRA input to
the adapter's dtype, instead; `_CastOnce` makes those copies recipes too.

On a GPU with Liger installed, Liger's own kernels do this and more (tellkit does not replace them).
"""

from __future__ import annotations

import contextlib
import types
import weakref

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode


class GatedProduct(torch.autograd.Function):
    """act(gate) * up, keeping gate and up only."""

    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor, act) -> torch.Tensor:
        ctx.act = act
        ctx.save_for_backward(gate, up)
        return act(gate) * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate, up = ctx.saved_tensors
        with torch.enable_grad():
            g = gate.detach().requires_grad_(True)
            a = ctx.act(g)
        grad_up = grad * a.detach() if ctx.needs_input_grad[1] else None
        grad_gate = torch.autograd.grad(a, g, grad * up)[0] if ctx.needs_input_grad[0] else None
        return grad_gate, grad_up, None


class _Recipe:
    """How to rebuild a saved tensor (a view of a registered one); the base is rebuilt at most once."""

    def __init__(self, base: _Base, view: torch.Tensor):
        self.base, self.size, self.stride = base, view.shape, view.stride()
        self.offset = view.storage_offset()

    def get(self) -> torch.Tensor:
        return self.base.get().as_strided(self.size, self.stride, self.offset)


class _Base:
    def __init__(self, fn, args):
        self.fn, self.args, self.value = fn, args, None

    def get(self) -> torch.Tensor:
        if self.value is None:
            with torch.no_grad():
                self.value = self.fn(*self.args)
        return self.value


# storage address -> (weakref to the registered tensor, its _Base); set inside recompute() only
_recipes: dict[int, tuple] | None = None


def _register(tensor: torch.Tensor, fn, *args) -> None:
    if _recipes is not None and tensor.is_contiguous() and tensor.storage_offset() == 0:
        _recipes[tensor.untyped_storage().data_ptr()] = (weakref.ref(tensor), _Base(fn, args))


def _registered(tensor: torch.Tensor) -> _Base | None:
    """The recipe of `tensor` or of a view of it. Autograd keeps views (a linear layer keeps its 3-D input
    as a 2-D view), so the match is by storage, while the registered tensor is alive (then no other
    tensor can own that address)."""
    entry = _recipes.get(tensor.untyped_storage().data_ptr()) if _recipes is not None else None
    if entry is not None and (ref := entry[0]()) is not None and ref.dtype == tensor.dtype:
        return entry[1]
    return None


def _pack(tensor: torch.Tensor):
    base = _registered(tensor)
    return _Recipe(base, tensor) if base is not None else tensor


def _unpack(saved):
    return saved.get() if isinstance(saved, _Recipe) else saved


class _CastOnce(TorchFunctionMode):
    """Under autocast a linear layer keeps autocast's low-precision copy of its input, not the input
    itself, so a registered input would be missed: here the copy is made before the call, and
    registered as a recipe too (autocast then has nothing to cast: the same op on the same values)."""

    def __init__(self, device_type: str):
        super().__init__()
        self.device_type = device_type

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear and args and torch.is_autocast_enabled(self.device_type):
            x, dtype = args[0], torch.get_autocast_dtype(self.device_type)
            base = _registered(x) if x.dtype != dtype else None
            if base is not None:
                low = x.to(dtype)
                _register(low, _cast, base, dtype)
                args = (low, *args[1:])
        out = func(*args, **kwargs)
        if func is torch.Tensor.to and isinstance(out, torch.Tensor) and out is not args[0]:
            base = _registered(args[0])  # PEFT casts a LoRA input to the adapter's dtype first: follow it
            if base is not None and out.device == args[0].device:
                _register(out, _cast, base, out.dtype)
        return out


def _cast(base: _Base, dtype: torch.dtype) -> torch.Tensor:
    return base.get().to(dtype)


@contextlib.contextmanager
def recompute(device_type: str = "cpu", autocast: bool = False):
    """Around a training forward: registered tensors are kept as recipes (see the module docstring).
    `autocast`: the forward may run under autocast (accelerate enters it inside the model's forward)."""
    global _recipes
    _recipes = {}
    cast = _CastOnce(device_type) if autocast else contextlib.nullcontext()
    try:
        with torch.autograd.graph.saved_tensors_hooks(_pack, _unpack), cast:
            yield
    finally:
        _recipes = None


def _gated(act, gate, up):
    return act(gate) * up


def _lean_forward(self, x):
    gate, up = self.gate_proj(x), self.up_proj(x)
    if torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad):
        product = GatedProduct.apply(gate, up, self.act_fn)
        _register(product, _gated, self.act_fn, gate, up)
        return self.down_proj(product)
    return self.down_proj(self.act_fn(gate) * up)


def _lean_norm(self, x):
    out = type(self).forward(self, x)
    _register(out, type(self).forward, self, x)
    return out


def lean_activations(model: nn.Module) -> int:
    """Give every gated MLP of `model` (gate_proj / up_proj / down_proj / act_fn, as Llama, Qwen, Mistral
    and Gemma have) the lean forward, where a check on a small input gives the same output as its own
    forward, and let RMSNorm outputs be recomputed inside `recompute()`; returns how many MLPs were
    changed. Other modules keep their forward."""
    changed = 0
    for module in model.modules():
        if "forward" in vars(module):
            continue
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = types.MethodType(_lean_norm, module)
        elif all(hasattr(module, a) for a in ("gate_proj", "up_proj", "down_proj", "act_fn")) and _same_output(module):
            module.forward = types.MethodType(_lean_forward, module)
            changed += 1
    return changed


def _same_output(module: nn.Module) -> bool:
    """Does the lean forward compute what the module's own forward computes (a model whose MLP adds a
    bias term, a different gating or a scale must keep its own)?"""
    weight = module.gate_proj.weight if hasattr(module.gate_proj, "weight") else next(module.parameters())
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(2, 3, weight.shape[1], generator=gen).to(weight.device, weight.dtype)
    with torch.no_grad():
        return torch.allclose(module(x), _lean_forward(module, x), rtol=1e-4, atol=1e-5)
