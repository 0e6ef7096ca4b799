"""One model served across ranks (docs/parallel.md): expert parallelism for the routed experts, tensor parallelism
for attention heads and the shared expert, the compressed-KV cache replicated on every rank, rank 0's scheduler
driving the others in lock-step over torch.distributed (gloo on CPU, NCCL on GPUs)."""
