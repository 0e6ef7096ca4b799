"""python -m inference.devcheckpoint --out DIR [--preset NAME] [--config CONFIG.json] [--seed N] [--quantized]

Writes a random-weight checkpoint in the official release layout: config.json, sharded safetensors with
official tensor names + model.safetensors.index.json, and the real V4 tokenizer files when vocab is 129280."""

import argparse
import json
from pathlib import Path

from inference.checkpoint.dev import write_checkpoint
from inference.checkpoint.presets import PRESETS, preset_config
from inference.errors import InferenceModelError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="model shape (default tiny: the tests')")
    p.add_argument("--config", help="any V4 config.json (overrides --preset)")
    p.add_argument("--seed", type=int, default=0, help="random weights from this seed (same seed, same files)")
    p.add_argument("--shard-mb", type=int, default=1024, help="maximum shard size in MiB")
    p.add_argument("--quantized", action="store_true", help="release formats: FP8 + .scale, routed experts FP4")
    ns = p.parse_args(argv)
    try:
        config = json.loads(Path(ns.config).read_text()) if ns.config else preset_config(ns.preset)
        out = write_checkpoint(ns.out, config, ns.seed, ns.shard_mb << 20, ns.quantized)
    except (InferenceModelError, OSError, json.JSONDecodeError) as exc:
        p.error(str(exc))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
