"""python -m inference.generate --checkpoint DIR (--prompt TEXT | --prompt-ids 1,2,3 | --chat MSG [--thinking on|off])
--max-new-tokens N [--greedy] [--reference-numerics on|off] [--weights quantized|dequantized] [--device D]
[--dump-logits FILE.pt]: a plain reference generator."""

import argparse
import json
from pathlib import Path

import torch

from inference.checkpoint.loader import DTYPES, add_weights_args, load_model, resolve_device
from inference.errors import InferenceModelError, InputError
from inference.model.decode import generate
from inference.model.numerics import add_reference_numerics_arg
from inference.text import chat
from inference.text.tokenizer import load_tokenizer


def build_prompt_ids(ns: argparse.Namespace, ckpt_dir: str) -> list[int]:
    """Token ids from --prompt-ids (exactly as given), --prompt (BOS + tokenized text) or --chat (V4 chat encoding)."""
    if ns.prompt_ids is not None:
        try:
            return [int(t) for t in ns.prompt_ids.split(",") if t.strip()]
        except ValueError as exc:
            raise InputError(f"--prompt-ids must be comma-separated integers: {exc}") from exc
    if not (Path(ckpt_dir) / "tokenizer.json").exists():
        raise InputError(f"{ckpt_dir} has no tokenizer.json; pass --prompt-ids instead of --prompt")
    tok = load_tokenizer(ckpt_dir)
    if ns.chat is not None:
        text = chat.encode_messages([{"role": "user", "content": ns.chat}], thinking=ns.thinking == "on")
        return tok.encode(text, add_special_tokens=False).ids
    return [0] + tok.encode(ns.prompt, add_special_tokens=False).ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="reference generator for DeepSeek-V4 checkpoints")
    p.add_argument("--checkpoint", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt")
    src.add_argument("--prompt-ids")
    src.add_argument("--chat", help="one user message, encoded with the V4 chat format (inference.text.chat)")
    p.add_argument("--thinking", choices=("on", "off"), default="off", help="with --chat: <think> or </think>")
    add_reference_numerics_arg(p)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    add_weights_args(p)
    p.add_argument("--full-forward", action="store_true", help="recompute the whole sequence each step")
    p.add_argument("--ignore-eos", action="store_true")
    p.add_argument("--dump-logits", help="save float32 [steps, vocab] logits to this .pt file")
    ns = p.parse_args(argv)
    try:
        numerics = {} if ns.reference_numerics is None else {"reference_numerics": ns.reference_numerics == "on"}
        model = load_model(ns.checkpoint, DTYPES[ns.dtype], weights=ns.weights, device=resolve_device(ns.device),
                           **numerics)
        ids = build_prompt_ids(ns, ns.checkpoint)
        stop = () if ns.ignore_eos else (model.args.eos_token_id,)
        new, logits = generate(model, ids, ns.max_new_tokens, ns.greedy, ns.temperature, ns.seed,
                               use_state=not ns.full_forward, stop_ids=stop)
    except (InferenceModelError, OSError) as exc:
        p.error(str(exc))
    if ns.dump_logits:
        torch.save(logits.float().contiguous(), ns.dump_logits)
    text = None
    if (Path(ns.checkpoint) / "tokenizer.json").exists():
        text = load_tokenizer(ns.checkpoint).decode(new, skip_special_tokens=False)
    result = {"prompt_tokens": len(ids), "new_ids": new, "text": text,
              "reference_numerics": model.args.reference_numerics}
    if ns.chat is not None:
        parsed = chat.parse_output(text or "", thinking=ns.thinking == "on")
        result.update(prompt_ids=ids, reasoning_content=parsed.reasoning_content, content=parsed.content)
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
