"""python -m inference.generate --checkpoint DIR (--prompt TEXT | --prompt-ids 1,2,3 | --chat MSG [--thinking on|off])
--max-new-tokens N [--greedy] [--reference-numerics on|off] [--dump-logits FILE.pt]: a plain reference generator."""

import argparse
import json
from pathlib import Path

import torch

from inference import chat
from inference.config import ModelArgs
from inference.errors import CheckpointError, InferenceModelError, InputError
from inference.model import Transformer
from inference.numerics import add_reference_numerics_arg
from inference.weights import load_weights

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def load_model(ckpt_dir: str | Path, dtype: torch.dtype = torch.float32, **overrides) -> Transformer:
    """Build the model described by DIR/config.json and load its weights (official or HF naming)."""
    cfg = Path(ckpt_dir) / "config.json"
    if not cfg.exists():
        raise CheckpointError(f"{ckpt_dir} has no config.json")
    model = Transformer(ModelArgs.from_file(cfg, **overrides), dtype)
    load_weights(model, ckpt_dir)
    return model.eval()


def load_tokenizer(ckpt_dir: str | Path):
    from tokenizers import Tokenizer

    path = Path(ckpt_dir) / "tokenizer.json"
    if not path.exists():
        raise CheckpointError(f"{ckpt_dir} has no tokenizer.json; pass --prompt-ids instead of --prompt")
    return Tokenizer.from_file(str(path))


@torch.no_grad()
def generate(model: Transformer, prompt_ids: list[int], max_new_tokens: int, greedy: bool = True,
             temperature: float = 1.0, seed: int = 0, use_state: bool = True,
             stop_ids: tuple[int, ...] = (), chunk_tokens: int = 4096) -> tuple[list[int], torch.Tensor]:
    """Decode up to max_new_tokens; returns (new token ids, fp32 logits [steps, vocab] that chose each token).

    use_state=False runs a full forward over the whole sequence per step (the slow reference); with the state
    the prompt is prefilled in chunks of chunk_tokens."""
    if not prompt_ids:
        raise InputError("the prompt is empty")
    if temperature <= 0 and not greedy:
        raise InputError("temperature must be positive for sampling")
    gen = torch.Generator().manual_seed(seed)
    device = model.head.weight.device
    seq = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    state = model.new_state(1) if use_state else None
    logits = model(seq, 0, state, last_only=True, chunk_tokens=chunk_tokens if use_state else None)[0, -1]
    out, rows = [], []
    for step in range(max_new_tokens):
        rows.append(logits.float().cpu())
        if greedy:
            tok = int(logits.argmax())
        else:
            probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)
            tok = int(torch.multinomial(probs, 1, generator=gen))
        out.append(tok)
        if tok in stop_ids or step == max_new_tokens - 1:
            break
        nxt = torch.tensor([[tok]], dtype=torch.long, device=device)
        if use_state:
            logits = model(nxt, state.num_tokens, state, last_only=True)[0, -1]
        else:
            seq = torch.cat([seq, nxt], dim=1)
            logits = model(seq, last_only=True)[0, -1]
    vocab = model.args.vocab_size
    return out, torch.stack(rows) if rows else torch.empty(0, vocab)


def build_prompt_ids(ns: argparse.Namespace, ckpt_dir: str) -> list[int]:
    """Token ids from --prompt-ids (exactly as given), --prompt (BOS + tokenized text) or --chat (V4 chat encoding)."""
    if ns.prompt_ids is not None:
        try:
            return [int(t) for t in ns.prompt_ids.split(",") if t.strip()]
        except ValueError as exc:
            raise InputError(f"--prompt-ids must be comma-separated integers: {exc}") from exc
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
    src.add_argument("--chat", help="one user message, encoded with the V4 chat format (inference.chat)")
    p.add_argument("--thinking", choices=("on", "off"), default="off", help="with --chat: <think> or </think>")
    add_reference_numerics_arg(p)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--full-forward", action="store_true", help="recompute the whole sequence each step")
    p.add_argument("--ignore-eos", action="store_true")
    p.add_argument("--dump-logits", help="save float32 [steps, vocab] logits to this .pt file")
    ns = p.parse_args(argv)
    try:
        numerics = {} if ns.reference_numerics is None else {"reference_numerics": ns.reference_numerics == "on"}
        model = load_model(ns.checkpoint, DTYPES[ns.dtype], **numerics)
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
