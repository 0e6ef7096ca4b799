"""The server's store fingerprint hashes the resolved weight format and numerics (docs/prefix-store.md): default
arguments fingerprint like the explicit values they resolve to, and another weight format fingerprints apart."""

from inference.serve import parse_args, store_fingerprint


def fingerprint(checkpoint, *extra: str) -> str:
    return store_fingerprint(parse_args(["--checkpoint", str(checkpoint), "--device", "cpu", *extra]))


def test_default_weights_on_cpu_fingerprint_as_dequantized(tiny_checkpoint):
    default = fingerprint(tiny_checkpoint)
    assert default == fingerprint(tiny_checkpoint, "--weights", "dequantized")
    assert default != fingerprint(tiny_checkpoint, "--weights", "quantized")


def test_default_numerics_fingerprint_as_the_value_config_implies(tiny_checkpoint):
    default = fingerprint(tiny_checkpoint)
    assert {default} & {fingerprint(tiny_checkpoint, "--reference-numerics", v) for v in ("on", "off")} == {default}
    assert fingerprint(tiny_checkpoint, "--reference-numerics", "on") != fingerprint(
        tiny_checkpoint, "--reference-numerics", "off")
