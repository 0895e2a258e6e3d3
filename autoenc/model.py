"""Model: a dense autoencoder built from a list of widths (the protocol's presets or any widths).

    encoder: D -> widths[0] -> ... -> widths[-1] -> latent      (the code E)
    decoder: latent -> widths[-1] -> ... -> widths[0] -> D      (sigmoid output, pixels in [0, 1])

"depth" counts dense layers on each side, the latent layer included, so depth = len(widths) + 1.

A penalty on the code E acts only when the code's scale reaches the reconstruction: batch norm in
the decoder undoes any scaling of E, so an L1 penalty there just shrinks the code. For such
studies the decoder can go without normalization (`decoder_norm="none"`) and its first layer can
use its weight columns at unit norm (`unit_code_columns`), so no code unit can shrink while its
outgoing weights grow (docs/recipe.md, "The L1 penalty").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .config import ACTIVATIONS as ACTIVATION_NAMES
from .config import PRESETS, check_engine
from .errors import ConfigError

# The layout of saved weights and checkpoints; files of another format are refused with what to do.
# 3: the decoder's own normalization and unit-norm code columns (ModelConfig.decoder_norm,
# unit_code_columns); 2: no bias in the dense layers in front of batch norm (1: with one).
FORMAT = "3"
ACTIVATIONS = {  # the names config.ACTIVATIONS allows
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "linear": nn.Identity,
}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model.

    input_dim: pixels per image (784 for 28x28); widths: hidden widths of the encoder, outermost
    first (the decoder mirrors them); latent: size L of the code; activation: hidden activation;
    activation defaults to SiLU (the recipe, docs/recipe.md; "relu" is the Keras-notebook choice);
    latent_activation: "linear" (default) or e.g. "relu" (the usual Keras-notebook choice);
    norm: normalization after each hidden dense layer ("batch", "layer" or "none"; a dense layer
    followed by batch norm has no bias, batch norm's shift takes its place); decoder_norm: the
    decoder's own normalization (None: `norm`; "none" lets the code's scale reach the output);
    unit_code_columns: the decoder's first dense layer uses each weight column (what one code unit
    writes) at unit L2 norm; init: weight initialization of the dense layers ("default": PyTorch's,
    "orthogonal", "kaiming": He normal, "glorot": Glorot uniform, Keras's default; biases start at
    0 for the last three).
    """

    input_dim: int = 784
    widths: tuple[int, ...] = PRESETS[3]
    latent: int = 30
    activation: str = "silu"
    latent_activation: str = "linear"
    norm: str = "batch"
    decoder_norm: str | None = None
    unit_code_columns: bool = False
    init: str = "orthogonal"

    def __post_init__(self) -> None:
        check_engine(self, "ModelConfig")
        self.widths = tuple(int(w) for w in self.widths)

    @property
    def decoder_normalization(self) -> str:
        """The normalization of the decoder's hidden layers: decoder_norm, else norm."""
        return self.norm if self.decoder_norm is None else self.decoder_norm

    @property
    def depth(self) -> int:
        """Dense layers on each side, the latent layer included."""
        return len(self.widths) + 1

    @classmethod
    def preset(cls, depth: int, latent: int, input_dim: int = 784, **kwargs) -> "ModelConfig":
        """The protocol's depth-3 or depth-5 preset with a latent size L."""
        if depth not in PRESETS:
            raise ConfigError(f"depth={depth} has no preset; choose 3 or 5, or give explicit widths")
        return cls(input_dim=input_dim, widths=PRESETS[depth], latent=latent, **kwargs)

    def to_dict(self) -> dict:
        """A JSON-ready dict (widths as a list)."""
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Rebuild from `to_dict` output; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"model config has unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**d)


def unit_columns(weight: torch.Tensor) -> torch.Tensor:
    """(..., out, in) weights with every column (over `out`: what one input unit writes) scaled to
    unit L2 norm; an all-zero column stays zero."""
    return weight / weight.norm(dim=-2, keepdim=True).clamp_min(1e-12)


class UnitColumnLinear(nn.Linear):
    """A dense layer that uses its weight with unit-norm columns: forward(x) = x @ unit_columns(W).T + b.
    `weight` holds the free W (what the optimizer and the L2 penalty see): scaling a column does not
    change the layer, so a code unit cannot hide its size in its outgoing weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, unit_columns(self.weight), self.bias)


def _block(n_in: int, n_out: int, norm: str, activation: str, unit: bool = False) -> list[nn.Module]:
    # No bias in front of batch norm: it subtracts every feature's batch mean, so such a bias has no
    # effect and no gradient (only rounding noise, which Adam would scale up to full steps)
    layers: list[nn.Module] = [(UnitColumnLinear if unit else nn.Linear)(n_in, n_out, bias=norm != "batch")]
    if norm == "batch":
        layers.append(nn.BatchNorm1d(n_out))
    elif norm == "layer":
        layers.append(nn.LayerNorm(n_out))
    layers.append(ACTIVATIONS[activation]())
    return layers


class DenseAutoencoder(nn.Module):
    """A dense autoencoder; `forward(x)` maps (N, D) pixels in [0, 1] to reconstructions in [0, 1]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        sizes = [c.input_dim, *c.widths]
        enc: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            enc += _block(a, b, c.norm, c.activation)
        enc += [nn.Linear(sizes[-1], c.latent), ACTIVATIONS[c.latent_activation]()]
        dec: list[nn.Module] = []
        back = [c.latent, *reversed(c.widths)]
        for i, (a, b) in enumerate(zip(back[:-1], back[1:])):
            dec += _block(a, b, c.decoder_normalization, c.activation, unit=c.unit_code_columns and i == 0)
        output = UnitColumnLinear if c.unit_code_columns and not c.widths else nn.Linear
        dec += [output(back[-1], c.input_dim), nn.Sigmoid()]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        if c.init != "default":
            for lin in self.dense_layers():
                if c.init == "orthogonal":
                    nn.init.orthogonal_(lin.weight)
                elif c.init == "glorot":
                    nn.init.xavier_uniform_(lin.weight)
                else:
                    nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) pixels in [0, 1] -> (N, L) code E."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, L) code -> (N, D) reconstruction with pixels in [0, 1]."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) images, pixels in [0, 1] -> (N, D) reconstructions in [0, 1] (not clipped: the sigmoid's)."""
        return self.decoder(self.encoder(x))

    def dense_layers(self) -> list[nn.Linear]:
        """Every dense layer, encoder then decoder (what the protocol's L2 penalty sums over; of a
        UnitColumnLinear its free weight)."""
        return [m for m in self.modules() if isinstance(m, nn.Linear)]

    def weight_sq_norm(self) -> torch.Tensor:
        """Sum over dense layers of the squared Frobenius norm of the weights (biases excluded)."""
        return sum(m.weight.pow(2).sum() for m in self.dense_layers())

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
