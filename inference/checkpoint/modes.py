"""How weights are held and where (docs/quantized-weights.md): `--weights quantized|dequantized` and `--device`,
shared by the tools, the server and the benches. Imports torch only when asked for a device."""

WEIGHT_MODES = ("quantized", "dequantized")


def resolve_device(device: str | None) -> str:
    """`auto` (or None): cuda when a GPU is visible, else cpu."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def default_weights(device) -> str:
    """`quantized` on CUDA; `dequantized` on CPU, where dequantizing every forward would cost more than it saves."""
    return "quantized" if str(device).startswith("cuda") else "dequantized"


def add_weights_args(parser) -> None:
    """`--weights quantized|dequantized` and `--device auto|cpu|cuda[:N]` for the tools, the server and benches."""
    parser.add_argument("--weights", choices=WEIGHT_MODES, default=None,
                        help="keep FP8/FP4 weights as released (quantized) or fold them into --dtype at load "
                             "(dequantized); default: quantized on CUDA, dequantized on CPU")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda[:N]")
