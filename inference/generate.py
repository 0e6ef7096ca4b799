"""python -m inference.generate --checkpoint DIR (--prompt TEXT | --prompt-ids 1,2,3 | --chat MSG [--thinking on|off])
--max-new-tokens N [--greedy] [--reference-numerics on|off] [--weights quantized|dequantized] [--device D]
[--dump-logits FILE.pt] [--tp T --ep E]: a plain reference generator (on T×E-parallel ranks: docs/parallel.md)."""

import argparse
import json
from pathlib import Path

import torch

from inference.checkpoint.loader import DTYPES, add_weights_args, load_model, resolve_device
from inference.errors import InferenceModelError, InputError
from inference.model.decode import generate
from inference.model.numerics import add_reference_numerics_arg
from inference.parallel.spec import add_parallel_args, spec_from_args
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


def _decode(model, ns: argparse.Namespace, ids: list[int]):
    stop = () if ns.ignore_eos else (model.args.eos_token_id,)
    return generate(model, ids, ns.max_new_tokens, ns.greedy, ns.temperature, ns.seed, use_state=not ns.full_forward,
                    stop_ids=stop)


def _decode_on_rank(ctx, model, ns: argparse.Namespace, ids: list[int]) -> int:
    """Ranks 1 … W-1 of a parallel generate: the same decode, in step with rank 0 through the model's collectives."""
    _decode(model, ns, ids)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="reference generator for DeepSeek-V4 checkpoints")
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder (a release or a dev one)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="raw text: BOS + its tokens (no chat format)")
    src.add_argument("--prompt-ids", help="comma-separated token ids, e.g. 0,1234,56")
    src.add_argument("--chat", help="one user message, encoded with the V4 chat format (inference.text.chat)")
    p.add_argument("--thinking", choices=("on", "off"), default="off", help="with --chat: <think> or </think>")
    add_reference_numerics_arg(p)
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens to generate at most (default 32)")
    p.add_argument("--greedy", action="store_true", help="take the most likely token (else sample)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="weights, activations and cache")
    add_weights_args(p)
    add_parallel_args(p)
    p.add_argument("--full-forward", action="store_true", help="recompute the whole sequence each step")
    p.add_argument("--ignore-eos", action="store_true", help="do not stop at the end-of-sequence token")
    p.add_argument("--dump-logits", help="save float32 [steps, vocab] logits to this .pt file")
    ns = p.parse_args(argv)
    try:
        numerics = {} if ns.reference_numerics is None else {"reference_numerics": ns.reference_numerics == "on"}
        spec = spec_from_args(ns)
        ids = build_prompt_ids(ns, ns.checkpoint)
        ranks = None
        if spec.enabled:  # every rank runs the same decode on its shard (docs/parallel.md)
            from inference.parallel.launch import LoadSpec, start

            ranks = start(spec, LoadSpec(ns.checkpoint, ns.dtype, ns.weights, resolve_device(ns.device),
                                         numerics.get("reference_numerics"), "WARNING"), _decode_on_rank, (ns, ids))
            model = ranks.model
        else:
            model = load_model(ns.checkpoint, DTYPES[ns.dtype], weights=ns.weights, device=resolve_device(ns.device),
                               **numerics)
        new, logits = _decode(model, ns, ids)
        if ranks is not None:
            from inference.parallel.groups import close_rank

            ranks.shutdown()
            close_rank()
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
